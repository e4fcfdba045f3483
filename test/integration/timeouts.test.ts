import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { useProxyFixture } from '../helpers/fixture.js';
import { type RawUpstream, rawUpstream } from '../helpers/misbehaving-upstreams.js';
import { chunk, LAST_CHUNK, rawConnect } from '../helpers/raw-http.js';
import { unreadingUpstream } from '../helpers/unreading-upstream.js';
import { httpUpstream, readBody } from '../helpers/upstreams.js';

/**
 * proxy_send_timeout and proxy_read_timeout (nginx-semantics §1.8): both measured between
 * two successive operations, never over the whole transfer. A read timeout before the
 * response headers (504, "… while reading response header from upstream") is covered by
 * retry.test.ts and next-upstream-matrix.test.ts.
 *
 * undici's timers are coarse (a 1 s timeout may fire after up to ~2 s), so upper bounds
 * are generous.
 */
describe('upstream timeouts', () => {
  const fx = useProxyFixture();

  const TIMED_OUT = 'upstream timed out (110: Connection timed out)';

  async function timed(path: string, method: string, body?: Buffer) {
    const started = performance.now();
    // A client-side deadline, so that a proxy that never times out fails the test in seconds.
    const res = await request(`${fx.proxy!.url}${path}`, { method, body, headersTimeout: 8_000, bodyTimeout: 8_000 });
    const text = await res.body.text();
    return { status: res.statusCode, text, ms: performance.now() - started };
  }

  describe('send_timeout: an upstream that stops reading the request body', () => {
    // Far more than the Unix socket buffers of both sides hold, so the proxy's writes stall.
    const BIG = Buffer.alloc(16 * 1024 * 1024, 'b');
    const SETTINGS = 'proxy:\n  send_timeout: 1s\n  client_max_body_size: 64m\n';

    /** An upstream that reads the whole body and answers with its length. */
    async function lengthEcho(name: string) {
      return fx.track(
        await httpUpstream(fx.tmp.path(`${name}.sock`), (req, res, seen) =>
          readBody(req, seen, () => res.end(`${name} read ${seen.body.length} bytes\n`)),
        ),
      );
    }

    it('one server: 504 after about send_timeout, "while sending request to upstream"', async () => {
      const stuck = fx.track(await unreadingUpstream(fx.tmp.path('stuck.sock')));
      await fx.start([stuck.address], SETTINGS);
      const res = await timed('/upload', 'PUT', BIG);
      expect(res.status).toBe(504);
      expect(res.text).toContain('504 Gateway Timeout');
      expect(res.ms).toBeGreaterThanOrEqual(900);
      expect(res.ms).toBeLessThan(6_000);
      expect(stuck.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['PUT /upload']);
      expect(stuck.connections()).toBe(1);

      const path = stuck.address.slice('unix:'.length);
      const line = await fx.proxy!.waitForLog((l) => String(l.msg).startsWith(TIMED_OUT), 2_000);
      expect(line.msg).toContain(
        `${TIMED_OUT} while sending request to upstream, client: 127.0.0.1, request: "PUT /upload HTTP/1.1", upstream: "http://unix:${path}:/upload"`,
      );
      const access = await fx.proxy!.waitForLog((l) => l.request_uri === '/upload' && 'status' in l);
      expect(access.status).toBe(504);
      expect(access.upstream_status).toBe('504');
    });

    it('two servers: a PUT moves to the next server, which gets the whole body', async () => {
      const stuck = fx.track(await unreadingUpstream(fx.tmp.path('stuck.sock')));
      const b = await lengthEcho('b');
      await fx.start([stuck.address, b.address], SETTINGS);
      const res = await timed('/upload', 'PUT', BIG);
      expect(res.status, res.text).toBe(200);
      expect(res.text).toBe(`b read ${BIG.length} bytes\n`);
      // One request, on one connection: undici 7 would open another, empty one after the
      // abort (nodejs/undici#5845) if the proxy did not destroy the aborted connection's client.
      expect(stuck.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['PUT /upload']);
      expect(stuck.connections()).toBe(1);
      expect(b.requests.map((r) => `${r.method} ${r.url} ${r.body.length}`)).toEqual([`PUT /upload ${BIG.length}`]);
      expect(b.requests[0]!.body.equals(BIG)).toBe(true);
      await fx.proxy!.waitForLog((l) => String(l.msg).startsWith(`${TIMED_OUT} while sending request to upstream`), 2_000);
      const access = await fx.proxy!.waitForLog((l) => l.request_uri === '/upload' && 'status' in l);
      expect(access.upstream_addr).toBe(`${stuck.address}, ${b.address}`);
      expect(access.upstream_status).toBe('504, 200');
    });

    it('two servers: a POST is not moved on once sent (no non_idempotent): 504', async () => {
      const stuck = fx.track(await unreadingUpstream(fx.tmp.path('stuck.sock')));
      const b = await lengthEcho('b');
      await fx.start([stuck.address, b.address], SETTINGS);
      const res = await timed('/upload', 'POST', BIG);
      expect(res.status).toBe(504);
      expect(res.ms).toBeLessThan(6_000);
      expect(stuck.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /upload']);
      expect(b.requests).toEqual([]);
      await fx.proxy!.waitForLog((l) => String(l.msg).startsWith(`${TIMED_OUT} while sending request to upstream`), 2_000);
    });
  });

  describe('read_timeout after the response headers', () => {
    const DECLARED = 1_000_000;
    const PARTIAL = 'x'.repeat(1_000);

    /** Sends the headers and the start of the body, then stalls with the connection open. */
    function stallingMidBody(name: string, framing: 'length' | 'chunked'): Promise<RawUpstream> {
      return rawUpstream(fx.tmp.path(`${name}.sock`), (socket) => {
        const head =
          framing === 'length'
            ? `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${DECLARED}\r\n\r\n`
            : 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n';
        socket.write(Buffer.concat([Buffer.from(head), framing === 'length' ? Buffer.from(PARTIAL) : chunk(PARTIAL)]));
      });
    }

    it.each(['length', 'chunked'] as const)(
      '%s: the client gets the headers and a visibly truncated body, nothing is retried',
      async (framing) => {
        // Two servers, so that a retry after the headers would be seen whichever it picked.
        const a = fx.track(await stallingMidBody('a', framing));
        const b = fx.track(await stallingMidBody('b', framing));
        await fx.start([a.address, b.address], 'proxy:\n  read_timeout: 1s\n');

        const client = await rawConnect(fx.proxy!.port);
        const started = performance.now();
        client.socket.write('GET /stall HTTP/1.1\r\nHost: example.test\r\n\r\n');
        const text = await client.waitClosed(8_000);
        const ms = performance.now() - started;

        const headEnd = text.indexOf('\r\n\r\n');
        expect(headEnd, text).toBeGreaterThan(0);
        const head = text.slice(0, headEnd);
        const body = text.slice(headEnd + 4);
        expect(head).toMatch(/^HTTP\/1\.1 200 /);
        if (framing === 'length') {
          expect(head).toMatch(new RegExp(`^content-length: ${DECLARED}$`, 'im'));
          // What the upstream sent went out; then the connection closed short of Content-Length.
          expect(body).toBe(PARTIAL);
        } else {
          expect(head).toMatch(/^transfer-encoding: chunked$/im);
          expect(body).toContain(PARTIAL);
          expect(body.endsWith(LAST_CHUNK)).toBe(false);
          expect(body).not.toContain(`\r\n${LAST_CHUNK}`);
        }
        // Closed by the read timeout, not at once.
        expect(ms).toBeGreaterThanOrEqual(900);
        expect(a.connections() + b.connections()).toBe(1);

        const line = await fx.proxy!.waitForLog((l) => String(l.msg).startsWith(TIMED_OUT), 2_000);
        expect(line.msg).toContain(`${TIMED_OUT} while reading upstream, client: 127.0.0.1, request: "GET /stall HTTP/1.1"`);
        const access = await fx.proxy!.waitForLog((l) => l.request_uri === '/stall' && 'status' in l);
        expect(access.status).toBe(200);
        expect(access.upstream_addr).toBe(a.address);
      },
    );

    it('is measured between two reads: a body trickling every 400 ms for about 3 s arrives whole', async () => {
      const PIECES = 8;
      const INTERVAL_MS = 400;
      const piece = (i: number) => `piece ${i} of ${PIECES}\n`;
      const trickling = fx.track(
        await rawUpstream(fx.tmp.path('trickle.sock'), (socket) => {
          socket.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n'), chunk(piece(1))]));
          let sent = 1;
          const timer = setInterval(() => {
            sent++;
            socket.write(sent < PIECES ? chunk(piece(sent)) : Buffer.concat([chunk(piece(sent)), Buffer.from(LAST_CHUNK)]));
            if (sent === PIECES) clearInterval(timer);
          }, INTERVAL_MS);
          socket.once('close', () => clearInterval(timer));
        }),
      );
      await fx.start([trickling.address], 'proxy:\n  read_timeout: 1s\n');
      const res = await timed('/trickle', 'GET');
      expect(res.status).toBe(200);
      expect(res.text).toBe(Array.from({ length: PIECES }, (_, i) => piece(i + 1)).join(''));
      // The whole transfer took well past read_timeout.
      expect(res.ms).toBeGreaterThanOrEqual((PIECES - 1) * INTERVAL_MS - 100);
      expect(trickling.connections()).toBe(1);
      expect(fx.proxy!.errors().filter((l) => String(l.msg).includes('timed out'))).toEqual([]);
    });
  });
});
