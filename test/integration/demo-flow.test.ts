import { existsSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppProcess, startApp } from '../helpers/app-process.js';
import { killAll, type Running } from '../helpers/node-process.js';
import { startProxyWithConfig } from '../helpers/proxy-process.js';
import { freePort, makeTempDir } from '../helpers/temp.js';

/**
 * The README's story, end to end with the real binaries: the sample app (the Gunicorn
 * stand-in) on a Unix socket, sockproxy in front of it as in Gunicorn's example nginx.conf
 * (`server unix:/tmp/gunicorn.sock fail_timeout=0;`), and what an operator sees when the
 * app goes away and comes back. The proxy is started once and never restarted.
 */
describe('demo flow: sample app behind sockproxy', () => {
  const tmp = makeTempDir();
  const socketPath = tmp.path('app.sock');
  const bind = `unix:${socketPath}`;
  // A fresh connection per request, so that nothing here depends on client keep-alive.
  const agent = new Agent({ pipelining: 0 });
  let proxy: Running;
  let app: AppProcess | undefined;
  let base: string;

  async function get(path: string): Promise<{ status: number; text: string }> {
    const res = await request(`${base}${path}`, { dispatcher: agent });
    return { status: res.statusCode, text: await res.body.text() };
  }

  /** The proxy's error-log line for `GET path`, by its request line. */
  function errorFor(path: string): Promise<Record<string, unknown>> {
    return proxy.waitForLog((line) => String(line.msg).includes(`request: "GET ${path} HTTP/1.1"`));
  }

  beforeAll(async () => {
    const port = await freePort();
    const config = tmp.path('sockproxy.yaml');
    writeFileSync(
      config,
      `listen: 127.0.0.1:${port}\n` +
        'upstream:\n' +
        '  name: app_server\n' +
        '  servers:\n' +
        `    - ${bind} fail_timeout=0\n` +
        'log:\n' +
        '  access: stdout\n',
    );
    app = await startApp(['--bind', bind]);
    proxy = await startProxyWithConfig(config);
    base = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await killAll();
    await agent.close();
    tmp.remove();
  });

  it('GET / is answered by the app through the proxy', async () => {
    const res = await get('/');
    expect(res).toEqual({ status: 200, text: `Hello from sockproxy sample app (pid ${app!.pid})\n` });
    const access = await proxy.waitForAccess((line) => line.request_uri === '/');
    expect(access).toMatchObject({ status: 200, upstream_addr: bind, upstream_status: '200' });
  });

  it('the app stopped with SIGTERM unlinks its socket: 502 and "(2: No such file or directory)"', async () => {
    app!.child.kill('SIGTERM');
    expect(await app!.waitForExit()).toEqual({ code: 0, signal: null });
    expect(existsSync(socketPath)).toBe(false);

    const res = await get('/after-sigterm');
    expect(res.status).toBe(502);
    expect(res.text).toContain('502 Bad Gateway');
    const line = await errorFor('/after-sigterm');
    expect(line.msg).toContain(
      `connect() to ${bind} failed (2: No such file or directory) while connecting to upstream`,
    );
    expect(line.msg).toContain(`upstream: "http://${bind}:/after-sigterm"`);
    expect(proxy.alive()).toBe(true);
  });

  it('started again, the app answers through the same proxy', async () => {
    const before = proxy.pid;
    app = await startApp(['--bind', bind]);
    const res = await get('/');
    expect(res).toEqual({ status: 200, text: `Hello from sockproxy sample app (pid ${app.pid})\n` });
    expect(proxy.pid).toBe(before);
    expect(proxy.alive()).toBe(true);
  });

  it('the app killed with -9 leaves a stale socket: 502 and "(111: Connection refused)"', async () => {
    app!.child.kill('SIGKILL');
    expect(await app!.waitForExit()).toEqual({ code: null, signal: 'SIGKILL' });
    expect(statSync(socketPath).isSocket()).toBe(true);

    const res = await get('/after-sigkill');
    expect(res.status).toBe(502);
    const line = await errorFor('/after-sigkill');
    expect(line.msg).toContain(`connect() to ${bind} failed (111: Connection refused) while connecting to upstream`);
    expect(proxy.alive()).toBe(true);
  });

  it('restarted over its stale socket, the app answers again without restarting the proxy', async () => {
    const before = proxy.pid;
    app = await startApp(['--bind', bind]);
    const res = await get('/');
    expect(res).toEqual({ status: 200, text: `Hello from sockproxy sample app (pid ${app.pid})\n` });
    // fail_timeout=0: the failures above never took the server out of rotation.
    expect((await get('/')).status).toBe(200);
    expect(proxy.pid).toBe(before);
    expect(proxy.alive()).toBe(true);
    expect(proxy.stderr()).not.toContain('temporarily disabled');
  });
});
