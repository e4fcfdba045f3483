import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { useProxyFixture } from '../helpers/fixture.js';
import { httpUpstream } from '../helpers/upstreams.js';

/** proxy_buffer_size: the largest header block an upstream may send (nginx: "upstream sent too big header"). */
describe('proxy.buffer_size', () => {
  const fx = useProxyFixture();

  const bigCookieApp = async () =>
    fx.track(
      await httpUpstream(fx.tmp.path('app.sock'), (_req, res) => {
        res.setHeader('set-cookie', `session=${'x'.repeat(10 * 1024)}`);
        res.end('ok');
      }),
    );

  it('a 10 KiB header block is over the 8k default: 502, in nginx\'s words', async () => {
    const app = await bigCookieApp();
    await fx.start([app.address]);
    const res = await request(fx.proxy!.url);
    expect(res.statusCode).toBe(502);
    await res.body.text();
    const line = await fx.proxy!.waitForLog((l) => String(l.msg).startsWith('upstream sent too big header'));
    expect(line.msg).toContain('upstream sent too big header while reading response header from upstream');
  });

  it('buffer_size: 16k lets it through', async () => {
    const app = await bigCookieApp();
    await fx.start([app.address], 'proxy:\n  buffer_size: 16k\n');
    const res = await request(fx.proxy!.url);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok');
    expect(String(res.headers['set-cookie'])).toHaveLength('session='.length + 10 * 1024);
  });
});
