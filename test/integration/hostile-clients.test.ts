import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { scrapeStatus } from '../helpers/admin.js';
import { countingUpstream, type CountingUpstream } from '../helpers/counting-upstream.js';
import { type ProxyFixture, useProxyFixture } from '../helpers/fixture.js';
import { type ProxyProcess, startProxyWithConfig } from '../helpers/proxy-process.js';
import { freePort } from '../helpers/temp.js';
import { chunk, rawConnect } from '../helpers/raw-http.js';
import { httpUpstream } from '../helpers/upstreams.js';
import { until } from '../helpers/wait.js';

const HEAD = 'Host: example.test\r\n';
/** Bytes no error page may carry back (reflected into a browser, they would run). */
const MARKER = '<script>x</script>';

/** What an app behind a request_buffering-off proxy got of one request body. */
interface SeenBody {
  url: string;
  bytes: number;
  complete: boolean;
  closed: boolean;
}

/**
 * An app that records how much of each request body reached it and whether the body
 * ended, behind a proxy with request_buffering off (plus `proxyKeys`, more lines of its
 * `proxy:` section) and the admin endpoint on, for /status of the app's server.
 */
async function streamingToRecordingApp(fx: ProxyFixture, proxyKeys = '') {
  const seen: SeenBody[] = [];
  const app = fx.track(
    await httpUpstream(fx.tmp.path('app.sock'), (req, res) => {
      const request: SeenBody = { url: req.url!, bytes: 0, complete: false, closed: false };
      seen.push(request);
      req.on('data', (data: Buffer) => (request.bytes += data.length));
      req.on('end', () => {
        request.complete = true;
        res.end('ok\n');
      });
      res.on('close', () => (request.closed = true));
    }),
  );
  const adminPort = await freePort();
  const proxy = await fx.start(
    [`${app.address} max_fails=1 fail_timeout=30s`],
    `proxy:\n  request_buffering: off\n${proxyKeys}admin:\n  listen: 127.0.0.1:${adminPort}\n`,
  );
  const serverStatus = async () => (await scrapeStatus({ url: `http://127.0.0.1:${adminPort}` })).upstreams[0]!.servers[0]!;
  return { seen, app, proxy, serverStatus };
}

/**
 * Requests sockproxy answers itself, as nginx 1.22 answers the same bytes (status, error-log
 * words, connection closed), before any upstream is contacted: the app must see no
 * connection at all. The bytes go raw over a socket, as an attacker would send them.
 */
