import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { useProxyFixture } from '../helpers/fixture.js';
import { httpUpstream, okFrom } from '../helpers/upstreams.js';

/** next_upstream http_5xx: a listed status moves the request on while another server remains. */
describe('next_upstream with listed statuses', () => {
  const fx = useProxyFixture();

  const get = async (path = '/') => {
    const res = await request(`${fx.proxy!.url}${path}`);
    return { status: res.statusCode, text: await res.body.text() };
  };

  it('a listed 503 goes to the next server; the last server\'s own 503 reaches the client, body included', async () => {
    const a = fx.track(await httpUpstream(fx.tmp.path('a.sock'), okFrom('a busy', 503)));
    const b = fx.track(await httpUpstream(fx.tmp.path('b.sock'), okFrom('b busy', 503)));
    await fx.start([`${a.address} max_fails=0`, `${b.address} max_fails=0`], 'proxy:\n  next_upstream: error timeout http_503\n');
    const res = await get('/x');
    expect(res.status).toBe(503);
    // The second server's answer, not a page made by the proxy.
    expect(res.text).toBe('ok b busy\n');
    expect([a.requests.length, b.requests.length]).toEqual([1, 1]);
    const access = await fx.proxy!.waitForLog((l) => l.request_uri === '/x');
    expect(access.upstream_status).toBe('503, 503');
  });

  it('a listed 503 followed by a healthy server is a 200', async () => {
    const a = fx.track(await httpUpstream(fx.tmp.path('a.sock'), okFrom('a busy', 503)));
    const b = await fx.ok('b');
    await fx.start([a.address, b.address], 'proxy:\n  next_upstream: error timeout http_503\n');
    expect(await get()).toEqual({ status: 200, text: 'ok b\n' });
    // A listed 5xx counts against the server (max_fails=1): the next request skips a.
    expect(await get()).toEqual({ status: 200, text: 'ok b\n' });
    expect(a.requests).toHaveLength(1);
    expect(b.requests).toHaveLength(2);
  });

  it('an unlisted 503 is passed through and is a success for accounting', async () => {
    const a = fx.track(await httpUpstream(fx.tmp.path('a.sock'), okFrom('a busy', 503)));
    const b = await fx.ok('b');
    await fx.start([a.address, b.address]);
    const results = [await get(), await get(), await get(), await get()];
    expect(results.map((r) => r.status)).toEqual([503, 200, 503, 200]);
  });
});
