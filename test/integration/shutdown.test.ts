import { existsSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { probeSocket } from '../helpers/app-sockets.js';
import { waitForRefused } from '../helpers/cli.js';
import { killAll, type Running } from '../helpers/node-process.js';
import { startProxyWithConfig } from '../helpers/proxy-process.js';
import { freePort, makeTempDir, type TempDir } from '../helpers/temp.js';
import { httpUpstream, type TestUpstream } from '../helpers/upstreams.js';
import { until } from '../helpers/wait.js';
import { closed, nextMessage, openWebSocket, terminateAll, type WebSocket } from '../helpers/websocket.js';
import { wsUpstream } from '../helpers/ws-upstreams.js';

/**
 * A graceful stop (SIGTERM, SIGINT, SIGQUIT): stop accepting, answer what is in flight,
 * let tunnels run until shutdown_timeout, then close them; exit 0, the socket files gone.
 */
describe('graceful shutdown', () => {
  let tmp: TempDir;
  const agents: Agent[] = [];
  const closables: { close(): Promise<void> }[] = [];
  const clients = new Set<WebSocket>();

  beforeEach(() => {
    tmp = makeTempDir();
  });

  afterEach(async () => {
    terminateAll(clients);
    await killAll();
    await Promise.all(agents.splice(0).map((agent) => agent.destroy()));
    await Promise.all(closables.splice(0).map((closable) => closable.close()));
    tmp.remove();
  });

  /** An upstream that answers /slow only when `release` is called, and anything else at once. */
  async function gatedUpstream(): Promise<{ upstream: TestUpstream; release: () => void }> {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const upstream = await httpUpstream(tmp.path('app.sock'), (req, res) => {
      req.resume();
      const answer = () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`done ${req.url}\n`);
      if (req.url === '/slow') void released.then(answer);
      else answer();
    });
    closables.push(upstream);
    return { upstream, release };
  }

  async function start(yaml: string): Promise<Running> {
    const file = tmp.path('proxy.yaml');
    writeFileSync(file, yaml);
    return startProxyWithConfig(file);
  }

  function slowRequest(url: string): Promise<{ status: number; text: string } | Error> {
    const agent = new Agent();
    agents.push(agent);
    return request(url, { dispatcher: agent }).then(
      async (res) => ({ status: res.statusCode, text: await res.body.text() }),
      (err: Error) => err,
    );
  }

  it.each(['SIGTERM', 'SIGQUIT', 'SIGINT'] as const)(
    '%s with a slow request in flight: it completes with 200, a new connection is refused, exit 0 within shutdown_timeout',
    async (signal) => {
      const { upstream, release } = await gatedUpstream();
      const port = await freePort();
      const proxy = await start(`listen: 127.0.0.1:${port}\nshutdown_timeout: 4s\nupstream:\n  servers:\n    - ${upstream.address}\n`);
      const pending = slowRequest(`http://127.0.0.1:${port}/slow`);
      await until(() => upstream.requests.length === 1, 5_000, 'the slow request to reach the app');

      const signalled = Date.now();
      proxy.child.kill(signal);
      await proxy.waitForLog((l) => l.msg === `${signal} received, gracefully shutting down`);
      await waitForRefused(port);
      expect(proxy.alive()).toBe(true);
      release();
      expect(await pending).toEqual({ status: 200, text: 'done /slow\n' });
      expect(await proxy.waitForExit(6_000)).toEqual({ code: 0, signal: null });
      expect(Date.now() - signalled).toBeLessThan(4_000);
      expect(proxy.accessLog().some((l) => l.request_uri === '/slow' && l.status === 200)).toBe(true);
    },
  );

  it('a request that outlasts shutdown_timeout is cut at the deadline (never made to look complete), and the exit is 0', async () => {
    const { upstream } = await gatedUpstream();
    const port = await freePort();
    const proxy = await start(`listen: 127.0.0.1:${port}\nshutdown_timeout: 1500ms\nupstream:\n  servers:\n    - ${upstream.address}\n`);
    const pending = slowRequest(`http://127.0.0.1:${port}/slow`);
    await until(() => upstream.requests.length === 1, 5_000, 'the slow request to reach the app');
    const signalled = Date.now();
    proxy.child.kill('SIGTERM');
    expect(await proxy.waitForExit(6_000)).toEqual({ code: 0, signal: null });
    const elapsed = Date.now() - signalled;
    expect(elapsed).toBeGreaterThanOrEqual(1_400);
    expect(elapsed).toBeLessThan(3_000);
    expect(await pending).toBeInstanceOf(Error);
    expect(proxy.errorLog().some((l) => String(l.msg).startsWith('shutdown_timeout (1500 ms) reached'))).toBe(true);
  });

  it('a WebSocket open at SIGTERM works until shutdown_timeout, then is closed; the unix listen socket and the pid file are gone', async () => {
    const app = await wsUpstream(tmp.path('ws.sock'));
    closables.push(app);
    const port = await freePort();
    const listenPath = tmp.path('proxy.sock');
    const pidFile = tmp.path('proxy.pid');
    const proxy = await start(
      `listen:\n  - 127.0.0.1:${port}\n  - unix:${listenPath}\nshutdown_timeout: 3s\npid: ${pidFile}\nupstream:\n  servers:\n    - ${app.address}\n`,
    );
    expect(existsSync(listenPath)).toBe(true);
    expect(existsSync(pidFile)).toBe(true);
    const { ws } = await openWebSocket(`ws://127.0.0.1:${port}/ws`, clients);

    const signalled = Date.now();
    proxy.child.kill('SIGTERM');
    await proxy.waitForLog((l) => l.msg === 'SIGTERM received, gracefully shutting down');
    // Stopped accepting on both addresses: the unix socket file is removed at once.
    await waitForRefused(port);
    expect(await probeSocket(listenPath)).toBe('ENOENT');
    for (const word of ['one', 'two']) {
      await new Promise((resolve) => setTimeout(resolve, 600));
      ws.send(word);
      expect((await nextMessage(ws)).data.toString()).toBe(word);
    }
    expect((await closed(ws, 6_000)).code).toBe(1006);
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(2_900);
    expect(await proxy.waitForExit(3_000)).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalled).toBeLessThan(4_500);
    expect(existsSync(listenPath)).toBe(false);
    expect(existsSync(pidFile)).toBe(false);
    expect(proxy.accessLog().filter((l) => l.status === 101)).toHaveLength(1);
  });

  it('a second signal stops at once, with a tunnel still open', async () => {
    const app = await wsUpstream(tmp.path('ws.sock'));
    closables.push(app);
    const port = await freePort();
    const proxy = await start(`listen: 127.0.0.1:${port}\nshutdown_timeout: 30s\nupstream:\n  servers:\n    - ${app.address}\n`);
    const { ws } = await openWebSocket(`ws://127.0.0.1:${port}/ws`, clients);
    proxy.child.kill('SIGTERM');
    await proxy.waitForLog((l) => l.msg === 'SIGTERM received, gracefully shutting down');
    const again = Date.now();
    proxy.child.kill('SIGINT');
    expect(await proxy.waitForExit(5_000)).toEqual({ code: 0, signal: null });
    expect(Date.now() - again).toBeLessThan(2_000);
    expect((await closed(ws)).code).toBe(1006);
    expect(proxy.errorLog().some((l) => l.msg === 'SIGINT received again, exiting now')).toBe(true);
  });
});
