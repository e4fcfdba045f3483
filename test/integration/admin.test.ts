import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { adminRequest, sample, scrapeMetrics, scrapeStatus } from '../helpers/admin.js';
import { stackLines } from '../helpers/cli.js';
import { useProxyFixture } from '../helpers/fixture.js';
import { killAll } from '../helpers/node-process.js';
import { runProxy, startProxyWithConfig } from '../helpers/proxy-process.js';
import { freePort } from '../helpers/temp.js';
import { hangingUpstream, httpUpstream, type Respond } from '../helpers/upstreams.js';
import { pollUntil } from '../helpers/wait.js';

/** An upstream that answers its path's status: /404 → 404, /502 → 502, anything else 200 "ok NAME". */
function byPath(name: string): Respond {
  return (req, res) => {
    const status = Number(/^\/(\d{3})$/.exec(req.url ?? '')?.[1] ?? 200);
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(`ok ${name}\n`);
  };
}

/** admin: the status and metrics endpoint of a single process (workers: 1, the default). */
describe('admin: GET /status and GET /metrics', () => {
  const fx = useProxyFixture();

  async function startWithAdmin(servers: string[], extra = ''): Promise<{ url: string }> {
    const port = await freePort();
    await fx.start(servers, `${extra}admin:\n  listen: 127.0.0.1:${port}\n`);
    return { url: `http://127.0.0.1:${port}` };
  }

  const get = async (path: string) => {
    const res = await request(`${fx.proxy!.url}${path}`);
    await res.body.text();
    return res.statusCode;
  };

  it('/status: each server, its state and counts, the totals, and they move as requests are made', async () => {
    const a = fx.track(await httpUpstream(fx.tmp.path('a.sock'), byPath('a')));
    const b = fx.track(await httpUpstream(fx.tmp.path('b.sock'), byPath('b')));
    const admin = await startWithAdmin([a.address, `${b.address} backup`]);

    const before = await scrapeStatus(admin);
    expect(before.pid).toBe(fx.proxy!.child.pid);
    expect(before.workers.map((w) => w.pid)).toEqual([fx.proxy!.child.pid]);
    expect(before.config.file).toMatch(/proxy-\d+\.yaml$/);
    expect(before.totals.requests).toBe(0);
    expect(before.upstreams).toEqual([
      {
        name: 'backend',
        kind: 'http',
        servers: [
          { address: a.address, backup: false, weight: 1, state: 'up', unavailable_until: null, fails: 0, active: 0, requests: 0, failures: 0, connections: { idle: 0, active: 0 }, last_error: null },
          { address: b.address, backup: true, weight: 1, state: 'backup', unavailable_until: null, fails: 0, active: 0, requests: 0, failures: 0, connections: { idle: 0, active: 0 }, last_error: null },
        ],
      },
    ]);

    expect([await get('/'), await get('/'), await get('/404')]).toEqual([200, 200, 404]);
    const after = await scrapeStatus(admin);
    expect(after.totals.requests).toBe(3);
    expect(after.totals.responses).toEqual({ '1xx': 0, '2xx': 2, '3xx': 0, '4xx': 1, '5xx': 0 });
    const [serverA, serverB] = after.upstreams[0]!.servers;
    expect(serverA).toMatchObject({ state: 'up', requests: 3, failures: 0, active: 0, connections: { idle: 1, active: 0 } });
    expect(serverB).toMatchObject({ state: 'backup', requests: 0 });
    expect(a.requests).toHaveLength(3);
    expect(after.uptime_seconds).toBeGreaterThanOrEqual(0);
  });

  it('/status counts each server line: an address listed again as a backup has its own counts', async () => {
    const a = await fx.ok('a');
    const admin = await startWithAdmin([a.address, `${a.address} backup`]);
    for (let i = 0; i < 3; i++) expect(await get('/')).toBe(200);
    const [primary, backup] = (await scrapeStatus(admin)).upstreams[0]!.servers;
    expect(primary).toMatchObject({ address: a.address, backup: false, state: 'up', requests: 3 });
    expect(backup).toMatchObject({ address: a.address, backup: true, state: 'backup', requests: 0 });
  });

  it('/metrics: requests by status class and server, the response-time histogram, process metrics; the numbers move', async () => {
    const a = fx.track(await httpUpstream(fx.tmp.path('a.sock'), byPath('a')));
    const admin = await startWithAdmin([a.address]);
    const res = await adminRequest(admin, '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    // prom-client's default process metrics, and ours before any request.
    expect(sample(res.text, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(res.text).toContain('# TYPE sockproxy_upstream_response_seconds histogram');
    expect(sample(res.text, 'sockproxy_reloads_total', { result: 'ok' })).toBe(0);
    expect(sample(res.text, 'sockproxy_requests_total', { status_class: '2xx', upstream: a.address })).toBeUndefined();

    for (const path of ['/', '/', '/', '/404', '/500']) await get(path);
    const text = await scrapeMetrics(admin);
    expect(sample(text, 'sockproxy_requests_total', { status_class: '2xx', upstream: a.address })).toBe(3);
    expect(sample(text, 'sockproxy_requests_total', { status_class: '4xx', upstream: a.address })).toBe(1);
    expect(sample(text, 'sockproxy_requests_total', { status_class: '5xx', upstream: a.address })).toBe(1);
    expect(sample(text, 'sockproxy_upstream_response_seconds_count', { upstream: a.address })).toBe(5);
    expect(sample(text, 'sockproxy_upstream_response_seconds_bucket', { upstream: a.address, le: '+Inf' })).toBe(5);
    expect(sample(text, 'sockproxy_upstream_response_seconds_sum', { upstream: a.address })).toBeGreaterThan(0);
    // A 500 the app sent, not listed in next_upstream, is a response, not a failure (nginx).
    expect(text).not.toMatch(/^sockproxy_upstream_failures_total\{/m);
    expect(sample(text, 'sockproxy_tunnels')).toBe(0);
  });

  it('sockproxy_client_connections follows the open client connections (not the admin ones)', async () => {
    const a = await fx.ok('a');
    const admin = await startWithAdmin([a.address]);
    const connections = async () => sample(await scrapeMetrics(admin), 'sockproxy_client_connections')!;
    const idle = await connections();
    const sockets = await Promise.all([1, 2, 3].map(() => connect(fx.proxy!.port)));
    await until(async () => (await connections()) === idle + 3, 5_000, 'three more client connections');
    expect((await scrapeStatus(admin)).totals.client_connections).toBe(idle + 3);
    for (const socket of sockets) socket.destroy();
    await until(async () => (await connections()) === idle, 5_000, 'the connections to be gone');
  });

  it('failures by kind: error (a dead server: unavailable, last_error), http_5xx, timeout, no_live', async () => {
    const a = fx.track(await httpUpstream(fx.tmp.path('a.sock'), byPath('a')));
    const b = await httpUpstream(fx.tmp.path('b.sock'), byPath('b'));
    const admin = await startWithAdmin(
      [a.address, `${b.address} max_fails=1 fail_timeout=30s`],
      'proxy:\n  next_upstream: error timeout http_502\n',
    );
    await b.close(); // b's socket file is gone: connect() fails with ENOENT
    for (let i = 0; i < 4; i++) expect(await get('/')).toBe(200);
    let status = await scrapeStatus(admin);
    const serverB = status.upstreams[0]!.servers[1]!;
    expect(serverB.state).toBe('unavailable');
    expect(Date.parse(serverB.unavailable_until!)).toBeGreaterThan(Date.now() + 20_000);
    expect(serverB.fails).toBe(1);
    expect(serverB.failures).toBe(1);
    expect(serverB.last_error).toMatchObject({ kind: 'error' });
    expect(serverB.last_error!.message).toContain(`connect() to ${b.address} failed (2: No such file or directory)`);
    expect(status.totals.upstream_failures.error).toBe(1);
    let text = await scrapeMetrics(admin);
    expect(sample(text, 'sockproxy_upstream_failures_total', { kind: 'error', upstream: b.address })).toBe(1);
    expect(sample(text, 'sockproxy_requests_total', { status_class: '2xx', upstream: a.address })).toBe(4);

    // A listed 502 counts against a (http_5xx); the request moves on and finds b still out:
    // no live upstreams, 502 to the client, named after the upstream.
    expect(await get('/502')).toBe(502);
    text = await scrapeMetrics(admin);
    expect(sample(text, 'sockproxy_upstream_failures_total', { kind: 'http_5xx', upstream: a.address })).toBe(1);
    expect(sample(text, 'sockproxy_upstream_failures_total', { kind: 'no_live', upstream: 'backend' })).toBe(1);
    expect(sample(text, 'sockproxy_requests_total', { status_class: '5xx', upstream: 'backend' })).toBe(1);
    status = await scrapeStatus(admin);
    expect(status.upstreams[0]!.servers[0]!.last_error).toMatchObject({ kind: 'http_5xx', message: 'upstream sent status 502' });
    expect(status.upstreams[0]!.servers[0]!.state).toBe('unavailable');
    expect(status.totals.responses['5xx']).toBe(1);
    expect(status.totals.upstream_failures).toMatchObject({ error: 1, http_5xx: 1, no_live: 1, timeout: 0 });
  });

  it('a timeout is counted as kind="timeout"', async () => {
    const slow = fx.track(await hangingUpstream(fx.tmp.path('slow.sock')));
    const admin = await startWithAdmin([slow.address], 'proxy:\n  read_timeout: 200ms\n');
    expect(await get('/')).toBe(504);
    const text = await scrapeMetrics(admin);
    expect(sample(text, 'sockproxy_upstream_failures_total', { kind: 'timeout', upstream: slow.address })).toBe(1);
    expect(sample(text, 'sockproxy_requests_total', { status_class: '5xx', upstream: slow.address })).toBe(1);
    const status = await scrapeStatus(admin);
    expect(status.upstreams[0]!.servers[0]!.last_error).toMatchObject({ kind: 'timeout', message: 'upstream timed out (110: Connection timed out)' });
    // A single server is never taken out (nginx), whatever its failures.
    expect(status.upstreams[0]!.servers[0]!.state).toBe('up');
  });

  it('a reload: the removed server is "draining" while its request runs, then gone; the reload is counted and loaded_at moves', async () => {
    const held: (() => void)[] = [];
    const a = fx.track(
      await httpUpstream(fx.tmp.path('a.sock'), (req, res) => {
        const answer = (): void => void res.end('slow a\n');
        if (req.url === '/slow') held.push(answer);
        else answer();
      }),
    );
    const b = fx.track(await httpUpstream(fx.tmp.path('b.sock'), byPath('b')));
    const admin = await startWithAdmin([a.address]);
    const before = await scrapeStatus(admin);
    const slow = request(`${fx.proxy!.url}/slow`);
    await pollUntil('the slow request at a', () => (held.length === 1 ? true : undefined), 5_000);

    const file = before.config.file;
    writeFileSync(file, readFileSync(file, 'utf8').replace(a.address, b.address));
    fx.proxy!.child.kill('SIGHUP');
    await fx.proxy!.waitForLog((line) => String(line.msg).startsWith('reconfigured:'));
    const during = await scrapeStatus(admin);
    expect(during.upstreams[0]!.servers.map((server) => [server.address, server.state, server.active])).toEqual([
      [b.address, 'up', 0],
      [a.address, 'draining', 1],
    ]);
    expect(Date.parse(during.config.loaded_at)).toBeGreaterThan(Date.parse(before.config.loaded_at));
    expect(sample(await scrapeMetrics(admin), 'sockproxy_reloads_total', { result: 'ok' })).toBe(1);
    expect(await get('/')).toBe(200);
    expect(b.requests).toHaveLength(1);

    held.splice(0).forEach((answer) => answer());
    const res = await slow;
    expect([res.statusCode, await res.body.text()]).toEqual([200, 'slow a\n']);
    const after = await scrapeStatus(admin);
    expect(after.upstreams[0]!.servers.map((server) => server.address)).toEqual([b.address]);
  });

  it('only GET /status and GET /metrics: other paths 404, other methods 405 with Allow; HEAD answers', async () => {
    const a = await fx.ok('a');
    const admin = await startWithAdmin([a.address]);
    expect((await adminRequest(admin, '/')).status).toBe(404);
    expect((await adminRequest(admin, '/status/')).status).toBe(404);
    const post = await adminRequest(admin, '/status', 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    expect((await adminRequest(admin, '/metrics', 'DELETE')).status).toBe(405);
    const head = await adminRequest(admin, '/status', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
    expect(a.requests).toHaveLength(0);
  });

  it('on a unix socket; the stream servers are in /status too', async () => {
    const a = await fx.ok('a');
    const socketPath = fx.tmp.path('admin.sock');
    const streamPort = await freePort();
    await fx.start(
      [a.address],
      `admin:\n  listen: unix:${socketPath}\nstream:\n  - listen: 127.0.0.1:${streamPort}\n    upstream:\n      name: echo\n      servers: [unix:${fx.tmp.path('echo.sock')}]\n`,
    );
    const status = await scrapeStatus({ socketPath });
    expect(status.upstreams.map((u) => [u.kind, u.name])).toEqual([
      ['http', 'backend'],
      ['stream', 'echo'],
    ]);
    expect(status.upstreams[1]!.servers[0]).toEqual({
      address: `unix:${fx.tmp.path('echo.sock')}`,
      backup: false,
      weight: 1,
      state: 'up',
      unavailable_until: null,
      fails: 0,
      active: 0,
      requests: 0,
      failures: 0,
      sent: 0,
      received: 0,
      last_error: null,
    });
  });

  it('a bad admin listen is a configuration error: exit 2, file:line:col; a busy one exits 1', async () => {
    fx.onCleanup(killAll);
    const file = fx.tmp.path('bad.yaml');
    writeFileSync(file, 'listen: 8080\nupstream:\n  servers: [unix:/tmp/a.sock]\nadmin:\n  listen: 8080\n');
    const bad = await runProxy(['--config', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(`sockproxy: [emerg] ${file}:5:11: admin.listen "127.0.0.1:8080" is also listened on by listen ("*:8080")\n`);

    const port = await freePort();
    const adminPort = await freePort();
    const busy = await startProxyWithConfig(
      writeConfig(fx.tmp.path('first.yaml'), `listen: 127.0.0.1:${port}\nupstream:\n  servers: [unix:/tmp/a.sock]\nadmin:\n  listen: ${adminPort}\n`),
    );
    const second = await runProxy([
      '--config',
      writeConfig(fx.tmp.path('second.yaml'), `listen: 127.0.0.1:${await freePort()}\nupstream:\n  servers: [unix:/tmp/a.sock]\nadmin:\n  listen: ${adminPort}\n`),
    ]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`sockproxy: [emerg] bind() to 127.0.0.1:${adminPort} failed (98: Address already in use)`);
    expect(stackLines(second.stderr)).toEqual([]);
    await busy.stop('SIGTERM');
  });
});

/** Polls an async predicate (a scrape) until it holds. */
async function until(predicate: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  await pollUntil(what, async () => ((await predicate()) ? true : undefined), timeoutMs, undefined, 50);
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

function writeConfig(file: string, text: string): string {
  writeFileSync(file, text);
  return file;
}
