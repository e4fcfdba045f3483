import { existsSync, readFileSync } from 'node:fs';
import { request } from 'undici';
import { beforeEach, describe, expect, it } from 'vitest';
import { useProxyFixture } from '../helpers/fixture.js';
import { httpUpstream, type TestUpstream } from '../helpers/upstreams.js';

describe('access log destinations', () => {
  const fx = useProxyFixture();
  let app: TestUpstream;

  beforeEach(async () => {
    app = fx.track(await httpUpstream(fx.tmp.path('app.sock')));
  });

  /** The proxy in front of `app`, with `log.access` set to `access`. */
  const start = (access: string) => fx.start([app.address], `log:\n  access: ${access}\n`);

  it('writes one JSON line per request to a file (asynchronously), all there after a graceful stop', async () => {
    const file = fx.tmp.path('logs/access.log');
    const proxy = await start(file);
    for (let i = 0; i < 20; i++) await (await request(`${proxy.url}/n/${i}`)).body.text();
    expect(await proxy.stop()).toBe(0);
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.request_uri)).toEqual(Array.from({ length: 20 }, (_, i) => `/n/${i}`));
    expect(lines[0]).toMatchObject({ status: 200, upstream_addr: app.address, upstream_status: '200' });
    expect(proxy.access()).toEqual([]);
  });

  it('"off" writes no access log at all', async () => {
    const proxy = await start('"off"');
    await (await request(proxy.url)).body.text();
    expect(await proxy.stop()).toBe(0);
    expect(proxy.access()).toEqual([]);
    expect(proxy.errors().some((l) => 'request_uri' in l)).toBe(false);
    expect(existsSync(fx.tmp.path('off'))).toBe(false);
  });
});
