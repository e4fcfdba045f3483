import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { type AdminTarget, sample, scrapeMetrics, scrapeStatus } from '../helpers/admin.js';
import { killAll, type Running } from '../helpers/node-process.js';
import { startProxyWithConfig } from '../helpers/proxy-process.js';
import { echoUpstream, type StreamClient, streamClient, type StreamUpstream } from '../helpers/stream.js';
import { useProxyFixture } from '../helpers/fixture.js';
import { freePort } from '../helpers/temp.js';
import { unacceptingTcpListener } from '../helpers/unaccepting-listener.js';
import type { TestUpstream } from '../helpers/upstreams.js';

/**
 * Stream (L4) servers in the admin endpoint, as nginx Plus's /api/N/stream/upstreams
 * counts its peers: each connect attempt is a request to the server, a failed connect a
 * failure with its error-log text, the bytes each session relayed, and the sessions by
 * their $status, with `workers` summed by the primary and the counts kept by a reload.
 */
describe('stream servers in GET /status and GET /metrics', () => {
  // The temp dir and the upstreams; the proxies here are started from files, and stopped by killAll.
  const fx = useProxyFixture();
  afterEach(killAll);

  async function echo(name: string): Promise<StreamUpstream> {
    return fx.track(await echoUpstream(fx.tmp.path(`${name}.sock`)));
  }

  interface Started {
    readonly proxy: Running;
    readonly file: string;
    readonly port: number;
    readonly admin: AdminTarget;
  }

  /** The proxy with one stream server (upstream "relay", in front of `servers`) and the admin endpoint; `extra`: more YAML. */
  async function start(servers: readonly string[], { extra = '', settings = '' } = {}): Promise<Started> {
    const port = await freePort();
    const adminPort = await freePort();
    const file = fx.tmp.path('proxy.yaml');
    writeFileSync(
      file,
      `${extra}admin:\n  listen: ${adminPort}\n` +
        `stream:\n  - listen: 127.0.0.1:${port}\n${settings}    upstream:\n      name: relay\n      servers:\n` +
        servers.map((server) => `        - ${server}\n`).join(''),
    );
    const proxy = await startProxyWithConfig(file);
    return { proxy, file, port, admin: { url: `http://127.0.0.1:${adminPort}` } };
  }

  /** The access-log lines of stream sessions (HTTP lines have no session_time). */
  function sessions(proxy: Running): Record<string, unknown>[] {
    return proxy.accessLog().filter((line) => 'session_time' in line);
  }

  /** One session: sends `text`, half-closes, and resolves once the proxy has closed it and logged it. */
  async function session(started: Started, text: string): Promise<StreamClient> {
    const logged = sessions(started.proxy).length;
    const client = await streamClient(started.port);
    client.socket.end(text);
    await client.waitFor('the session to end', () => client.closed(), 10_000);
    await started.proxy.waitFor(`session ${logged + 1} logged`, () => (sessions(started.proxy).length > logged ? true : undefined));
    return client;
  }

  it('a missing server and a working one: requests, failures, last_error, bytes; totals and series; no_live once both fail', async () => {
    const missing = `unix:${fx.tmp.path('missing.sock')}`;
    const b = await echo('b');
    const started = await start([missing, b.address]);

    const texts = ['one', 'two!', 'three', 'four?'];
    for (const text of texts) expect((await session(started, text)).received().toString()).toBe(text);
    // Round robin starts with the first server: its connect fails, the session moves to b,
    // and max_fails=1 keeps it out (fail_timeout 10s) for the other three.
    expect(sessions(started.proxy).map((line) => [line.status, line.upstream_addr])).toEqual([
      [200, `${missing}, ${b.address}`],
      [200, b.address],
      [200, b.address],
      [200, b.address],
    ]);
    const bytes = texts.join('').length;

    let status = await scrapeStatus(started.admin);
    expect(status.upstreams.map((upstream) => [upstream.kind, upstream.name])).toEqual([['stream', 'relay']]);
    let [serverA, serverB] = status.upstreams[0]!.servers;
    expect(serverA).toMatchObject({ address: missing, state: 'unavailable', fails: 1, requests: 1, failures: 1, sent: 0, received: 0 });
    expect(serverA!.last_error).toEqual({
      time: expect.any(String),
      kind: 'error',
      message: `connect() to ${missing} failed (2: No such file or directory)`,
    });
    expect(Date.now() - Date.parse(serverA!.last_error!.time)).toBeLessThan(60_000);
    expect(serverB).toEqual({
      address: b.address,
      backup: false,
      weight: 1,
      state: 'up',
      unavailable_until: null,
      fails: 0,
      active: 0,
      requests: 4,
      failures: 0,
      sent: bytes,
      received: bytes,
      last_error: null,
    });
    // What b saw: one connection per session, carrying what the clients sent.
    expect(b.connections.map((connection) => connection.received().toString())).toEqual(texts);
    // Stream sessions are not HTTP requests: they have their own totals.
    expect(status.totals.requests).toBe(0);
    expect(status.totals.responses['2xx']).toBe(0);
    expect(status.totals.sessions).toEqual({ '1xx': 0, '2xx': 4, '3xx': 0, '4xx': 0, '5xx': 0 });
    expect(status.totals.upstream_failures).toMatchObject({ error: 1, timeout: 0, no_live: 0 });

    let text = await scrapeMetrics(started.admin);
    expect(sample(text, 'sockproxy_stream_sessions_total', { status_class: '2xx', upstream: b.address })).toBe(4);
    expect(sample(text, 'sockproxy_stream_upstream_bytes_total', { direction: 'sent', upstream: b.address })).toBe(bytes);
    expect(sample(text, 'sockproxy_stream_upstream_bytes_total', { direction: 'received', upstream: b.address })).toBe(bytes);
    expect(sample(text, 'sockproxy_upstream_failures_total', { kind: 'error', upstream: missing })).toBe(1);
    // Nothing of the stream servers in the HTTP series.
    expect(text).not.toMatch(/^sockproxy_requests_total\{/m);
    expect(text).not.toMatch(/^sockproxy_upstream_response_seconds_count\{/m);

    // b goes away too: the next session's connect to it fails, and then no server is left.
    await b.close();
    await session(started, 'five');
    expect(sessions(started.proxy).at(-1)).toMatchObject({ status: 502, upstream_addr: `${b.address}, relay` });
    status = await scrapeStatus(started.admin);
    [serverA, serverB] = status.upstreams[0]!.servers;
    expect(serverA).toMatchObject({ requests: 1, failures: 1 });
    expect(serverB).toMatchObject({ state: 'unavailable', requests: 5, failures: 1, sent: bytes, received: bytes });
    expect(serverB!.last_error).toMatchObject({ kind: 'error', message: `connect() to ${b.address} failed (2: No such file or directory)` });
    expect(status.totals.sessions).toMatchObject({ '2xx': 4, '5xx': 1 });
    expect(status.totals.upstream_failures).toMatchObject({ error: 2, timeout: 0, no_live: 1 });

    text = await scrapeMetrics(started.admin);
    expect(sample(text, 'sockproxy_upstream_failures_total', { kind: 'error', upstream: b.address })).toBe(1);
    expect(sample(text, 'sockproxy_upstream_failures_total', { kind: 'no_live', upstream: 'relay' })).toBe(1);
    // The session that reached no server is counted under the upstream's name, as HTTP's requests are.
    expect(sample(text, 'sockproxy_stream_sessions_total', { status_class: '5xx', upstream: 'relay' })).toBe(1);
    expect(sample(text, 'sockproxy_stream_sessions_total', { status_class: '2xx', upstream: b.address })).toBe(4);
  });

  it('a connect that times out is counted as kind "timeout", with nginx\'s text', async () => {
    const full = await unacceptingTcpListener();
    fx.onCleanup(() => full.stop());
    await full.fill();
    const b = await echo('b');
    const started = await start([full.address, b.address], { settings: '    connect_timeout: 300ms\n' });
    expect((await session(started, 'ping')).received().toString()).toBe('ping');
    const status = await scrapeStatus(started.admin);
    expect(status.upstreams[0]!.servers[0]).toMatchObject({ address: full.address, requests: 1, failures: 1 });
    expect(status.upstreams[0]!.servers[0]!.last_error).toMatchObject({ kind: 'timeout', message: 'upstream timed out (110: Connection timed out)' });
    expect(status.totals.upstream_failures).toMatchObject({ error: 0, timeout: 1 });
    expect(sample(await scrapeMetrics(started.admin), 'sockproxy_upstream_failures_total', { kind: 'timeout', upstream: full.address })).toBe(1);
  });

  it('a reload keeps the counts of the servers whose address stays, HTTP and stream; a new address starts from zero', async () => {
    const app: TestUpstream = await fx.ok('app');
    const httpPort = await freePort();
    const missing = `unix:${fx.tmp.path('missing.sock')}`;
    const b = await echo('b');
    const c = await echo('c');
    const started = await start([missing, b.address], {
      extra: `listen: 127.0.0.1:${httpPort}\nupstream:\n  servers: [${app.address}]\n`,
    });
    for (const text of ['one', 'two']) await session(started, text);
    for (let i = 0; i < 3; i++) expect((await fetch(`http://127.0.0.1:${httpPort}/`)).status).toBe(200);
    const before = await scrapeStatus(started.admin);
    const [httpBefore, streamBefore] = before.upstreams;
    expect(httpBefore!.servers[0]).toMatchObject({ address: app.address, requests: 3 });
    expect(streamBefore!.servers.map((server) => [server.address, server.requests, server.failures])).toEqual([
      [missing, 1, 1],
      [b.address, 2, 0],
    ]);

    // The missing server is replaced by c; b and the HTTP server stay (with a new weight: the address is what counts).
    const yaml = readFileSync(started.file, 'utf8');
    writeFileSync(started.file, yaml.replace(missing, c.address).replace(`servers: [${app.address}]`, `servers: ["${app.address} weight=2"]`));
    started.proxy.child.kill('SIGHUP');
    await started.proxy.waitForLog((line) => String(line.msg).startsWith('reconfigured:'));

    const after = await scrapeStatus(started.admin);
    const [httpAfter, streamAfter] = after.upstreams;
    expect(httpAfter!.servers[0]).toMatchObject({ address: app.address, weight: 2, requests: 3 });
    expect(streamAfter!.servers.map((server) => [server.address, server.requests, server.failures, server.sent, server.last_error])).toEqual([
      [c.address, 0, 0, 0, null],
      [b.address, 2, 0, 6, null],
    ]);
    expect(after.totals.sessions['2xx']).toBe(2);

    await session(started, 'three');
    await session(started, 'four');
    const later = (await scrapeStatus(started.admin)).upstreams[1]!;
    expect(later.servers.map((server) => [server.address, server.requests])).toEqual([
      [c.address, 1],
      [b.address, 3],
    ]);
  });

  it('workers: 2: the primary sums the stream counts of both workers', async () => {
    const missing = `unix:${fx.tmp.path('missing.sock')}`;
    const b = await echo('b');
    const started = await start([missing, b.address], { extra: 'workers: 2\n' });
    const texts = ['a', 'bb', 'ccc', 'dddd', 'eeeee', 'ffffff'];
    // One connection each: the primary hands connections to the workers in turn.
    for (const text of texts) expect((await session(started, text)).received().toString()).toBe(text);
    // Passive health is per worker: each one's first session tried the missing server.
    const triedMissing = sessions(started.proxy).filter((line) => String(line.upstream_addr).startsWith(missing)).length;
    expect(triedMissing).toBe(2);
    const bytes = texts.join('').length;

    const status = await scrapeStatus(started.admin);
    expect(status.workers).toHaveLength(2);
    expect(status.workers_not_answering).toEqual([]);
    const [serverA, serverB] = status.upstreams[0]!.servers;
    expect(serverA).toMatchObject({ address: missing, requests: triedMissing, failures: triedMissing, fails: triedMissing });
    expect(serverA!.last_error).toMatchObject({ kind: 'error' });
    expect(serverB).toMatchObject({ address: b.address, requests: 6, failures: 0, sent: bytes, received: bytes, last_error: null });
    expect(status.totals.sessions['2xx']).toBe(6);
    expect(status.totals.upstream_failures.error).toBe(triedMissing);

    const text = await scrapeMetrics(started.admin);
    expect(sample(text, 'sockproxy_stream_sessions_total', { status_class: '2xx', upstream: b.address })).toBe(6);
    expect(sample(text, 'sockproxy_stream_upstream_bytes_total', { direction: 'sent', upstream: b.address })).toBe(bytes);
    expect(sample(text, 'sockproxy_upstream_failures_total', { kind: 'error', upstream: missing })).toBe(triedMissing);
  });
});
