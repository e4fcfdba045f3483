import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { useProxyFixture } from '../helpers/fixture.js';
import { staleKeepAliveUpstream, staleUpstreamBody, type StaleKeepAliveUpstream } from '../helpers/stale-keepalive-upstream.js';

/**
 * The keep-alive race that bites nginx + Gunicorn users: the proxy reuses an idle
 * connection at the moment the app closes it, the request meets a reset (ECONNRESET, or
 * EPIPE on the write), and nginx answers 502 when there is a single server, or for a POST
 * (not retried without non_idempotent). sockproxy instead retries such a request once, on
 * a new connection to the same server, whatever the method: the app never read it (it
 * closed the connection with the request unread), so nothing was processed twice.
 *
 * The upstream (python3, test/helpers/stale-keepalive-upstream.ts) makes the race
 * deterministic: every connection answers one request, and closes unread the next one.
 */
describe('a request on a reused connection the app has just closed', () => {
  const fx = useProxyFixture();

  async function staleUpstream(name: string): Promise<StaleKeepAliveUpstream> {
    return fx.track(await staleKeepAliveUpstream(fx.tmp.path(`${name}.sock`)));
  }

  async function send(method: string, path: string, body?: string) {
    const res = await request(`${fx.proxy!.url}${path}`, { method, body });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  }

  /** Time for a second, duplicate request (which must not come) to reach the upstream's record. */
  const settle = () => new Promise((resolve) => setTimeout(resolve, 150));

  const BODIES: Readonly<Record<string, string | undefined>> = {
    GET: undefined,
    HEAD: undefined,
    POST: 'a form the app must process exactly once',
    PUT: 'the new state of the resource',
    PATCH: 'a partial update, not idempotent either',
    DELETE: undefined,
    OPTIONS: undefined,
  };

  it.each(Object.keys(BODIES))(
    '%s, single server: retried once on a new connection, 200, processed once',
    async (method) => {
      const app = await staleUpstream('app');
      // Gunicorn's documented server line: one server, where nginx never retries.
      await fx.start([`${app.address} fail_timeout=0`]);

      const prime = await send('GET', '/prime');
      expect(prime.status).toBe(200);
      expect(prime.text).toBe(staleUpstreamBody(1, 'GET', 0));

      const body = BODIES[method];
      const bodyLength = body === undefined ? 0 : Buffer.byteLength(body);
      const path = `/stale/${method.toLowerCase()}`;
      const res = await send(method, path, body);
      expect(res.status, res.text).toBe(200);
      expect(res.headers['x-conn']).toBe('2');
      expect(res.text).toBe(method === 'HEAD' ? '' : staleUpstreamBody(2, method, bodyLength));

      // The proxy did reuse connection 1: the request reached it and was closed unread.
      expect(await app.waitForResets(1)).toEqual([1]);
      // One request processed per client request, the second one on a new connection.
      await app.waitForAnswered(2);
      await settle();
      expect(app.answered()).toEqual([
        { conn: 1, method: 'GET', path: '/prime', bodyLength: 0 },
        { conn: 2, method, path, bodyLength },
      ]);

      const line = await fx.proxy!.waitForLog((l) => String(l.msg).includes('retrying on a new connection'), 2_000);
      expect(JSON.stringify(line)).toContain(app.address);
    },
  );

  it('the stale retry is not a server failure: with two servers both keep their share', async () => {
    const a = await staleUpstream('a');
    const b = await staleUpstream('b');
    await fx.start([`${a.address} max_fails=1 fail_timeout=10s`, `${b.address} max_fails=1 fail_timeout=10s`]);

    // Round robin from the first server listed: a, b, a, b, … Requests 0 and 1 open a
    // connection to each; every later one reuses a connection the server then closes unread.
    const conns: (string | string[] | undefined)[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await send('GET', `/r${i}`);
      expect(res.status, `request ${i}: ${res.text}`).toBe(200);
      conns.push(res.headers['x-conn']);
    }
    expect(conns).toEqual(['1', '1', '2', '2', '3', '3']);
    // Each stale retry stayed on its server, and a failure would have taken it out for 10 s.
    // The retry's new connection is kept for the next request, which then meets the reset.
    expect(await a.waitForResets(2)).toEqual([1, 2]);
    expect(await b.waitForResets(2)).toEqual([1, 2]);
    await a.waitForAnswered(3);
    await b.waitForAnswered(3);
    await settle();
    expect(a.answered().map((r) => `${r.conn} ${r.path}`)).toEqual(['1 /r0', '2 /r2', '3 /r4']);
    expect(b.answered().map((r) => `${r.conn} ${r.path}`)).toEqual(['1 /r1', '2 /r3', '3 /r5']);
    expect(fx.proxy!.errors().filter((l) => String(l.msg).includes('temporarily disabled'))).toEqual([]);
  });
});
