import { afterEach, describe, expect, it } from 'vitest';
import { startApp } from '../helpers/app-process.js';
import { makeStaleSocket } from '../helpers/app-sockets.js';
import { useProxyFixture } from '../helpers/fixture.js';
import { killAll } from '../helpers/node-process.js';
import { rawConnect } from '../helpers/raw-http.js';
import { closingUpstream, hangingUpstream } from '../helpers/upstreams.js';
import { closed, nextMessage, openWebSocket, refusalOf, terminateAll, type WebSocket } from '../helpers/websocket.js';
import { raw101Upstream, wsUpstream } from '../helpers/ws-upstreams.js';

const TUNNEL = 'while proxying upgraded connection';
const TIMED_OUT = 'upstream timed out (110: Connection timed out)';

/**
 * Failures around an upgrade, as nginx has them: before the 101 an upgrade request is
 * retried like any GET (next_upstream); after it nothing is retried, and the tunnel ends
 * with the first side that fails or goes quiet for read_timeout.
 */
describe('WebSocket: failures, retries and timeouts', () => {
  const fx = useProxyFixture();
  const clients = new Set<WebSocket>();

  afterEach(async () => {
    terminateAll(clients);
    await killAll();
  });

  const wsUrl = (path = '/ws') => `ws://127.0.0.1:${fx.proxy!.port}${path}`;

  it('a connect failure moves the upgrade to the next server; the log names the first', async () => {
    const missing = fx.tmp.path('missing.sock');
    const stale = fx.tmp.path('stale.sock');
    await makeStaleSocket(stale);
    const app = fx.track(await wsUpstream(fx.tmp.path('app.sock')));
    await fx.start([`unix:${missing}`, `unix:${stale}`, app.address]);
    const { ws } = await openWebSocket(wsUrl(), clients);
    ws.send('made it');
    expect((await nextMessage(ws)).data.toString()).toBe('made it');
    expect(app.requests).toHaveLength(1);
    const crit = await fx.proxy!.waitForLog((l) => String(l.msg).includes(`connect() to unix:${missing} failed`));
    expect(crit.msg).toContain(`connect() to unix:${missing} failed (2: No such file or directory) while connecting to upstream, client: 127.0.0.1, request: "GET /ws HTTP/1.1"`);
    await fx.proxy!.waitForLog((l) => String(l.msg).includes(`connect() to unix:${stale} failed (111: Connection refused)`));
    ws.close();
    const line = await fx.proxy!.waitForLog((l) => l.request_uri === '/ws' && 'status' in l);
    expect(line).toMatchObject({
      status: 101,
      upstream_addr: `unix:${missing}, unix:${stale}, ${app.address}`,
      upstream_status: '502, 502, 101',
    });
  });

  it('an app that closes before answering: the next server gets the upgrade (a GET, so it may)', async () => {
    const dying = fx.track(await closingUpstream(fx.tmp.path('dying.sock')));
    const app = fx.track(await wsUpstream(fx.tmp.path('app.sock')));
    await fx.start([dying.address, app.address]);
    const { ws } = await openWebSocket(wsUrl(), clients);
    ws.send('ok');
    expect((await nextMessage(ws)).data.toString()).toBe('ok');
    expect(dying.requests.map((r) => r.url)).toEqual(['/ws']);
    await fx.proxy!.waitForLog((l) =>
      String(l.msg).startsWith('upstream prematurely closed connection while reading response header from upstream'),
    );
  });

  it('a refusal whose status next_upstream lists moves the upgrade on, as any response would', async () => {
    const socketPath = fx.tmp.path('refusing.sock');
    await startApp(['--bind', `unix:${socketPath}`]);
    const app = fx.track(await wsUpstream(fx.tmp.path('app.sock')));
    await fx.start([`unix:${socketPath}`, app.address], 'proxy:\n  next_upstream: error timeout http_503\n');
    // The sample app answers an upgrade to /status/503 with a plain 503; the next server accepts it.
    const { ws } = await openWebSocket(wsUrl('/status/503'), clients);
    ws.send('second server');
    expect((await nextMessage(ws)).data.toString()).toBe('second server');
    ws.close();
    const line = await fx.proxy!.waitForLog((l) => l.request_uri === '/status/503' && 'status' in l);
    expect(line).toMatchObject({ status: 101, upstream_status: '503, 101' });
  });

  it('no server answers in read_timeout: 504, as for any request', async () => {
    const hanging = fx.track(await hangingUpstream(fx.tmp.path('hanging.sock')));
    await fx.start([hanging.address], 'proxy:\n  read_timeout: 500ms\n');
    const refusal = await refusalOf(wsUrl());
    expect(refusal.status).toBe(504);
    expect(refusal.body).toContain('504 Gateway Timeout');
  });

  it('the app dies mid-tunnel: the client\'s connection is closed, nothing is retried', async () => {
    const socketPath = fx.tmp.path('app.sock');
    const app = await startApp(['--bind', `unix:${socketPath}`]);
    const other = fx.track(await wsUpstream(fx.tmp.path('other.sock')));
    await fx.start([`unix:${socketPath}`, other.address]);
    const { ws, headers } = await openWebSocket(wsUrl(), clients);
    expect(headers['x-app-pid']).toBe(String(app.pid));
    ws.send('before');
    await nextMessage(ws);
    app.child.kill('SIGKILL');
    // No close frame: the tunnel's connection simply ended (1006).
    expect((await closed(ws)).code).toBe(1006);
    expect(other.requests).toEqual([]);
    const line = await fx.proxy!.waitForLog((l) => l.request_uri === '/ws' && 'status' in l);
    expect(line).toMatchObject({ status: 101, upstream_addr: `unix:${socketPath}`, upstream_status: '101' });
  });

  it('a reset from the app mid-tunnel is logged in nginx\'s words, at error level', async () => {
    // On TCP, where an app can send a reset (RST) at will.
    const app = fx.track(await raw101Upstream('tcp', (socket) => socket.once('data', () => socket.resetAndDestroy())));
    await fx.start([app.address]);
    const client = await rawConnect(fx.proxy!.port);
    client.socket.write('GET /raw HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: raw-test\r\n\r\n');
    await client.waitFor((text) => text.includes('\r\n\r\n'));
    expect(client.received()).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    client.socket.write('anything');
    await client.waitClosed();
    const line = await fx.proxy!.waitForLog((l) => String(l.msg).includes(TUNNEL));
    expect(line.msg).toContain(`recv() failed (104: Connection reset by peer) ${TUNNEL}, client: 127.0.0.1, request: "GET /raw HTTP/1.1", upstream: "http://${app.address}/raw"`);
    expect(line.level).toBe(50);
  });

  it('half-close: the client\'s FIN reaches the app, whose answer still reaches the client', async () => {
    const app = fx.track(
      await raw101Upstream(fx.tmp.path('app.sock'), (socket) => {
        let question = '';
        socket.on('data', (chunk: Buffer) => (question += chunk.toString()));
        socket.on('end', () => socket.end(`answer to "${question}" after your FIN`));
      }),
    );
    await fx.start([app.address]);
    const client = await rawConnect(fx.proxy!.port);
    client.socket.write('GET /raw HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: raw-test\r\n\r\n');
    await client.waitFor((text) => text.includes('\r\n\r\n'));
    client.socket.end('question');
    const text = await client.waitClosed();
    expect(text.slice(text.indexOf('\r\n\r\n') + 4)).toBe('answer to "question" after your FIN');
    const line = await fx.proxy!.waitForLog((l) => l.request_uri === '/raw' && 'status' in l);
    expect(line).toMatchObject({ status: 101, body_bytes_sent: 'answer to "question" after your FIN'.length });
  });

  it('an idle tunnel is closed after read_timeout; the log says so', async () => {
    const app = fx.track(await wsUpstream(fx.tmp.path('app.sock')));
    await fx.start([app.address], 'proxy:\n  read_timeout: 1s\n');
    const { ws } = await openWebSocket(wsUrl(), clients);
    const started = performance.now();
    expect((await closed(ws)).code).toBe(1006);
    const ms = performance.now() - started;
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(5_000);
    const line = await fx.proxy!.waitForLog((l) => String(l.msg).startsWith(`${TIMED_OUT} ${TUNNEL}`));
    expect(line.level).toBe(30);
    const access = await fx.proxy!.waitForLog((l) => l.request_uri === '/ws' && 'status' in l);
    expect(access).toMatchObject({ status: 101, body_bytes_sent: 0 });
    expect(access.request_time as number).toBeGreaterThanOrEqual(0.9);
  });

  it('traffic from the client alone keeps a tunnel open past read_timeout (nginx re-arms on either direction)', async () => {
    // An app that reads and never writes: only the client's messages re-arm the timer.
    const received: string[] = [];
    const app = fx.track(await wsUpstream(fx.tmp.path('app.sock'), (ws) => ws.on('message', (data) => received.push(data.toString()))));
    await fx.start([app.address], 'proxy:\n  read_timeout: 1s\n');
    const { ws } = await openWebSocket(wsUrl(), clients);
    // Six messages 400 ms apart: 2.4 s of life, more than twice read_timeout.
    for (let i = 0; i < 6; i++) {
      ws.send(`tick ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(ws.readyState).toBe(ws.OPEN);
    }
    expect(received).toEqual(['tick 0', 'tick 1', 'tick 2', 'tick 3', 'tick 4', 'tick 5']);
    expect((await closed(ws)).code).toBe(1006);
  });
});
