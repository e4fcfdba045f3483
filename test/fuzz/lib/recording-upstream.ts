/**
 * The app behind the proxy during a fuzz run: a raw `net` server on a Unix socket that
 * keeps the exact bytes of each connection and parses them with a strict HTTP/1.1 parser of
 * its own (not node's: the point is a second opinion on the bytes the proxy sends). Each
 * request it finds is recorded with the framing it saw: method, target, body length and
 * hash, and the headers the proxy adds (X-Forwarded-For names the client, X-Request-Id the
 * access-log line). Bytes it cannot parse are recorded as a violation: the proxy must only
 * ever send well-formed requests.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';

export interface SeenRequest {
  readonly method: string;
  readonly target: string;
  readonly bodyLength: number;
  readonly bodySha256: string;
  /** The last X-Forwarded-For entry: the client's address, added by the proxy. */
  readonly client: string | undefined;
  readonly requestId: string | undefined;
}

export interface RecordingUpstream {
  readonly address: string;
  /** Requests seen, by client address (from X-Forwarded-For), in the order each arrived. */
  readonly byClient: Map<string, SeenRequest[]>;
  /** Requests that named no client, and bytes that did not parse: each one fails the run. */
  readonly violations: string[];
  /** Every request seen, all clients. */
  total(): number;
  close(): Promise<void>;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value: visible characters, spaces and tabs, obs-text; no CR, LF, NUL or other control byte (RFC 9110 §5.5). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** An empty answer: nothing in a body the client could mistake for a status line, and none to leave out after HEAD. */
const ANSWER = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';

class ParseError extends Error {}

/**
 * Parses one request at the start of `data`. Returns the request and how many bytes it
 * took, or undefined when more bytes are needed; throws ParseError on anything RFC 9112
 * does not allow.
 */
function parseRequest(data: Buffer): { request: SeenRequest; length: number } | undefined {
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd < 0) {
    if (data.length > 1 << 20) throw new ParseError('head longer than 1 MiB');
    return undefined;
  }
  const lines = data.subarray(0, headEnd).toString('latin1').split('\r\n');
  const requestLine = /^([^ ]+) ([^ ]+) HTTP\/1\.1$/.exec(lines[0]!);
  if (requestLine === null || !TOKEN.test(requestLine[1]!) || !/^[\x21-\x7e]+$/.test(requestLine[2]!)) {
    throw new ParseError(`bad request line ${JSON.stringify(lines[0])}`);
  }
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (colon <= 0 || !TOKEN.test(name) || !FIELD_VALUE.test(value) || line.includes('\n') || line.includes('\r')) {
      throw new ParseError(`bad header line ${JSON.stringify(line)}`);
    }
    const key = name.toLowerCase();
    headers.set(key, [...(headers.get(key) ?? []), value]);
  }
  const single = (name: string): string | undefined => {
    const values = headers.get(name);
    if (values !== undefined && values.length > 1) throw new ParseError(`${values.length} ${name} headers`);
    return values?.[0];
  };
  const host = single('host');
  if (host === undefined) throw new ParseError('no Host');
  const contentLength = single('content-length');
  const transferEncoding = single('transfer-encoding');
  if (contentLength !== undefined && transferEncoding !== undefined) throw new ParseError('Content-Length and Transfer-Encoding');
  let body: Buffer;
  let length: number;
  const bodyStart = headEnd + 4;
  if (transferEncoding !== undefined) {
    if (transferEncoding.toLowerCase() !== 'chunked') throw new ParseError(`Transfer-Encoding ${JSON.stringify(transferEncoding)}`);
    const chunked = parseChunked(data, bodyStart);
    if (chunked === undefined) return undefined;
    ({ body, length } = chunked);
  } else {
    if (contentLength !== undefined && !/^\d{1,15}$/.test(contentLength)) throw new ParseError(`Content-Length ${JSON.stringify(contentLength)}`);
    const size = contentLength === undefined ? 0 : Number(contentLength);
    if (data.length < bodyStart + size) return undefined;
    body = data.subarray(bodyStart, bodyStart + size);
    length = bodyStart + size;
  }
  const forwardedFor = headers.get('x-forwarded-for')?.join(',');
  return {
    request: {
      method: requestLine[1]!,
      target: requestLine[2]!,
      bodyLength: body.length,
      bodySha256: createHash('sha256').update(body).digest('hex'),
      client: forwardedFor?.split(',').pop()?.trim(),
      requestId: single('x-request-id'),
    },
    length,
  };
}

/** A chunked body (RFC 9112 §7.1), strictly: hex sizes, no extensions, CRLF everywhere, an empty trailer section. */
function parseChunked(data: Buffer, start: number): { body: Buffer; length: number } | undefined {
  const parts: Buffer[] = [];
  let at = start;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const sizeText = data.subarray(at, lineEnd).toString('latin1');
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) throw new ParseError(`chunk size ${JSON.stringify(sizeText)}`);
    const size = parseInt(sizeText, 16);
    at = lineEnd + 2;
    if (size === 0) {
      if (data.length < at + 2) return undefined;
      if (data.subarray(at, at + 2).toString('latin1') !== '\r\n') throw new ParseError('trailers after the last chunk');
      return { body: Buffer.concat(parts), length: at + 2 };
    }
    if (data.length < at + size + 2) return undefined;
    if (data.subarray(at + size, at + size + 2).toString('latin1') !== '\r\n') throw new ParseError('chunk not followed by CRLF');
    parts.push(data.subarray(at, at + size));
    at += size + 2;
  }
}

export async function recordingUpstream(path: string): Promise<RecordingUpstream> {
  const byClient = new Map<string, SeenRequest[]>();
  const violations: string[] = [];
  let total = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let pending = Buffer.alloc(0);
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      pending = Buffer.concat([pending, chunk]);
      try {
        for (let parsed = parseRequest(pending); parsed !== undefined; parsed = parseRequest(pending)) {
          pending = pending.subarray(parsed.length);
          const { request } = parsed;
          total++;
          if (request.client === undefined) violations.push(`a request with no X-Forwarded-For: ${JSON.stringify(request)}`);
          else byClient.set(request.client, [...(byClient.get(request.client) ?? []), request]);
          socket.write(ANSWER);
        }
      } catch (error) {
        if (!(error instanceof ParseError)) throw error;
        violations.push(`the upstream could not parse what the proxy sent (${error.message}); connection bytes, base64: ${Buffer.concat(received).toString('base64')}`);
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    address: `unix:${path}`,
    byClient,
    violations,
    total: () => total,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
