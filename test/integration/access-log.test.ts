import { existsSync, readFileSync } from 'node:fs';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ProxyProcess, startProxyProcess } from '../helpers/proxy-process.js';
import { makeTempDir } from '../helpers/temp.js';
import { httpUpstream, type TestUpstream } from '../helpers/upstreams.js';

describe('access log destinations', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let app: TestUpstream;
  let proxy: ProxyProcess | undefined;

  beforeEach(async () => {
    tmp = makeTempDir();
    app = await httpUpstream(tmp.path('app.sock'));
  });

  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
    await app.close();
    tmp.remove();
  });

  const config = (access: string) => `upstream:\n  servers: [ "${app.address}" ]\nlog:\n  access: ${access}\n`;

  it('writes one JSON line per request to a file (asynchronously), all there after a graceful stop', async () => {
    const file = tmp.path('logs/access.log');
    proxy = await startProxyProcess(config(file), tmp.dir);
    for (let i = 0; i < 20; i++) await (await request(`${proxy.url}/n/${i}`)).body.text();
    expect(await proxy.stop()).toBe(0);
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.request_uri)).toEqual(Array.from({ length: 20 }, (_, i) => `/n/${i}`));
    expect(lines[0]).toMatchObject({ status: 200, upstream_addr: app.address, upstream_status: '200' });
    expect(proxy.access()).toEqual([]);
  });

  it('"off" writes no access log at all', async () => {
    proxy = await startProxyProcess(config('"off"'), tmp.dir);
    await (await request(proxy.url)).body.text();
    expect(await proxy.stop()).toBe(0);
    expect(proxy.access()).toEqual([]);
    expect(proxy.errors().some((l) => 'request_uri' in l)).toBe(false);
    expect(existsSync(tmp.path('off'))).toBe(false);
  });
});
