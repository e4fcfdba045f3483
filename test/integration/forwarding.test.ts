import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyProcess, startProxyProcess } from '../helpers/proxy-process.js';
import { rawConnect } from '../helpers/raw-http.js';
import { makeTempDir } from '../helpers/temp.js';
import { httpUpstream, okFrom, readBody, type TestUpstream } from '../helpers/upstreams.js';

/** A raw HTTP/1.1 exchange over TCP, for what undici would normalise away: all received until the proxy closes. */
async function rawRequest(port: number, text: string): Promise<string> {
  const client = await rawConnect(port);
  client.socket.write(text);
  return client.waitClosed();
}

describe('forwarding to a Unix-socket upstream', () => {
  const tmp = makeTempDir();
  let app: TestUpstream;
  let proxy: ProxyProcess;

  beforeAll(async () => {
    app = await httpUpstream(tmp.path('app.sock'), (req, res, seen) => {
      readBody(req, seen, () => {
        const url = new URL(req.url!, 'http://x');
        switch (url.pathname) {
          case '/hop':
            res.writeHead(200, { connection: 'x-internal', 'x-internal': 'secret', 'keep-alive': 'timeout=9', 'x-kept': 'yes' });
            res.end('hop');
            return;
          case '/no-content':
            res.writeHead(204);
            res.end();
            return;
          case '/not-modified':
            res.writeHead(304, { etag: '"v1"' });
            res.end();
            return;
          case '/trailers':
            res.writeHead(200, { trailer: 'x-checksum' });
            res.write('part one;');
            res.addTrailers({ 'x-checksum': 'abc123' });
            res.end('part two');
            return;
          case '/sse': {
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            let n = 0;
            const timer = setInterval(() => {
              res.write(`data: ${n}\n\n`);
              if (++n === 3) {
                clearInterval(timer);
                res.end();
              }
            }, 300);
            return;
          }
          default:
            res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(`ok ${req.method}`)) });
            res.end(`ok ${req.method}`);
        }
      });
    });
    proxy = await startProxyProcess(
      `upstream:\n  name: app_server\n  servers:\n    - ${app.address} fail_timeout=0\n`,
      tmp.dir,
    );
  });

  afterAll(async () => {
    await proxy?.stop();
    await app?.close();
    tmp.remove();
  });

  it('passes a GET through, with the client Host, X-Forwarded-* and a request id', async () => {
    const before = app.requests.length;
    const res = await request(`${proxy.url}/path?q=1`, { headers: { 'x-forwarded-for': '203.0.113.9', 'user-agent': 'test' } });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok GET');
    const requestId = res.headers['x-request-id'] as string;
    expect(requestId).toMatch(/^[0-9a-f]{32}$/);
    expect(app.requests.length).toBe(before + 1);
    const seen = app.requests.at(-1)!;
    expect(seen.url).toBe('/path?q=1');
    expect(seen.headers.host).toBe(`127.0.0.1:${proxy.port}`);
    expect(seen.headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-forwarded-host']).toBe(`127.0.0.1:${proxy.port}`);
    expect(seen.headers['x-request-id']).toBe(requestId);
    expect(seen.headers['user-agent']).toBe('test');

    const line = await proxy.waitForLog((l) => l.request_id === requestId && 'status' in l);
    expect(line).toMatchObject({
      remote_addr: '127.0.0.1',
      request_method: 'GET',
      request_uri: '/path?q=1',
      status: 200,
      body_bytes_sent: 6,
      upstream_addr: app.address,
      upstream_status: '200',
    });
    expect(line.upstream_response_time).toMatch(/^\d+\.\d{3}$/);
    expect(typeof line.request_time).toBe('number');
  });

  it('keeps the request id the client sent', async () => {
    const res = await request(proxy.url, { headers: { 'x-request-id': 'client-id-42' } });
    await res.body.text();
    expect(res.headers['x-request-id']).toBe('client-id-42');
    expect(app.requests.at(-1)!.headers['x-request-id']).toBe('client-id-42');
  });

  it('strips hop-by-hop request headers, and those the client lists in Connection', async () => {
    const response = await rawRequest(
      proxy.port,
      'GET /plain HTTP/1.1\r\nHost: h\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nTE: trailers\r\nKeep-Alive: 300\r\nProxy-Connection: keep-alive\r\nX-End: 2\r\n\r\n',
    );
    expect(response).toMatch(/^HTTP\/1.1 200/);
    const seen = app.requests.at(-1)!.headers;
    expect(seen['x-hop']).toBeUndefined();
    expect(seen.te).toBeUndefined();
    expect(seen['keep-alive']).toBeUndefined();
    expect(seen['proxy-connection']).toBeUndefined();
    expect(seen['x-end']).toBe('2');
  });

  it('strips hop-by-hop response headers, and those the app lists in Connection', async () => {
    const res = await request(`${proxy.url}/hop`);
    expect(await res.body.text()).toBe('hop');
    expect(res.headers['x-internal']).toBeUndefined();
    expect(res.headers['keep-alive']).not.toBe('timeout=9');
    expect(res.headers['x-kept']).toBe('yes');
  });

  it('sends request bodies, fixed-length and chunked', async () => {
    const fixed = await request(`${proxy.url}/echo`, { method: 'POST', body: 'hello body' });
    expect(await fixed.body.text()).toBe('ok POST');
    expect(app.requests.at(-1)!.body.toString()).toBe('hello body');
    expect(app.requests.at(-1)!.headers['content-length']).toBe('10');

    const chunked = await rawRequest(
      proxy.port,
      'PUT /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
    );
    expect(chunked).toMatch(/^HTTP\/1.1 200/);
    expect(app.requests.at(-1)!.body.toString()).toBe('hello world');
  });

  it('answers HEAD, 204 and 304 without a body', async () => {
    const head = await request(`${proxy.url}/plain`, { method: 'HEAD' });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength('ok HEAD')));
    expect(await head.body.text()).toBe('');
    const noContent = await request(`${proxy.url}/no-content`);
    expect(noContent.statusCode).toBe(204);
    expect(await noContent.body.text()).toBe('');
    const notModified = await request(`${proxy.url}/not-modified`);
    expect(notModified.statusCode).toBe(304);
    expect(notModified.headers.etag).toBe('"v1"');
    expect(await notModified.body.text()).toBe('');
  });

  it('relays response trailers', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve) => http.get(`${proxy.url}/trailers`, resolve));
    let body = '';
    res.setEncoding('utf8').on('data', (c: string) => (body += c));
    await once(res, 'end');
    expect(body).toBe('part one;part two');
    expect(res.trailers['x-checksum']).toBe('abc123');
  });

  it('answers Expect: 100-continue itself and does not forward Expect', async () => {
    const response = await rawRequest(
      proxy.port,
      'POST /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nabcd',
    );
    expect(response).toMatch(/^HTTP\/1.1 100 Continue\r\n\r\nHTTP\/1.1 200/);
    expect(app.requests.at(-1)!.headers.expect).toBeUndefined();
    expect(app.requests.at(-1)!.body.toString()).toBe('abcd');
  });

  it('delivers each server-sent event as the app flushes it', async () => {
    const started = Date.now();
    const res = await request(`${proxy.url}/sse`);
    expect(res.headers['content-type']).toBe('text/event-stream');
    const arrivals: number[] = [];
    for await (const chunk of res.body) {
      for (const _event of String(chunk).split('\n\n').filter(Boolean)) arrivals.push(Date.now() - started);
    }
    expect(arrivals).toHaveLength(3);
    // Each event arrives on its own, ~300 ms apart, not all at the end.
    expect(arrivals[1]! - arrivals[0]!).toBeGreaterThan(150);
    expect(arrivals[2]! - arrivals[1]!).toBeGreaterThan(150);
  });
});

