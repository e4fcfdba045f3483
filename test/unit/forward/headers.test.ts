import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { clientResponseHeaders, compileRequestRules, switchingProtocolsHead, upstreamRequestHeaders } from '../../../src/forward/headers.js';

/** A parsed request as node:http hands it over (no network needed for a pure function). */
function request(rawHeaders: string[], remoteAddress = '10.0.0.7'): IncomingMessage {
  const socket = new Socket();
  Object.defineProperty(socket, 'remoteAddress', { value: remoteAddress });
  const req = new IncomingMessage(socket);
  req.method = 'GET';
  req.url = '/x?y=1';
  req.httpVersion = '1.1';
  req.rawHeaders = rawHeaders;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const previous = req.headers[name];
    req.headers[name] = previous === undefined ? rawHeaders[i + 1]! : `${previous}, ${rawHeaders[i + 1]!}`;
  }
  return req;
}

function asMap(flat: string[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    map.set(name, [...(map.get(name) ?? []), flat[i + 1]!]);
  }
  return map;
}

const context = (req: IncomingMessage) => ({ req, requestId: 'rid-1', proxyHost: 'app_server' });

describe('upstreamRequestHeaders', () => {
  it('strips hop-by-hop headers and those Connection lists (RFC 9110 §7.6.1), keeps the rest in order', () => {
    const req = request([
      'Host', 'example.com:8080',
      'Connection', 'keep-alive, X-Secret',
      'Keep-Alive', 'timeout=5',
      'Proxy-Connection', 'keep-alive',
      'TE', 'trailers',
      'Trailer', 'x-sum',
      'Transfer-Encoding', 'chunked',
      'Upgrade', 'h2c',
      'Expect', '100-continue',
      'X-Secret', 'hop',
      'Accept', 'text/html',
      'Cookie', 'a=1',
    ]);
    const headers = asMap(upstreamRequestHeaders(req, compileRequestRules([]), context(req), undefined));
    for (const gone of ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'x-secret']) {
      expect(headers.has(gone), gone).toBe(false);
    }
    expect(headers.get('accept')).toEqual(['text/html']);
    expect(headers.get('cookie')).toEqual(['a=1']);
    expect(headers.get('host')).toEqual(['example.com:8080']);
    expect(headers.get('x-forwarded-proto')).toEqual(['http']);
    expect(headers.get('x-forwarded-host')).toEqual(['example.com:8080']);
    expect(headers.get('x-request-id')).toEqual(['rid-1']);
  });

  it('appends the client address to X-Forwarded-For ($proxy_add_x_forwarded_for)', () => {
    const req = request(['Host', 'h', 'X-Forwarded-For', '1.1.1.1', 'X-Forwarded-For', '2.2.2.2']);
    const headers = asMap(upstreamRequestHeaders(req, compileRequestRules([]), context(req), undefined));
    expect(headers.get('x-forwarded-for')).toEqual(['1.1.1.1, 2.2.2.2, 10.0.0.7']);
  });

  it('set_header overrides a default, adds new headers from variables, and "" removes', () => {
    const req = request(['Host', 'Example.COM:8080', 'User-Agent', 'curl/8']);
    const rules = compileRequestRules([
      { name: 'host', template: [{ variable: 'proxy_host' }] },
      { name: 'x-real-ip', template: [{ variable: 'remote_addr' }] },
      { name: 'x-forwarded-host', template: [] },
      { name: 'x-info', template: ['h=', { variable: 'host' }, ' ua=', { variable: 'http_user_agent' }, ' uri=', { variable: 'request_uri' }] },
    ]);
    const headers = asMap(upstreamRequestHeaders(req, rules, context(req), undefined));
    expect(headers.get('host')).toEqual(['app_server']);
    expect(headers.get('x-real-ip')).toEqual(['10.0.0.7']);
    expect(headers.has('x-forwarded-host')).toBe(false);
    expect(headers.get('x-info')).toEqual(['h=example.com ua=curl/8 uri=/x?y=1']);
  });
});

describe('clientResponseHeaders', () => {
  it('strips hop-by-hop headers and Connection-listed ones, adds X-Request-Id', () => {
    const headers = clientResponseHeaders(
      { connection: 'keep-alive, x-internal', 'keep-alive': 'timeout=2', 'transfer-encoding': 'chunked', 'x-internal': '1', 'set-cookie': ['a=1', 'b=2'], 'content-type': 'text/plain' },
      'rid-2',
    );
    expect(headers).toEqual({ 'set-cookie': ['a=1', 'b=2'], 'content-type': 'text/plain', 'x-request-id': 'rid-2' });
  });

  it("keeps the app's own X-Request-Id", () => {
    expect(clientResponseHeaders({ 'x-request-id': 'app' }, 'rid')['x-request-id']).toBe('app');
  });
});

describe('switchingProtocolsHead', () => {
  it('passes the app\'s fields on with its Upgrade and Connection: upgrade, hides the rest of hop-by-hop and X-Accel-*, adds X-Request-Id', () => {
    const head = switchingProtocolsHead(
      {
        upgrade: 'websocket',
        connection: 'Upgrade, X-Hop',
        'x-hop': 'dropped',
        'keep-alive': 'timeout=5',
        'sec-websocket-accept': 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
        'sec-websocket-protocol': 'chat',
        'set-cookie': ['a=1', 'b=2'],
        'x-accel-buffering': 'no',
      },
      'rid-1',
    );
    expect(head).toBe(
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'upgrade: websocket\r\n' +
        'connection: upgrade\r\n' +
        'sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n' +
        'sec-websocket-protocol: chat\r\n' +
        'set-cookie: a=1\r\n' +
        'set-cookie: b=2\r\n' +
        'x-request-id: rid-1\r\n' +
        '\r\n',
    );
  });

  it('keeps the app\'s own X-Request-Id', () => {
    expect(switchingProtocolsHead({ upgrade: 'websocket', 'x-request-id': 'app-id' }, 'rid-1')).toContain('x-request-id: app-id\r\n');
  });
});
