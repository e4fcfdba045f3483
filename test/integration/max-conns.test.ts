import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { useProxyFixture } from '../helpers/fixture.js';
import { httpUpstream, type Respond } from '../helpers/upstreams.js';
import { until } from '../helpers/wait.js';

/** max_conns (nginx ≥ 1.11.5): a full server is skipped like a failed one; no queue, as in nginx open source. */
describe('max_conns', () => {
  const fx = useProxyFixture();

  /** Holds /slow requests until release() is called; answers everything else at once. */
  function holding(name: string): { respond: Respond; release: () => void } {
    const held: (() => void)[] = [];
    return {
      respond: (req, res) => {
        const answer = () => res.end(`ok ${name}`);
        if (req.url === '/slow') held.push(answer);
        else answer();
      },
      release: () => held.splice(0).forEach((answer) => answer()),
    };
  }

  const get = async (path: string) => {
    const res = await request(`${fx.proxy!.url}${path}`);
    return { status: res.statusCode, text: await res.body.text() };
  };

  it('a server at max_conns is skipped: the overflow goes to the next server', async () => {
    const a = holding('a');
    const up = fx.track(await httpUpstream(fx.tmp.path('a.sock'), a.respond));
    const b = await fx.ok('b');
    await fx.start([`${up.address} max_conns=1`, b.address]);
    const slow = get('/slow'); // round robin: the first request goes to a and stays there
    await until(() => up.requests.length === 1, 5_000, 'the slow request to reach a');
    // a is full: every request goes to b until a's request is done.
    expect(await get('/1')).toEqual({ status: 200, text: 'ok b\n' });
    expect(await get('/2')).toEqual({ status: 200, text: 'ok b\n' });
    a.release();
    expect(await slow).toEqual({ status: 200, text: 'ok a' });
    expect(up.requests.map((r) => r.url)).toEqual(['/slow']);
    expect(b.requests.map((r) => r.url)).toEqual(['/1', '/2']);
  });

  it('with every server full: 502 at once, "no live upstreams", nothing connected', async () => {
    const a = holding('a');
    const up = fx.track(await httpUpstream(fx.tmp.path('a.sock'), a.respond));
    await fx.start([`${up.address} max_conns=1`]);
    const slow = get('/slow');
    await until(() => up.requests.length === 1, 5_000, 'the slow request to reach a');
    const started = Date.now();
    const overflow = await get('/overflow');
    expect(overflow.status).toBe(502);
    expect(overflow.text).toContain('no upstream server is available');
    expect(Date.now() - started).toBeLessThan(1000);
    await fx.proxy!.waitForLog((l) => String(l.msg).startsWith('no live upstreams while connecting to upstream'));
    a.release();
    expect((await slow).status).toBe(200);
    expect(up.requests.map((r) => r.url)).toEqual(['/slow']);
  });
});
