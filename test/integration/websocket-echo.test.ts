import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startApp } from '../helpers/app-process.js';
import { useProxyFixture } from '../helpers/fixture.js';
import { killAll } from '../helpers/node-process.js';
import { freePort } from '../helpers/temp.js';
import { until } from '../helpers/wait.js';
import { closed, nextMessage, openWebSocket, terminateAll, type WebSocket } from '../helpers/websocket.js';
import { wsUpstream } from '../helpers/ws-upstreams.js';

/**
 * WebSocket through the proxy with no configuration at all (nginx needs proxy_set_header
 * Upgrade and Connection): the sample app's /ws echo behind it, on a Unix socket and on TCP.
 */
describe('WebSocket: frames both ways through the tunnel', () => {
  const fx = useProxyFixture();
  const clients = new Set<WebSocket>();

  afterEach(async () => {
    terminateAll(clients);
    await killAll();
  });

  const wsUrl = (path = '/ws') => `ws://127.0.0.1:${fx.proxy!.port}${path}`;

  /** The sample app on a Unix socket and one on TCP, as server lines. */
  async function apps() {
    const unixPath = fx.tmp.path('app.sock');
    const port = await freePort();
    const unixApp = await startApp(['--bind', `unix:${unixPath}`]);
    const tcpApp = await startApp(['--bind', `127.0.0.1:${port}`]);
    return { unixApp, tcpApp, unix: `unix:${unixPath}`, tcp: `127.0.0.1:${port}` };
  }

  it.each(['unix', 'tcp'] as const)('echoes text, binary and a 10 MiB message through a %s app; one access line with 101 when it closes', async (kind) => {
    const a = await apps();
    const app = kind === 'unix' ? a.unixApp : a.tcpApp;
    await fx.start([kind === 'unix' ? a.unix : a.tcp]);
    const { ws, headers } = await openWebSocket(wsUrl(), clients);
    expect(headers['x-app-pid']).toBe(String(app.pid));
    expect(headers['x-request-id']).toMatch(/^[0-9a-f]{32}$/);

    ws.send('héllo, app');
    expect(await nextMessage(ws)).toEqual({ data: Buffer.from('héllo, app'), binary: false });
    const bytes = randomBytes(1000);
    ws.send(bytes);
    expect(await nextMessage(ws)).toEqual({ data: bytes, binary: true });
    const big = randomBytes(10 * 1024 * 1024);
    ws.send(big);
    const echoed = await nextMessage(ws, 30_000);
    expect(echoed.binary).toBe(true);
    expect(echoed.data.equals(big)).toBe(true);

    // Nothing is logged while the tunnel is open: nginx logs an upgraded request when it ends.
    expect(fx.proxy!.access().filter((l) => l.request_uri === '/ws')).toEqual([]);
    ws.close(1000, 'done');
    expect(await closed(ws)).toEqual({ code: 1000, reason: 'done' });
    const line = await fx.proxy!.waitForLog((l) => l.request_uri === '/ws' && 'status' in l);
    expect(line).toMatchObject({
      status: 101,
      upstream_addr: kind === 'unix' ? a.unix : a.tcp,
      upstream_status: '101',
      request_id: headers['x-request-id'],
    });
    // Every frame the app sent is in body_bytes_sent: the echoes plus their framing.
    expect(line.body_bytes_sent as number).toBeGreaterThan(big.length + bytes.length);
    expect(line.body_bytes_sent as number).toBeLessThan(big.length + bytes.length + 100);
  });

  it('round robin spreads WebSockets over a Unix-socket app and a TCP one, as it does requests', async () => {
    const a = await apps();
    await fx.start([a.unix, a.tcp]);
    const pids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { ws, headers } = await openWebSocket(wsUrl(), clients);
      pids.push(String(headers['x-app-pid']));
      ws.send(`n${i}`);
      expect((await nextMessage(ws)).data.toString()).toBe(`n${i}`);
    }
    const [u, t] = [String(a.unixApp.pid), String(a.tcpApp.pid)];
    expect(pids).toEqual([u, t, u, t]);
  });

  it('the app sees the usual forwarded headers on the upgrade request, and the Upgrade it asked for', async () => {
    const app = fx.track(await wsUpstream(fx.tmp.path('ws.sock')));
    await fx.start([app.address]);
    const { ws, headers } = await openWebSocket(wsUrl('/chat?room=1'), clients, {
      headers: { 'X-Forwarded-For': '203.0.113.9', 'X-Custom': 'kept' },
      protocols: ['chat.v1'],
    });
    ws.send('hi');
    await nextMessage(ws);
    expect(app.requests).toHaveLength(1);
    const seen = app.requests[0]!;
    expect(seen.url).toBe('/chat?room=1');
    expect(seen.headers).toMatchObject({
      host: `127.0.0.1:${fx.proxy!.port}`,
      upgrade: 'websocket',
      connection: 'upgrade',
      'x-forwarded-for': '203.0.113.9, 127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': `127.0.0.1:${fx.proxy!.port}`,
      'x-request-id': headers['x-request-id'],
      'x-custom': 'kept',
      'sec-websocket-protocol': 'chat.v1',
      'sec-websocket-version': '13',
    });
    // The handshake went through untouched: the app's accept key satisfied the client, and
    // the subprotocol the app chose reached it.
    expect(headers['sec-websocket-protocol']).toBe('chat.v1');
  });

  it('200 tunnels at once, each with its own conversation', { timeout: 60_000 }, async () => {
    const a = await apps();
    await fx.start([a.unix]);
    const sockets = await Promise.all(Array.from({ length: 200 }, () => openWebSocket(wsUrl(), clients)));
    const replies = await Promise.all(
      sockets.map(async ({ ws }, i) => {
        const reply = nextMessage(ws, 30_000);
        ws.send(`message ${i}`);
        return (await reply).data.toString();
      }),
    );
    expect(replies).toEqual(sockets.map((_, i) => `message ${i}`));
    for (const { ws } of sockets) ws.close();
    await Promise.all(sockets.map(({ ws }) => closed(ws, 30_000)));
    await until(() => fx.proxy!.access().filter((l) => l.status === 101).length === 200, 10_000, '200 access lines with 101');
  });
});
