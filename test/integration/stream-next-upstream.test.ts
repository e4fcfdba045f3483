import { afterEach, describe, expect, it } from 'vitest';
import { makeStaleSocket } from '../helpers/app-sockets.js';
import { useProxyFixture } from '../helpers/fixture.js';
import { killAll } from '../helpers/node-process.js';
import {
  echoUpstream,
  startStreamProxy,
  type StreamClient,
  streamClient,
  type StreamProxy,
  type StreamUpstream,
} from '../helpers/stream.js';
import { type UnacceptingListener, unacceptingTcpListener, unacceptingUnixListener } from '../helpers/unaccepting-listener.js';

/**
 * Choosing a server for a stream session (ngx_stream_proxy_connect, _next_upstream): a
 * failed connect moves to the next server, backups last, while tries are left; passive
 * health as for HTTP; 502 in the access log when no server could be reached.
 */
describe('stream: connect failures, next upstream and passive health', () => {
  // The temp dir and the upstreams; the proxies here are stream proxies, stopped by killAll.
  const fx = useProxyFixture();
  afterEach(killAll);

  async function echo(name: string): Promise<StreamUpstream> {
    return fx.track(await echoUpstream(fx.tmp.path(`${name}.sock`)));
  }

  async function stale(name: string): Promise<string> {
    const path = fx.tmp.path(`${name}.sock`);
    await makeStaleSocket(path);
    return path;
  }

  /** One session: sends `text`, half-closes, and resolves with the client once the proxy has closed and logged it. */
  async function session(proxy: StreamProxy, text = 'ping'): Promise<StreamClient> {
    const logged = proxy.sessions().length;
    const client = await streamClient(proxy.port);
    client.socket.end(text);
    await client.waitFor('the session to end', () => client.closed(), 10_000);
    await proxy.waitForSessions(logged + 1);
    return client;
  }

  /** The error-log lines about connect() and connect timeouts, in order. */
  function connectErrors(proxy: StreamProxy): string[] {
    return proxy.process
      .errorLog()
      .map((line) => String(line.msg))
      .filter((msg) => msg.startsWith('connect()') || msg.startsWith('upstream timed out'));
  }

  /**
   * The connect errors once `count` of them are in, and a moment later, so that one too
   * many shows. pino writes each log asynchronously, so a session's access line may come
   * before the error lines it caused.
   */
  async function connectErrorsSettled(proxy: StreamProxy, count: number): Promise<string[]> {
    await proxy.process.waitFor(`${count} connect errors`, () => (connectErrors(proxy).length >= count ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 200));
    return connectErrors(proxy);
  }

  it('a missing socket file: nginx\'s [crit] line, and the session goes to the next server', async () => {
    const missing = fx.tmp.path('missing.sock');
    const b = await echo('b');
    const proxy = await startStreamProxy(fx.tmp, [`unix:${missing}`, b.address]);
    const client = await session(proxy, 'hello');
    expect(client.received().toString()).toBe('hello');
    expect(b.connections.map((c) => c.received().toString())).toEqual(['hello']);

    const line = await proxy.process.waitForLog((l) => String(l.msg).startsWith('connect()'));
    expect(line.msg).toBe(
      `connect() to unix:${missing} failed (2: No such file or directory) while connecting to upstream, ` +
        `client: 127.0.0.1, server: 127.0.0.1:${proxy.port}, upstream: "unix:${missing}", ` +
        'bytes from/to client:0/0, bytes from/to upstream:0/0',
    );
    expect(line).toMatchObject({ level: 50, nginx_level: 'crit', upstream_addr: `unix:${missing}` });
    const [access] = await proxy.waitForSessions(1);
    expect(access).toMatchObject({
      status: 200,
      upstream_addr: `unix:${missing}, ${b.address}`,
      upstream_bytes_sent: '0, 5',
      upstream_bytes_received: '0, 5',
    });
    expect(String(access!.upstream_connect_time)).toMatch(/^-, \d+\.\d{3}$/);
  });

  it('a stale socket (connection refused) as the only primary: the backup serves', async () => {
    const refused = await stale('stale');
    const backup = await echo('backup');
    const proxy = await startStreamProxy(fx.tmp, [`unix:${refused}`, `${backup.address} backup`]);
    const client = await session(proxy);
    expect(client.received().toString()).toBe('ping');
    expect(backup.connections).toHaveLength(1);
    expect(await connectErrorsSettled(proxy, 1)).toEqual([
      expect.stringContaining(`connect() to unix:${refused} failed (111: Connection refused) while connecting to upstream`),
    ]);
    const line = await proxy.process.waitForLog((l) => String(l.msg).startsWith('connect()'));
    expect(line.nginx_level).toBe('error');
  });

  it('no server reachable: the client connection is closed with nothing sent, and the access log says 502', async () => {
    const a = fx.tmp.path('a.sock');
    const b = await stale('b');
    const proxy = await startStreamProxy(fx.tmp, [`unix:${a}`, `unix:${b}`]);
    const client = await session(proxy);
    expect(client.received().length).toBe(0);
    expect(await connectErrorsSettled(proxy, 2)).toHaveLength(2);
    const [access] = await proxy.waitForSessions(1);
    expect(access).toMatchObject({
      status: 502,
      bytes_sent: 0,
      upstream_addr: `unix:${a}, unix:${b}`,
      upstream_connect_time: '-, -',
    });
  });

  it('a single server is tried once, never taken out: 502 each time, and it serves as soon as it is back', async () => {
    const path = fx.tmp.path('only.sock');
    const proxy = await startStreamProxy(fx.tmp, [`unix:${path}`]);
    for (let i = 0; i < 2; i++) await session(proxy);
    expect(await connectErrorsSettled(proxy, 2)).toHaveLength(2);
    const back = await echoUpstream(path);
    fx.onCleanup(() => back.close());
    const client = await session(proxy, 'again');
    expect(client.received().toString()).toBe('again');
    const sessions = await proxy.waitForSessions(3);
    expect(sessions.map((s) => s.status)).toEqual([502, 502, 200]);
    expect(proxy.process.errorLog().some((l) => String(l.msg).startsWith('no live upstreams'))).toBe(false);
  });

  it('passive health: a server that failed is skipped within fail_timeout, and the log says it was disabled', async () => {
    const refused = await stale('stale');
    const b = await echo('b');
    const proxy = await startStreamProxy(fx.tmp, [`unix:${refused} fail_timeout=30s`, b.address]);
    for (let i = 0; i < 6; i++) expect((await session(proxy, `s${i}`)).received().toString()).toBe(`s${i}`);
    // Round robin would have tried the stale socket for 3 of the 6; after its first failure, none.
    expect(await connectErrorsSettled(proxy, 1)).toHaveLength(1);
    expect(b.connections).toHaveLength(6);
    await proxy.waitForError(`upstream server temporarily disabled, upstream: "unix:${refused}"`);
  });

  it('max_fails=2: a refusing server is tried twice before it is taken out', async () => {
    const refused = await stale('stale');
    const b = await echo('b');
    const proxy = await startStreamProxy(fx.tmp, [`unix:${refused} max_fails=2 fail_timeout=30s`, b.address]);
    for (let i = 0; i < 8; i++) await session(proxy);
    expect(await connectErrorsSettled(proxy, 2)).toHaveLength(2);
    expect(b.connections).toHaveLength(8);
  });

  it('weight and down: weights 2:1 share the sessions 4:2, a down server gets none', async () => {
    const [a, b, c] = [await echo('a'), await echo('b'), await echo('c')];
    const proxy = await startStreamProxy(fx.tmp, [`${a.address} weight=2`, b.address, `${c.address} down`]);
    for (let i = 0; i < 6; i++) await session(proxy);
    expect([a, b, c].map((u) => u.connections.length)).toEqual([4, 2, 0]);
  });

  it('max_conns counts open sessions: a server at its limit is passed over while its session lasts', async () => {
    const [a, b] = [await echo('a'), await echo('b')];
    // Weights 10:1 send every session to a, but a takes one at a time.
    const proxy = await startStreamProxy(fx.tmp, [`${a.address} weight=10 max_conns=1`, b.address]);
    const held = await streamClient(proxy.port);
    held.socket.write('held');
    await held.waitFor('the held echo', () => held.received().toString() === 'held');
    await session(proxy);
    await session(proxy);
    expect([a.connections.length, b.connections.length]).toEqual([1, 2]);
    held.socket.end();
    // Its access-log line is written once the proxy has let go of the session.
    await proxy.waitForSessions(3);
    await session(proxy);
    expect([a.connections.length, b.connections.length]).toEqual([2, 2]);
  });

  it('every server out within fail_timeout: "no live upstreams", 502 without a connect, upstream_addr the group name', async () => {
    const a = await stale('a');
    const b = await stale('b');
    const proxy = await startStreamProxy(fx.tmp, [`unix:${a} fail_timeout=30s`, `unix:${b} fail_timeout=30s`]);
    await session(proxy);
    expect(await connectErrorsSettled(proxy, 2)).toHaveLength(2);
    await session(proxy);
    expect(await connectErrorsSettled(proxy, 2)).toHaveLength(2);
    const line = await proxy.waitForError('no live upstreams');
    expect(line.msg).toBe(
      `no live upstreams while connecting to upstream, client: 127.0.0.1, server: 127.0.0.1:${proxy.port}, ` +
        'upstream: "backend", bytes from/to client:0/0, bytes from/to upstream:0/0',
    );
    const sessions = await proxy.waitForSessions(2);
    expect(sessions[1]).toMatchObject({ status: 502, upstream_addr: 'backend', upstream_connect_time: '-' });
  });

  it('next_upstream: off: a failed connect ends the session with 502, the next server is not tried', async () => {
    const missing = fx.tmp.path('missing.sock');
    const b = await echo('b');
    const proxy = await startStreamProxy(fx.tmp, [`unix:${missing}`, b.address], { settings: 'next_upstream: off' });
    // Smooth round robin over equal weights starts with the first server listed.
    await session(proxy);
    expect(b.connections).toHaveLength(0);
    const [access] = await proxy.waitForSessions(1);
    expect(access).toMatchObject({ status: 502, upstream_addr: `unix:${missing}` });
  });

  it('next_upstream_tries: 2 stops after two failed connects, though a third server is there', async () => {
    const a = fx.tmp.path('a.sock');
    const b = fx.tmp.path('b.sock');
    const c = await echo('c');
    const proxy = await startStreamProxy(fx.tmp, [`unix:${a}`, `unix:${b}`, c.address], { settings: 'next_upstream_tries: 2' });
    await session(proxy);
    expect(c.connections).toHaveLength(0);
    const [access] = await proxy.waitForSessions(1);
    expect(access).toMatchObject({ status: 502, upstream_addr: `unix:${a}, unix:${b}` });
  });

  it('a full Unix-socket accept queue (EAGAIN) fails at once and moves on', async () => {
    const full: UnacceptingListener = await unacceptingUnixListener(fx.tmp.path('full.sock'));
    fx.onCleanup(() => full.stop());
    await full.fill();
    const b = await echo('b');
    const proxy = await startStreamProxy(fx.tmp, [full.address, b.address], { settings: 'connect_timeout: 10s' });
    const started = performance.now();
    const client = await session(proxy);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(client.received().toString()).toBe('ping');
    expect(await connectErrorsSettled(proxy, 1)).toEqual([
      expect.stringContaining(`connect() to ${full.address} failed (11: Resource temporarily unavailable) while connecting to upstream`),
    ]);
  });

  it('connect_timeout: a TCP server that never answers the SYN is given up after it, and the next one serves', async () => {
    const full = await unacceptingTcpListener();
    fx.onCleanup(() => full.stop());
    await full.fill();
    const b = await echo('b');
    const proxy = await startStreamProxy(fx.tmp, [full.address, b.address], { settings: 'connect_timeout: 1s' });
    const started = performance.now();
    const client = await session(proxy);
    const ms = performance.now() - started;
    expect(client.received().toString()).toBe('ping');
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(5_000);
    const line = await proxy.waitForError('upstream timed out');
    expect(line.msg).toBe(
      `upstream timed out (110: Connection timed out) while connecting to upstream, client: 127.0.0.1, ` +
        `server: 127.0.0.1:${proxy.port}, upstream: "${full.address}", bytes from/to client:0/0, bytes from/to upstream:0/0`,
    );
    const [access] = await proxy.waitForSessions(1);
    expect(access).toMatchObject({ status: 200, upstream_addr: `${full.address}, ${b.address}` });
  });
});
