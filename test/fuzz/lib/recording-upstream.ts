/**
 * The app behind the proxy during a fuzz run: a raw `net` server on a Unix socket that
 * keeps the exact bytes of each connection and parses them with a strict HTTP/1.1 parser of
 * its own (not node's: the point is a second opinion on the bytes the proxy sends). Each
 * request it finds is recorded with the framing it saw: method, target, body length and
 * hash, and the headers the proxy adds (X-Forwarded-For names the client, X-Request-Id the
 * access-log line). Bytes it cannot parse are recorded as a violation: the proxy must only
 * ever send well-formed requests.
 *
 * A connection closed in the middle of a request's body leaves an incomplete request. With
 * request buffering off that is how the proxy gives up on a body that went bad or stopped
 * half-way (it aborts the app's request), so it is recorded as incomplete, with the body
 * bytes that did arrive; with buffering on the proxy sends only whole bodies, and it is a
 * violation. A connection closed within a head is a violation in both modes.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';

export interface SeenRequest {
  readonly method: string;
  readonly target: string;
  readonly bodyLength: number;
  readonly bodySha256: string;
  /** False: the connection closed before the body's end (bodyLength and bodySha256 are of what arrived). */
  readonly complete: boolean;
  /** The body bytes that arrived, kept only for an incomplete request (to compare with the input's). */
  readonly partialBody: Buffer | undefined;
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
 * does not allow. `closed`: no more bytes will come; a request whose head is complete is
 * then returned as it stands, incomplete.
 */
function parseRequest(data: Buffer, closed = false): { request: SeenRequest; length: number } | undefined {
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd < 0) {
    if (data.length > 1 << 20) throw new ParseError('head longer than 1 MiB');
    if (closed) throw new ParseError(`connection closed within a request head (${data.length} bytes)`);
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
  let complete: boolean;
  const bodyStart = headEnd + 4;
  if (transferEncoding !== undefined) {
    if (transferEncoding.toLowerCase() !== 'chunked') throw new ParseError(`Transfer-Encoding ${JSON.stringify(transferEncoding)}`);
    ({ body, length, complete } = parseChunked(data, bodyStart));
  } else {
    if (contentLength !== undefined && !/^\d{1,15}$/.test(contentLength)) throw new ParseError(`Content-Length ${JSON.stringify(contentLength)}`);
    const size = contentLength === undefined ? 0 : Number(contentLength);
    complete = data.length >= bodyStart + size;
    body = data.subarray(bodyStart, Math.min(data.length, bodyStart + size));
    length = bodyStart + body.length;
  }
  if (!complete && !closed) return undefined;
  const forwardedFor = headers.get('x-forwarded-for')?.join(',');
  return {
    request: {
      method: requestLine[1]!,
      target: requestLine[2]!,
      bodyLength: body.length,
      bodySha256: createHash('sha256').update(body).digest('hex'),
      complete,
      partialBody: complete ? undefined : Buffer.from(body),
      client: forwardedFor?.split(',').pop()?.trim(),
      requestId: single('x-request-id'),
    },
    length,
  };
}

/**
 * A chunked body (RFC 9112 §7.1), strictly: hex sizes, no extensions, CRLF everywhere, an
 * empty trailer section. Where the bytes run out first: the chunk data that did arrive,
 * `complete` false.
 */
function parseChunked(data: Buffer, start: number): { body: Buffer; length: number; complete: boolean } {
  const parts: Buffer[] = [];
  const incomplete = (): { body: Buffer; length: number; complete: boolean } => ({ body: Buffer.concat(parts), length: data.length, complete: false });
  let at = start;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd < 0) {
      if (!/^[0-9a-fA-F]{0,8}$/.test(data.subarray(at).toString('latin1'))) throw new ParseError(`chunk size ${JSON.stringify(data.subarray(at).toString('latin1'))}`);
      return incomplete();
    }
    const sizeText = data.subarray(at, lineEnd).toString('latin1');
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) throw new ParseError(`chunk size ${JSON.stringify(sizeText)}`);
    const size = parseInt(sizeText, 16);
    at = lineEnd + 2;
    if (size === 0) {
      if (data.length < at + 2) return incomplete();
      if (data.subarray(at, at + 2).toString('latin1') !== '\r\n') throw new ParseError('trailers after the last chunk');
      return { body: Buffer.concat(parts), length: at + 2, complete: true };
    }
    if (data.length < at + size + 2) {
      parts.push(data.subarray(at, at + size));
      return incomplete();
    }
    if (data.subarray(at + size, at + size + 2).toString('latin1') !== '\r\n') throw new ParseError('chunk not followed by CRLF');
    parts.push(data.subarray(at, at + size));
    at += size + 2;
  }
}

/** `allowIncomplete`: a request cut off by its connection's close is recorded (request buffering off), not a violation. */
export async function recordingUpstream(path: string, options: { allowIncomplete: boolean }): Promise<RecordingUpstream> {
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
    let failed = false;
    const record = (request: SeenRequest): void => {
      total++;
      if (request.client === undefined) violations.push(`a request with no X-Forwarded-For: ${JSON.stringify(request)}`);
      else byClient.set(request.client, [...(byClient.get(request.client) ?? []), request]);
    };
    const fail = (error: unknown): void => {
      if (!(error instanceof ParseError)) throw error;
      failed = true;
      violations.push(`the upstream could not parse what the proxy sent (${error.message}); connection bytes, base64: ${Buffer.concat(received).toString('base64')}`);
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      pending = Buffer.concat([pending, chunk]);
      try {
        for (let parsed = parseRequest(pending); parsed !== undefined; parsed = parseRequest(pending)) {
          pending = pending.subarray(parsed.length);
          record(parsed.request);
          socket.write(ANSWER);
        }
      } catch (error) {
        fail(error);
      }
    });
    // What is left when the proxy closes (or resets) the connection is a request cut off.
    socket.on('close', () => {
      if (failed || pending.length === 0) return;
      try {
        const { request } = parseRequest(pending, true)!;
        if (options.allowIncomplete) record(request);
        else violations.push(`the proxy closed its connection to the upstream within a request's body (request buffering is on): ${JSON.stringify({ ...request, partialBody: undefined })}; connection bytes, base64: ${Buffer.concat(received).toString('base64')}`);
      } catch (error) {
        fail(error);
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