describe('forwarding to a TCP upstream', () => {
  const tmp = makeTempDir();
  let server: http.Server;
  let proxy: ProxyProcess;

  beforeAll(async () => {
    server = http.createServer((req, res) => okFrom('tcp')(req, res, { method: '', url: '', headers: {}, rawHeaders: [], body: Buffer.alloc(0) }));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    proxy = await startProxyProcess(`upstream:\n  servers: [ "127.0.0.1:${port}" ]\n`, tmp.dir);
  });

  afterAll(async () => {
    await proxy?.stop();
    server?.close();
    tmp.remove();
  });

  it('proxies to host:port', async () => {
    const res = await request(proxy.url);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok tcp\n');
  });
});

describe('set_header (proxy_set_header)', () => {
  const tmp = makeTempDir();
  let app: TestUpstream;
  let proxy: ProxyProcess;

  beforeAll(async () => {
    app = await httpUpstream(tmp.path('app.sock'));
    proxy = await startProxyProcess(
      [
        'upstream:',
        '  name: app_server',
        `  servers: [ "${app.address}" ]`,
        'proxy:',
        '  set_header:',
        '    Host: $proxy_host',
        '    X-Real-IP: $remote_addr',
        '    X-Forwarded-Host: ""',
        '    X-Trace: "$request_method $uri args=$args ua=$http_user_agent"',
        '',
      ].join('\n'),
      tmp.dir,
    );
  });

  afterAll(async () => {
    await proxy?.stop();
    await app?.close();
    tmp.remove();
  });

  it('overrides, adds and removes headers, with nginx variables', async () => {
    const res = await request(`${proxy.url}/p/q?a=1`, { headers: { 'user-agent': 'ua/1', 'x-forwarded-host': 'spoofed' } });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    const seen = app.requests.at(-1)!.headers;
    expect(seen.host).toBe('app_server');
    expect(seen['x-real-ip']).toBe('127.0.0.1');
    expect(seen['x-forwarded-host']).toBeUndefined();
    expect(seen['x-trace']).toBe('GET /p/q args=a=1 ua=ua/1');
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
  });
});
