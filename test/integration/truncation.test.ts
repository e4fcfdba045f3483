import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { useProxyFixture } from '../helpers/fixture.js';
import { LAST_CHUNK, rawConnect } from '../helpers/raw-http.js';
import { httpUpstream, type TestUpstream } from '../helpers/upstreams.js';

const DECLARED = 100_000;
const SENT = 10_000;

/** What a node:http client made of a response. */
interface ClientView {
  status: number | undefined;
  headers: http.IncomingHttpHeaders;
  bytes: number;
  /** node's res.complete: the whole message, as framed, was received. */
  complete: boolean;
  /** 'end' was emitted on the response. */
  ended: boolean;
  /** 'aborted' on the response, or an error on the request or the response. */
  failed: string | undefined;
}

function httpGet(url: string): Promise<ClientView> {
  return new Promise((resolve) => {
    const view: ClientView = { status: undefined, headers: {}, bytes: 0, complete: false, ended: false, failed: undefined };
    const done = (): void => resolve(view);
    const req = http.get(url, { agent: false }, (res) => {
      view.status = res.statusCode;
      view.headers = res.headers;
      res.on('data', (chunk: Buffer) => (view.bytes += chunk.length));
      res.on('aborted', () => (view.failed ??= 'aborted'));
      res.on('error', (err) => (view.failed ??= `response error: ${err.message}`));
      res.on('end', () => (view.ended = true));
      res.on('close', () => {
        view.complete = res.complete;
        done();
      });
    });
    req.on('error', (err) => {
      view.failed ??= `request error: ${err.message}`;
      done();
    });
  });
}

/**
 * An upstream that dies in the middle of the response body, after the headers went to the
 * client: the client must see a truncated response, never a clean end, and nothing is
 * retried (nginx: "upstream prematurely closed connection while reading upstream").
 */
describe('an upstream that dies mid-body', () => {
  const fx = useProxyFixture();

  /** Two servers that both die mid-body, so a retry would be seen whichever server it picked. */
  async function startDying(): Promise<[TestUpstream, TestUpstream]> {
    const dying = (name: string) =>
      httpUpstream(fx.tmp.path(`${name}.sock`), (req, res) => {
        if (req.url === '/length') {
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': DECLARED });
          // Destroyed once the partial body is in the kernel: the proxy gets it, then EOF.
          res.write(Buffer.alloc(SENT, 'x'), () => req.socket.destroy());
        } else {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('first chunk\n');
          res.write('second chunk\n', () => req.socket.destroy());
        }
      });
    const a = await dying('a');
    const b = await dying('b');
    fx.track(a, b);
    await fx.start([a.address, b.address]);
    return [a, b];
  }

  it('with Content-Length: the client gets fewer bytes and an error, not a complete response', async () => {
    const [a, b] = await startDying();
    const view = await httpGet(`${fx.proxy!.url}/length`);
    expect(view.status).toBe(200);
    expect(view.headers['content-length']).toBe(String(DECLARED));
    expect(view.bytes).toBeLessThan(DECLARED);
    // What the upstream did send is passed on before the connection is closed.
    expect(view.bytes).toBe(SENT);
    expect(view.complete).toBe(false);
    expect(view.failed).toBeDefined();

    await fx.proxy!.waitForLog((l) =>
      String(l.msg).startsWith('upstream prematurely closed connection while reading upstream'),
    );
    // The request is finished (access log) with one attempt only: no retry once bytes went out.
    const access = await fx.proxy!.waitForLog((l) => l.request_uri === '/length' && 'status' in l);
    expect(access.upstream_addr).toBe(a.address);
    expect(a.requests.length + b.requests.length).toBe(1);
  });

  it('chunked: the connection is closed without the terminating chunk', async () => {
    const [a, b] = await startDying();
    const client = await rawConnect(fx.proxy!.port);
    client.socket.write('GET /chunked HTTP/1.1\r\nHost: example.test\r\n\r\n');
    const text = await client.waitClosed(5_000);

    const headEnd = text.indexOf('\r\n\r\n');
    expect(headEnd).toBeGreaterThan(0);
    const head = text.slice(0, headEnd);
    const body = text.slice(headEnd + 4);
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    expect(head).toMatch(/^transfer-encoding: chunked$/im);
    expect(head).not.toMatch(/^content-length:/im);
    // The chunks the upstream sent arrive, then the connection ends with no last-chunk.
    expect(body).toContain('first chunk\n');
    expect(body).toContain('second chunk\n');
    expect(body.endsWith(LAST_CHUNK)).toBe(false);
    expect(body).not.toContain(`\r\n${LAST_CHUNK}`);

    await fx.proxy!.waitForLog((l) =>
      String(l.msg).startsWith('upstream prematurely closed connection while reading upstream'),
    );
    await fx.proxy!.waitForLog((l) => l.request_uri === '/chunked' && 'status' in l);
    expect(a.requests.length + b.requests.length).toBe(1);
  });
});
