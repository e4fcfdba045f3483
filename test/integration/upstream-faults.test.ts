import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { useProxyFixture } from '../helpers/fixture.js';
import {
  type UnacceptingListener,
  unacceptingTcpListener,
  unacceptingUnixListener,
} from '../helpers/unaccepting-listener.js';

/**
 * Connect-level faults as nginx meets them (nginx-semantics §1.6–1.8, §3), made with real
 * listeners that never accept (python3, listen(0)), as an overloaded Gunicorn does.
 *
 * What Linux does here (checked on this machine, kernel 6.x): a Unix-socket listener with
 * listen(0) queues one connection; the next non-blocking connect() fails at once with
 * EAGAIN. A TCP listener with listen(0) on 127.0.0.1 completes one connection into its
 * queue; later SYNs are dropped while the queue is full, so connect() hangs until its timeout.
 *
 * EACCES (socket file without write permission) is not covered: these tests run as root,
 * for whom the permission check does not apply.
 */
describe('connect faults', () => {
  const fx = useProxyFixture();

  async function timed(path: string, method = 'GET', body?: string) {
    const started = performance.now();
    const res = await request(`${fx.proxy!.url}${path}`, { method, body });
    const text = await res.body.text();
    return { status: res.statusCode, text, ms: performance.now() - started };
  }

  async function fullUnixListener(name: string): Promise<UnacceptingListener> {
    const listener = await unacceptingUnixListener(fx.tmp.path(`${name}.sock`));
    fx.onCleanup(() => listener.stop());
    const connections = await listener.fill();
    // listen(0): one connection queued, the next refused with EAGAIN.
    expect(connections).toBeLessThanOrEqual(4);
    return listener;
  }

  async function fullTcpListener(): Promise<UnacceptingListener> {
    const listener = await unacceptingTcpListener();
    fx.onCleanup(() => listener.stop());
    await listener.fill();
    return listener;
  }

  it('a full Unix-socket queue (EAGAIN): the request moves to the next server, even a POST', async () => {
    const full = await fullUnixListener('full');
    const b = await fx.ok('b');
    await fx.start([full.address, b.address], 'proxy:\n  connect_timeout: 10s\n');
    const res = await timed('/eagain', 'POST', 'payload');
    expect(res.status).toBe(200);
    expect(res.text).toBe('ok b\n');
    expect(b.requests.map((r) => r.body.toString())).toEqual(['payload']);
    expect(res.ms).toBeLessThan(2_000);

    const path = full.address.slice('unix:'.length);
    const line = await fx.proxy!.waitForLog((l) => String(l.msg).startsWith('connect()'));
    expect(line.msg).toContain(
      `connect() to unix:${path} failed (11: Resource temporarily unavailable) while connecting to upstream, client: 127.0.0.1, request: "POST /eagain HTTP/1.1", upstream: "http://unix:${path}:/eagain"`,
    );
    expect(line.nginx_level).toBe('error');
    const access = await fx.proxy!.waitForLog((l) => l.request_uri === '/eagain' && 'status' in l);
    expect(access.upstream_addr).toBe(`${full.address}, ${b.address}`);
    expect(access.upstream_status).toBe('502, 200');
  });

  it('a full Unix-socket queue as the only server: 502 at once, not after the connect timeout', async () => {
    const full = await fullUnixListener('full');
    await fx.start([full.address], 'proxy:\n  connect_timeout: 10s\n');
    const res = await timed('/alone');
    expect(res.status).toBe(502);
    expect(res.ms).toBeLessThan(1_000);
    await fx.proxy!.waitForLog((l) =>
      String(l.msg).startsWith(`connect() to ${full.address} failed (11: Resource temporarily unavailable) while connecting to upstream`),
    );
  });

  it('a TCP server whose queue drops SYNs: connect_timeout gives 504, "upstream timed out … while connecting"', async () => {
    const full = await fullTcpListener();
    await fx.start([full.address], 'proxy:\n  connect_timeout: 500ms\n');
    const res = await timed('/syn-dropped');
    expect(res.status).toBe(504);
    expect(res.text).toContain('504 Gateway Timeout');
    // It waited for the timer: this is not an immediate connect error.
    expect(res.ms).toBeGreaterThanOrEqual(450);
    expect(res.ms).toBeLessThan(3_000);
    const line = await fx.proxy!.waitForLog((l) => String(l.msg).startsWith('upstream timed out'));
    expect(line.msg).toContain(
      `upstream timed out (110: Connection timed out) while connecting to upstream, client: 127.0.0.1, request: "GET /syn-dropped HTTP/1.1", upstream: "http://${full.address}/syn-dropped"`,
    );
  });

  it('a TCP connect timeout moves the request to the next server', async () => {
    const full = await fullTcpListener();
    const b = await fx.ok('b');
    await fx.start([full.address, b.address], 'proxy:\n  connect_timeout: 500ms\n');
    const res = await timed('/to-b', 'POST', 'body');
    expect(res.status).toBe(200);
    expect(res.text).toBe('ok b\n');
    expect(res.ms).toBeGreaterThanOrEqual(450);
    expect(b.requests.map((r) => r.body.toString())).toEqual(['body']);
    await fx.proxy!.waitForLog((l) =>
      String(l.msg).startsWith('upstream timed out (110: Connection timed out) while connecting to upstream'),
    );
    const access = await fx.proxy!.waitForLog((l) => l.request_uri === '/to-b' && 'status' in l);
    expect(access.upstream_addr).toBe(`${full.address}, ${b.address}`);
    expect(access.upstream_status).toBe('504, 200');
  });
});
