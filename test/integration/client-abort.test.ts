import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { useProxyFixture } from '../helpers/fixture.js';
import { rawConnect } from '../helpers/raw-http.js';
import { httpUpstream, type SeenRequest, type TestUpstream } from '../helpers/upstreams.js';
import { until } from '../helpers/wait.js';

/** What an upstream saw of one request: when it arrived, whether it was answered, when it closed. */
interface Observed {
  readonly url: string;
  readonly arrivedAt: number;
  bodyBytes: number;
  bodyComplete: boolean;
  answered: boolean;
  /** performance.now() of the response's 'close', if it came. */
  closedAt: number | undefined;
}

/**
 * A client that goes away (nginx: 499, "client prematurely closed connection"): the
 * upstream request is aborted too, and the server is not blamed for it (nginx-semantics §1.7).
 */
describe('a client that goes away', () => {
  const fx = useProxyFixture();

  /**
   * An upstream named `name`: /slow answers after 2 s, /upload answers once the whole body
   * is in, anything else answers at once; every request is recorded in `observed`.
   */
  async function upstream(name: string, observed: Observed[]): Promise<TestUpstream> {
    const u = await httpUpstream(fx.tmp.path(`${name}.sock`), (req: IncomingMessage, res: ServerResponse, _seen: SeenRequest) => {
      const o: Observed = {
        url: req.url!,
        arrivedAt: performance.now(),
        bodyBytes: 0,
        bodyComplete: false,
        answered: false,
        closedAt: undefined,
      };
      observed.push(o);
      let timer: NodeJS.Timeout | undefined;
      res.on('close', () => {
        o.closedAt = performance.now();
        clearTimeout(timer);
      });
      const answer = (): void => {
        o.answered = true;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`ok ${name}\n`);
      };
      req.on('data', (chunk: Buffer) => (o.bodyBytes += chunk.length));
      req.on('end', () => {
        o.bodyComplete = true;
        if (req.url === '/slow') timer = setTimeout(answer, 2_000);
        else answer();
      });
    });
    fx.track(u);
    return u;
  }

  it('during a slow response: the upstream request is aborted, 499, and the server is not blamed', async () => {
    const seenA: Observed[] = [];
    const seenB: Observed[] = [];
    const a = await upstream('a', seenA);
    const b = await upstream('b', seenB);
    await fx.start([`${a.address} fail_timeout=30s max_fails=1`, b.address]);

    // Round robin starts with the first server listed: a.
    const client = await rawConnect(fx.proxy!.port);
    const sentAt = performance.now();
    client.socket.write('GET /slow HTTP/1.1\r\nHost: example.test\r\n\r\n');
    await until(() => seenA.length === 1, 2_000, 'server a to get /slow');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 200 - (performance.now() - sentAt))));
    const abortedAt = performance.now();
    client.socket.destroy();

    await until(() => seenA[0]!.closedAt !== undefined, 1_000, 'the upstream request to be closed after the client left');
    expect(seenA[0]!.answered).toBe(false);
    expect(seenA[0]!.closedAt! - abortedAt).toBeLessThan(1_000);
    expect(client.received()).toBe('');

    const access = await fx.proxy!.waitForLog((l) => l.request_uri === '/slow' && 'status' in l);
    expect(access.status).toBe(499);
    expect(access.upstream_addr).toBe(a.address);
    await fx.proxy!.waitForLog((l) =>
      String(l.msg).startsWith(
        'client prematurely closed connection, so upstream connection is closed too while reading response header from upstream',
      ),
    );

    // Not a failure of a (max_fails=1 would take it out for 30 s): round robin goes on alternating.
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await request(`${fx.proxy!.url}/fast/${i}`);
      expect(res.statusCode).toBe(200);
      answers.push(await res.body.text());
    }
    expect(answers).toEqual(['ok b\n', 'ok a\n', 'ok b\n', 'ok a\n']);
    expect(seenB.map((o) => o.url)).toEqual(['/fast/0', '/fast/2']);
    expect(fx.proxy!.errors().some((l) => String(l.msg).includes('temporarily disabled'))).toBe(false);
  });

  it('while uploading, request_buffering on: no upstream is contacted, 499, and the proxy keeps serving', async () => {
    const seen: Observed[] = [];
    const a = await upstream('a', seen);
    await fx.start([a.address]);

    const client = await rawConnect(fx.proxy!.port);
    client.socket.write('POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: 100000\r\n\r\n');
    client.socket.write(Buffer.alloc(1000, 'x'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The body is read in full before a server is chosen: the app has not seen the request.
    expect(seen).toEqual([]);
    client.socket.destroy();

    const access = await fx.proxy!.waitForLog((l) => l.request_uri === '/upload' && 'status' in l);
    expect(access.status).toBe(499);
    expect(access.upstream_addr).toBe('-');

    const res = await request(`${fx.proxy!.url}/after`, { method: 'POST', body: 'still here' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok a\n');
    expect(seen.map((o) => [o.url, o.bodyBytes, o.bodyComplete])).toEqual([['/after', 10, true]]);
    expect(fx.proxy!.child.exitCode).toBeNull();
  });

  it('while uploading, request_buffering off: the upstream request is aborted, 499, and the proxy keeps serving', async () => {
    const seen: Observed[] = [];
    const a = await upstream('a', seen);
    await fx.start([a.address], 'proxy:\n  request_buffering: off\n');

    const client = await rawConnect(fx.proxy!.port);
    client.socket.write('POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: 100000\r\n\r\n');
    client.socket.write(Buffer.alloc(1000, 'x'));
    // The body streams: the upstream has the request and the first 1000 bytes before the rest.
    await until(() => seen.length === 1 && seen[0]!.bodyBytes === 1000, 2_000, 'the upstream to get the first 1000 bytes');
    const abortedAt = performance.now();
    client.socket.destroy();

    await until(() => seen[0]!.closedAt !== undefined, 1_000, 'the upstream request to be closed after the client left');
    expect(seen[0]!.closedAt! - abortedAt).toBeLessThan(1_000);
    expect(seen[0]!.bodyComplete).toBe(false);
    expect(seen[0]!.answered).toBe(false);

    const access = await fx.proxy!.waitForLog((l) => l.request_uri === '/upload' && 'status' in l);
    expect(access.status).toBe(499);

    const res = await request(`${fx.proxy!.url}/after`, { method: 'POST', body: 'still here' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok a\n');
    expect(seen.map((o) => [o.url, o.bodyBytes, o.bodyComplete])).toEqual([
      ['/upload', 1000, false],
      ['/after', 10, true],
    ]);
    expect(fx.proxy!.child.exitCode).toBeNull();
  });
});
