import { afterEach, describe, expect, it } from 'vitest';
import { startApp } from '../helpers/app-process.js';
import { useProxyFixture } from '../helpers/fixture.js';
import { killAll } from '../helpers/node-process.js';
import { until } from '../helpers/wait.js';
import { closed, nextMessage, openWebSocket, refusalOf, terminateAll, type WebSocket } from '../helpers/websocket.js';
import { wsUpstream } from '../helpers/ws-upstreams.js';

/**
 * How many tunnels there may be (proxy.max_upgraded), what a server's max_conns makes of
 * them, and what a stop does to them.
 */
describe('WebSocket: limits and shutdown', () => {
  const fx = useProxyFixture();
  const clients = new Set<WebSocket>();

  afterEach(async () => {
    terminateAll(clients);
    await killAll();
  });

  const wsUrl = () => `ws://127.0.0.1:${fx.proxy!.port}/ws`;

  it('max_upgraded: the next upgrade gets 503 with the reason logged, the app never asked; a closed tunnel frees its slot', async () => {
    const app = fx.track(await wsUpstream(fx.tmp.path('app.sock')));
    await fx.start([app.address], 'proxy:\n  max_upgraded: 2\n');
    const first = await openWebSocket(wsUrl(), clients);
    await openWebSocket(wsUrl(), clients);

    const refusal = await refusalOf(wsUrl());
    expect(refusal.status).toBe(503);
    expect(refusal.body).toContain('503 Service Unavailable: too many upgraded connections (WebSocket) are open');
    expect(refusal.body).toContain(`request_id: ${refusal.headers['x-request-id']}`);
    expect(app.requests).toHaveLength(2);
    const line = await fx.proxy!.waitForLog((l) => String(l.msg).startsWith('upgraded connections limit'));
    expect(line.msg).toContain('upgraded connections limit of 2 reached (proxy.max_upgraded), client: 127.0.0.1, request: "GET /ws HTTP/1.1"');
    const access = await fx.proxy!.waitForLog((l) => l.status === 503);
    expect(access.upstream_addr).toBe('-');

    first.ws.close();
    await closed(first.ws);
    await until(() => fx.proxy!.access().some((l) => l.status === 101), 5_000, 'the closed tunnel to be logged');
    const third = await openWebSocket(wsUrl(), clients);
    third.ws.send('room again');
    expect((await nextMessage(third.ws)).data.toString()).toBe('room again');
  });

  it('an upgrade answered without a 101 gives its slot back', async () => {
    const socketPath = fx.tmp.path('app.sock');
    await startApp(['--bind', `unix:${socketPath}`]);
    await fx.start([`unix:${socketPath}`], 'proxy:\n  max_upgraded: 1\n');
    for (let i = 0; i < 3; i++) expect((await refusalOf(`ws://127.0.0.1:${fx.proxy!.port}/status/403`)).status).toBe(403);
    const { ws } = await openWebSocket(wsUrl(), clients);
    ws.send('ok');
    expect((await nextMessage(ws)).data.toString()).toBe('ok');
  });

  it('a tunnel holds a connection to its server: at max_conns the next upgrade goes to another', async () => {
    const a = fx.track(await wsUpstream(fx.tmp.path('a.sock')));
    const b = fx.track(await wsUpstream(fx.tmp.path('b.sock')));
    await fx.start([`${a.address} max_conns=1`, b.address]);
    await openWebSocket(wsUrl(), clients);
    expect([a.requests.length, b.requests.length]).toEqual([1, 0]);
    // Round robin would pick b next and then a: with a's tunnel open, both go to b.
    await openWebSocket(wsUrl(), clients);
    await openWebSocket(wsUrl(), clients);
    expect([a.requests.length, b.requests.length]).toEqual([1, 2]);
  });

  it('a stop (SIGTERM) lets open tunnels run until shutdown_timeout, then closes them, logs each, and exits 0', async () => {
    const app = fx.track(await wsUpstream(fx.tmp.path('app.sock')));
    const proxy = await fx.start([app.address], 'shutdown_timeout: 2s\n');
    const sockets = await Promise.all([1, 2, 3].map(() => openWebSocket(wsUrl(), clients)));
    const started = performance.now();
    const exit = proxy.stop('SIGTERM');
    await proxy.waitForLog((l) => String(l.msg).startsWith('SIGTERM received, gracefully shutting down'));
    // nginx keeps upgraded connections until worker_shutdown_timeout: they still carry messages.
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const [index, { ws }] of sockets.entries()) {
      ws.send(`still here ${index}`);
      expect((await nextMessage(ws)).data.toString()).toBe(`still here ${index}`);
    }
    expect(await exit).toBe(0);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1_900);
    // shutdown_timeout, and the time for a process to exit on a busy machine.
    expect(elapsed).toBeLessThan(3_500);
    for (const { ws } of sockets) expect((await closed(ws)).code).toBe(1006);
    expect(proxy.access().filter((l) => l.status === 101)).toHaveLength(3);
    expect(proxy.errors().some((l) => String(l.msg).startsWith('shutdown_timeout (2000 ms) reached'))).toBe(true);
  });
});