describe('hostile clients: malformed and smuggling requests are refused without the upstream', () => {
  const fx = useProxyFixture();

  async function start(http = ''): Promise<{ proxy: ProxyProcess; app: CountingUpstream }> {
    const app = fx.track(await countingUpstream(fx.tmp.path('app.sock')));
    const proxy = await fx.start([app.address], http === '' ? '' : `http:\n${http}`);
    return { proxy, app };
  }

  const cases: Array<[string, string, number, string]> = [
    ['Content-Length and Transfer-Encoding', `POST /${MARKER} HTTP/1.1\r\n${HEAD}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'client sent "Content-Length" and "Transfer-Encoding" headers at the same time'],
    ['Transfer-Encoding then Content-Length', `POST / HTTP/1.1\r\n${HEAD}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`, 400, 'client sent "Content-Length" and "Transfer-Encoding" headers at the same time'],
    ['a duplicate Content-Length', `POST / HTTP/1.1\r\n${HEAD}Content-Length: 1\r\nContent-Length: 1\r\n\r\nx`, 400, 'client sent duplicate header line: "Content-Length"'],
    ['a Content-Length list', `POST / HTTP/1.1\r\n${HEAD}Content-Length: 1, 1\r\n\r\nx`, 400, 'client sent invalid "Content-Length" header'],
    ['an invalid Content-Length', `POST / HTTP/1.1\r\n${HEAD}Content-Length: 1x\r\n\r\nx`, 400, 'client sent invalid "Content-Length" header'],
    ['Transfer-Encoding: gzip', `POST / HTTP/1.1\r\n${HEAD}Transfer-Encoding: gzip\r\n\r\n`, 501, 'client sent unknown "Transfer-Encoding"'],
    ['Transfer-Encoding: gzip, chunked', `POST / HTTP/1.1\r\n${HEAD}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, 501, 'client sent unknown "Transfer-Encoding"'],
    ['Transfer-Encoding: chunked, gzip', `POST / HTTP/1.1\r\n${HEAD}Transfer-Encoding: chunked, gzip\r\n\r\n`, 501, 'client sent unknown "Transfer-Encoding"'],
    ['obsolete line folding', `GET / HTTP/1.1\r\n${HEAD}X-A: b\r\n c\r\n\r\n`, 400, 'client sent invalid header line'],
    ['a bare LF in the headers', `GET / HTTP/1.1\r\n${HEAD}X-A: b\nX-B: c\r\n\r\n`, 400, 'client sent invalid header line'],
    ['a NUL in a header', `GET / HTTP/1.1\r\n${HEAD}X-A: b\0c\r\n\r\n`, 400, 'client sent invalid header line'],
    ['an invalid header name', `GET /${MARKER} HTTP/1.1\r\n${HEAD}X ${MARKER}: b\r\n\r\n`, 400, 'client sent invalid header line'],
    ['an invalid method', `G(T / HTTP/1.1\r\n${HEAD}\r\n`, 400, 'client sent invalid method'],
    ['a duplicate Host', `GET / HTTP/1.1\r\n${HEAD}Host: other.test\r\n\r\n`, 400, 'client sent duplicate host header'],
    ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\nX-A: b\r\n\r\n', 400, 'client sent HTTP/1.1 request without "Host" header'],
    ['an absolute-form URI for another host', `GET http://evil.test/x HTTP/1.1\r\n${HEAD}\r\n`, 400, 'client sent absolute-form URI for another host than "Host"'],
    ['CONNECT', 'CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n', 400, 'client sent invalid request'],
    ['the HTTP/2 connection preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400, 'client sent invalid request'],
    ['HTTP/3.0', `GET / HTTP/3.0\r\n${HEAD}\r\n`, 505, 'client sent invalid version'],
  ];

  it.each(cases)('%s: %#', async (_name, bytes, status, message) => {
    const { proxy, app } = await start();
    const client = await rawConnect(proxy.port);
    client.socket.write(bytes);
    const text = await client.waitClosed();
    expect(text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(text).toMatch(/\r\nconnection: close\r\n/i);
    // Exactly one response, and nothing of the request in it.
    expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(text).not.toContain('<script>');
    const error = await proxy.waitForLog((l) => String(l.msg ?? '').startsWith(message));
    expect(error.msg).toContain('client: 127.0.0.1');
    const access = await proxy.waitForLog((l) => l.status === status && 'request_uri' in l);
    expect(access.upstream_addr).toBe('-');
    // A request that passed would have been answered first: the app saw nothing at all.
    expect(app.connections()).toBe(0);
  });

  it('large_client_header_buffers: a request line over one buffer is 414, a header line over one buffer or a head over all of them is 400', async () => {
    const { proxy, app } = await start('  large_client_header_buffers: 4 1k\n');
    const answers: string[] = [];
    for (const bytes of [
      `GET /${'a'.repeat(1100)} HTTP/1.1\r\n${HEAD}\r\n`,
      `GET /${'a'.repeat(5000)} HTTP/1.1\r\n${HEAD}\r\n`,
      `GET / HTTP/1.1\r\n${HEAD}X-Big: ${'b'.repeat(1100)}\r\n\r\n`,
      `GET / HTTP/1.1\r\n${HEAD}${[1, 2, 3, 4, 5].map((i) => `X-${i}: ${'c'.repeat(900)}\r\n`).join('')}\r\n`,
    ]) {
      const client = await rawConnect(proxy.port);
      client.socket.write(bytes);
      answers.push((await client.waitClosed()).split('\r\n', 1)[0]!);
    }
    expect(answers).toEqual([
      'HTTP/1.1 414 URI Too Long',
      'HTTP/1.1 414 URI Too Long',
      'HTTP/1.1 400 Bad Request',
      'HTTP/1.1 400 Bad Request',
    ]);
    await proxy.waitForLog((l) => String(l.msg ?? '').startsWith('client sent too long URI while reading client request line'));
    await proxy.waitForLog((l) => String(l.msg ?? '').startsWith('client sent too long header line: "X-Big: ..."'));
    expect(app.connections()).toBe(0);
    // Just under the limits passes.
    const client = await rawConnect(proxy.port);
    client.socket.write(`GET /${'a'.repeat(900)} HTTP/1.1\r\n${HEAD}X-Ok: ${'d'.repeat(900)}\r\n\r\n`);
    expect(await client.waitFor((t) => t.includes('\r\n\r\nGET /aaa'))).toMatch(/^HTTP\/1\.1 200 /);
    client.socket.destroy();
  });

  it('an absolute-form URI for the Host it names is served', async () => {
    const { proxy, app } = await start();
    const client = await rawConnect(proxy.port);
    client.socket.write(`GET http://example.test/x HTTP/1.1\r\n${HEAD}\r\n`);
    expect(await client.waitFor((t) => t.includes('GET http://example.test/x\n'))).toMatch(/^HTTP\/1\.1 200 /);
    expect(app.requests).toEqual(['GET http://example.test/x']);
    client.socket.destroy();
  });
});

/**
 * A chunked body that turns out malformed after its head was accepted: nginx answers 400,
 * logs `client sent invalid chunked body` (ngx_http_request_body_chunked_filter) and closes
 * the connection; the app never gets a request that looks complete.
 */
describe('hostile clients: a chunked body that turns out malformed', () => {
  const fx = useProxyFixture();

  const CHUNKED_HEAD = (path: string): string => `POST ${path} HTTP/1.1\r\n${HEAD}Transfer-Encoding: chunked\r\n\r\n`;
  const malformations: Array<[string, string]> = [
    ['a chunk size that is not hex', 'zz\r\nabc\r\n0\r\n\r\n'],
    ['no CRLF after the chunk data', '3\r\nabcXY\r\n0\r\n\r\n'],
  ];

  it.each(malformations)('request_buffering on, %s: 400, Connection: close, logged, and the app sees nothing', async (_name, bad) => {
    const app = fx.track(await countingUpstream(fx.tmp.path('app.sock')));
    const proxy = await fx.start([app.address]);
    const client = await rawConnect(proxy.port);
    // A good chunk first: the request is under way when the bad bytes come.
    client.socket.write(CHUNKED_HEAD('/upload') + chunk('hello').toString('latin1'));
    client.socket.write(bad);
    const text = await client.waitClosed();
    expect(text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(text).toMatch(/\r\nconnection: close\r\n/i);
    expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(text).toMatch(/\r\n\r\n400 Bad Request\n/);

    const error = await proxy.waitForLog((l) => String(l.msg ?? '').startsWith('client sent invalid chunked body'));
    expect(error.msg).toBe('client sent invalid chunked body, client: 127.0.0.1, request: "POST /upload HTTP/1.1", host: "example.test"');
    const access = await proxy.waitForLog((l) => l.request_uri === '/upload' && 'status' in l);
    expect(access).toMatchObject({ status: 400, upstream_addr: '-' });
    // Logged once, as 400: not a second time as the client closing (499).
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(proxy.access().filter((l) => l.request_uri === '/upload')).toHaveLength(1);
    expect(app.connections()).toBe(0);
  });

  it('a client that closes its side mid-body sent nothing malformed: 499, no 400 and no invalid-body line', async () => {
    const app = fx.track(await countingUpstream(fx.tmp.path('app.sock')));
    const proxy = await fx.start([app.address]);
    const client = await rawConnect(proxy.port);
    client.socket.write(CHUNKED_HEAD('/cut') + chunk('hello').toString('latin1'));
    await new Promise((resolve) => setTimeout(resolve, 200));
    client.socket.end();
    expect(await client.waitClosed()).toBe('');
    const access = await proxy.waitForLog((l) => l.request_uri === '/cut' && 'status' in l);
    expect(access.status).toBe(499);
    expect(proxy.errors().some((l) => String(l.msg).startsWith('client sent invalid chunked body'))).toBe(false);
    expect(app.connections()).toBe(0);
  });

  it.each(malformations)('request_buffering off, %s: 400, the app sees its request cut off, and the server is not blamed', async (_name, bad) => {
    const { seen, app, proxy, serverStatus } = await streamingToRecordingApp(fx);
    const client = await rawConnect(proxy.port);
    client.socket.write(CHUNKED_HEAD('/stream') + chunk('hello').toString('latin1'));
    // The body streams: the app has the request and its first chunk before the bad bytes come.
    await until(() => seen.length === 1 && seen[0]!.bytes === 5, 2_000, 'the app to get the first chunk');
    client.socket.write(bad);
    const text = await client.waitClosed();
    expect(text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(text).toMatch(/\r\nconnection: close\r\n/i);

    await until(() => seen[0]!.closed, 2_000, 'the upstream request to be closed');
    // What came before the bad bytes (the chunk data ahead of a missing CRLF too) went on; the end never did.
    expect(seen[0]).toMatchObject({ url: '/stream', complete: false });
    expect(seen).toHaveLength(1);
    await proxy.waitForLog((l) => String(l.msg ?? '').startsWith('client sent invalid chunked body'));
    const access = await proxy.waitForLog((l) => l.request_uri === '/stream' && 'status' in l);
    expect(access).toMatchObject({ status: 400, upstream_addr: app.address, upstream_status: '-' });
    // The client's fault, not the server's: nothing counted against it, no upstream error logged.
    expect(await serverStatus()).toMatchObject({ state: 'up', fails: 0, failures: 0, last_error: null });
    expect(proxy.errors().filter((l) => l.level === 50).map((l) => String(l.msg).split(',', 1)[0])).toEqual(['client sent invalid chunked body']);
  });

  it('request_buffering off, the app already answering: the answer is cut short (no 400 after it), logged as what was sent', async () => {
    let appClosed = false;
    const app = fx.track(
      await httpUpstream(fx.tmp.path('app.sock'), (_req, res) => {
        // An early answer, before the body is read: the head and a part of the body.
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100 });
        res.write('partial\n');
        res.on('close', () => (appClosed = true));
      }),
    );
    const proxy = await fx.start([app.address], 'proxy:\n  request_buffering: off\n');
    const client = await rawConnect(proxy.port);
    client.socket.write(CHUNKED_HEAD('/early') + chunk('hello').toString('latin1'));
    await client.waitFor((t) => t.includes('partial\n'));
    client.socket.write('zz\r\n');
    const text = await client.waitClosed();
    // One answer, truncated (fewer bytes than its Content-Length): never made to look complete.
    expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(text).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\npartial\n$/);
    await proxy.waitForLog((l) => String(l.msg ?? '').startsWith('client sent invalid chunked body'));
    const access = await proxy.waitForLog((l) => l.request_uri === '/early' && 'status' in l);
    expect(access).toMatchObject({ status: 200, upstream_addr: app.address, upstream_status: '-' });
    await until(() => appClosed, 2_000, 'the upstream request to be closed');
  });
});

/**
 * A body that stops half-way while it streams to the app (request_buffering off): nginx's
 * client_body_timeout runs on the client's reads there too (408), the app's request is
 * aborted, and the stall is not blamed on the server. Found by the fuzz run with request
 * buffering off (corpus: unbuffered-body-stalls.json): before, the proxy waited for
 * proxy_read_timeout (60 s), then answered 504 and counted a failure against the server.
 */
describe('hostile clients: a streamed body that stops half-way', () => {
  const fx = useProxyFixture();

  it('request_buffering off: 408 after client_body_timeout, the app sees its request cut off, and the server is not blamed', async () => {
    const { seen, app, proxy, serverStatus } = await streamingToRecordingApp(fx, '  client_body_timeout: 1s\n');
    const client = await rawConnect(proxy.port);
    client.socket.write(`POST /stalled HTTP/1.1\r\n${HEAD}Content-Length: 10\r\n\r\nhello`);
    await until(() => seen.length === 1 && seen[0]!.bytes === 5, 2_000, 'the app to get the first half of the body');
    // The other half never comes; the connection stays open.
    const text = await client.waitClosed(5_000);
    expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(text).toMatch(/\r\nconnection: close\r\n/i);
    await until(() => seen[0]!.closed, 2_000, 'the upstream request to be closed');
    expect(seen).toEqual([{ url: '/stalled', bytes: 5, complete: false, closed: true }]);
    await proxy.waitForLog((l) => String(l.msg ?? '').startsWith('client timed out (110: Connection timed out) while reading client request body'));
    const access = await proxy.waitForLog((l) => l.request_uri === '/stalled' && 'status' in l);
    expect(access).toMatchObject({ status: 408, upstream_addr: app.address, upstream_status: '-' });
    // The client's fault: nothing counted against the server, no upstream error logged.
    expect(await serverStatus()).toMatchObject({ state: 'up', fails: 0, failures: 0, last_error: null });
    expect(proxy.errors().filter((l) => Number(l.level) >= 40)).toEqual([]);
  });
});

describe('client connection limits', () => {
  const fx = useProxyFixture();

  async function start(http: string): Promise<{ proxy: ProxyProcess; app: CountingUpstream }> {
    const app = fx.track(await countingUpstream(fx.tmp.path('app.sock')));
    const proxy = await fx.start([app.address], `http:\n${http}`);
    return { proxy, app };
  }

  it('client_header_timeout: a head trickled past it gets 408 and the connection is closed (slowloris); the app sees nothing', async () => {
    const { proxy, app } = await start('  client_header_timeout: 1s\n');
    const client = await rawConnect(proxy.port);
    client.socket.write(`GET / HTTP/1.1\r\n${HEAD}`);
    // One header line every 200 ms: each read is in time, the head as a whole is not.
    const trickle = setInterval(() => client.socket.writable && client.socket.write('X-Slow: 1\r\n'), 200);
    try {
      const text = await client.waitClosed(5_000);
      expect(text).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(trickle);
    }
    await proxy.waitForLog((l) => String(l.msg ?? '').startsWith('client timed out (110: Connection timed out) while reading client request headers'));
    expect((await proxy.waitForLog((l) => l.status === 408 && 'request_uri' in l)).upstream_addr).toBe('-');
    expect(app.connections()).toBe(0);
  });

  it('client_header_timeout: a connection that sends nothing is closed without an answer, as nginx does', async () => {
    const { proxy, app } = await start('  client_header_timeout: 1s\n');
    const client = await rawConnect(proxy.port);
    expect(await client.waitClosed(5_000)).toBe('');
    expect(app.connections()).toBe(0);
  });

  it('keepalive_timeout: an idle client connection is closed after it', async () => {
    const { proxy } = await start('  keepalive_timeout: 1s\n');
    const client = await rawConnect(proxy.port);
    client.socket.write(`GET /one HTTP/1.1\r\n${HEAD}\r\n`);
    await client.waitFor((t) => t.includes('GET /one\n'));
    expect(client.closed()).toBe(false);
    expect(await client.waitClosed(5_000)).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('keepalive_timeout: 0 turns keep-alive off, as in nginx', async () => {
    const { proxy } = await start('  keepalive_timeout: 0\n');
    const client = await rawConnect(proxy.port);
    client.socket.write(`GET /only HTTP/1.1\r\n${HEAD}\r\n`);
    expect(await client.waitClosed()).toMatch(/^HTTP\/1\.1 200 [^]*\r\nconnection: close\r\n[^]*GET \/only\n$/i);
  });

  it('keepalive_requests: the last request allowed on a connection is answered with Connection: close', async () => {
    const { proxy, app } = await start('  keepalive_requests: 2\n');
    const client = await rawConnect(proxy.port);
    client.socket.write(`GET /1 HTTP/1.1\r\n${HEAD}\r\n`);
    await client.waitFor((t) => t.includes('GET /1\n'));
    client.socket.write(`GET /2 HTTP/1.1\r\n${HEAD}\r\n`);
    const text = await client.waitClosed();
    const second = text.slice(text.lastIndexOf('HTTP/1.1 '));
    expect(second).toMatch(/^HTTP\/1\.1 200 [^]*\r\nconnection: close\r\n[^]*GET \/2\n$/i);
    expect(app.requests).toEqual(['GET /1', 'GET /2']);
  });

  it('max_connections: connections past it are closed at once, never queued, and the refusals are logged once a second', async () => {
    const { proxy } = await start('  max_connections: 2\n');
    const held = [await rawConnect(proxy.port), await rawConnect(proxy.port)];
    held[0]!.socket.write(`GET /held HTTP/1.1\r\n${HEAD}\r\n`);
    await held[0]!.waitFor((t) => t.includes('GET /held\n'));
    const refused = await Promise.all([1, 2, 3].map(() => rawConnect(proxy.port)));
    for (const client of refused) expect(await client.waitClosed(2_000)).toBe('');
    const alerts = (): Record<string, unknown>[] =>
      proxy.errors().filter((l) => String(l.msg ?? '').startsWith('2 worker_connections are not enough'));
    await proxy.waitForLog((l) => String(l.msg ?? '').startsWith('2 worker_connections are not enough'));
    // The first refusal is reported at once, the two after it together a second later.
    await proxy.waitForLog((l) => String(l.msg ?? '').includes('2 connections refused'), 3_000);
    expect(alerts().map((l) => l.refused)).toEqual([1, 2]);
    expect(alerts()[0]!.nginx_level).toBe('alert');
    // A freed slot takes the next connection.
    held[1]!.socket.destroy();
    await held[1]!.waitClosed();
    // The proxy sees the close a moment after the client does: try until a slot is free.
    let served = '';
    for (let attempt = 0; attempt < 20 && served === ''; attempt++) {
      const next = await rawConnect(proxy.port);
      next.socket.write(`GET /next HTTP/1.1\r\n${HEAD}\r\n`);
      served = await next.waitFor((t) => t.includes('GET /next\n'));
      next.socket.destroy();
      if (served === '') await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(served).toMatch(/^HTTP\/1\.1 200 /);
    held[0]!.socket.destroy();
  });

  it('pipelined requests in one write are answered in order', async () => {
    const { proxy, app } = await start('  keepalive_requests: 100\n');
    const client = await rawConnect(proxy.port);
    client.socket.write(['/a', '/b', '/c'].map((path) => `GET ${path} HTTP/1.1\r\n${HEAD}\r\n`).join(''));
    const text = await client.waitFor((t) => t.includes('GET /c\n'));
    expect([...text.matchAll(/GET (\/\w)\n/g)].map((m) => m[1])).toEqual(['/a', '/b', '/c']);
    expect(app.requests).toEqual(['GET /a', 'GET /b', 'GET /c']);
    client.socket.destroy();
  });

  it('pipelined: a request that does not parse is refused after the answers to those before it; nothing after a refusal reaches the app', async () => {
    const { proxy, app } = await start('  keepalive_timeout: 75s\n');
    const client = await rawConnect(proxy.port);
    client.socket.write(`GET /1 HTTP/1.1\r\n${HEAD}\r\nGET /2 HTTP/1.1\r\n${HEAD}\r\nG(T /3 HTTP/1.1\r\n${HEAD}\r\n`);
    const text = await client.waitClosed();
    expect(text.match(/^HTTP\/1\.1 \d+/gm)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 400']);
    expect(text).toMatch(/GET \/1\n[^]*GET \/2\n[^]*400 Bad Request\n$/);

    const refused = await rawConnect(proxy.port);
    refused.socket.write(`GET /4 HTTP/1.1\r\n${HEAD}${HEAD}\r\nPOST /5 HTTP/1.1\r\n${HEAD}Content-Length: 1\r\n\r\nx`);
    expect((await refused.waitClosed()).match(/^HTTP\/1\.1 \d+/gm)).toEqual(['HTTP/1.1 400']);
    expect(app.requests).toEqual(['GET /1', 'GET /2']);
  });

  it('HTTP/1.0: without keep-alive the connection closes after the answer; with it, it stays open for the next', async () => {
    const { proxy } = await start('  keepalive_timeout: 75s\n');
    const plain = await rawConnect(proxy.port);
    plain.socket.write('GET /plain HTTP/1.0\r\n\r\n');
    expect(await plain.waitClosed()).toMatch(/^HTTP\/1\.1 200 [^]*GET \/plain\n$/);

    const kept = await rawConnect(proxy.port);
    kept.socket.write('GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    expect(await kept.waitFor((t) => t.includes('GET /1\n'))).toMatch(/\r\nconnection: keep-alive\r\n/i);
    kept.socket.write('GET /2 HTTP/1.0\r\n\r\n');
    expect(await kept.waitClosed()).toMatch(/GET \/2\n$/);
  });
});

describe('client limits across a reload', () => {
  const fx = useProxyFixture();

  it('a kept listener takes the new large_client_header_buffers and keepalive_requests at once (SIGHUP)', async () => {
    const app = fx.track(await countingUpstream(fx.tmp.path('app.sock')));
    const port = await freePort();
    const file = fx.tmp.path('proxy.yaml');
    const yaml = (http: string): string => `listen: 127.0.0.1:${port}\nupstream:\n  servers: [${app.address}]\nhttp:\n${http}`;
    writeFileSync(file, yaml('  large_client_header_buffers: 4 8k\n'));
    const proxy = await startProxyWithConfig(file);
    fx.onCleanup(() => proxy.stop('SIGTERM'));
    const longPath = `/${'a'.repeat(2000)}`;
    const ask = async (): Promise<string> => {
      const client = await rawConnect(port);
      client.socket.write(`GET ${longPath} HTTP/1.1\r\n${HEAD}\r\n`);
      const text = await client.waitFor((t) => t.startsWith('HTTP/1.1 ') && t.includes('\r\n\r\n'));
      client.socket.destroy();
      return text.split('\r\n', 1)[0]!;
    };
    expect(await ask()).toBe('HTTP/1.1 200 OK');

    writeFileSync(file, yaml('  large_client_header_buffers: 4 1k\n  keepalive_requests: 1\n'));
    proxy.child.kill('SIGHUP');
    await proxy.waitFor('the reload to finish', () => proxy.errorLog().find((l) => String(l.msg).startsWith('reconfigured: ')));
    expect(await ask()).toBe('HTTP/1.1 414 URI Too Long');
    const client = await rawConnect(port);
    client.socket.write(`GET /once HTTP/1.1\r\n${HEAD}\r\n`);
    expect(await client.waitClosed()).toMatch(/\r\nconnection: close\r\n[^]*GET \/once\n$/i);
    expect(app.requests).toEqual([`GET ${longPath}`, 'GET /once']);
  });
});
