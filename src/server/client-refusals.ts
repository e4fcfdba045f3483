import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ClientLimits } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import { clientAddress } from './client-address.js';

/**
 * A request the proxy answers itself, never contacting an upstream: the status nginx
 * gives, its error-log words, and the text of the error page. The page never carries a
 * byte of the request (a reflected-XSS or log-injection vector).
 */
export interface Refusal {
  readonly status: number;
  /** nginx's error-log message, e.g. `client sent invalid header line`. */
  readonly message: string;
  /** What nginx was doing: "reading client request line" or "reading client request headers". */
  readonly action: string;
  /** The error page's text after the status line; nginx's own where it has one. */
  readonly text: string;
}

export const READING_LINE = 'reading client request line';
const READING_HEADERS = 'reading client request headers';
const HEADER_TOO_LARGE = 'Request Header Or Cookie Too Large';

export function refusal(status: number, message: string, action: string, text = STATUS_CODES[status] ?? 'Error'): Refusal {
  return { status, message, action, text };
}

/**
 * What node's parser (llhttp, strict mode) refused, as nginx answers the same bytes (each
 * checked against nginx 1.22). `undefined`: nothing to answer (the client reset the
 * connection, or sent nothing before client_header_timeout, which nginx closes silently).
 */
export function refusalForParseError(
  err: NodeJS.ErrnoException & { reason?: string; rawPacket?: Buffer },
  socket: Socket,
  limits: ClientLimits,
): Refusal | undefined {
  const reason = err.reason ?? '';
  if (/Content-Length/.test(reason) && /Transfer-Encoding/.test(reason)) {
    // Request smuggling (RFC 9112 §6.3): two framings, and a proxy and its app could each
    // pick another. llhttp names it under either header's code, by which came second.
    return refusal(400, 'client sent "Content-Length" and "Transfer-Encoding" headers at the same time', READING_HEADERS);
  }
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      // client_header_timeout. A connection that never sent a byte is closed without an
      // answer, as nginx does ("client timed out ... while waiting for request").
      if (socket.bytesRead === 0) return undefined;
      return refusal(408, 'client timed out (110: Connection timed out)', READING_HEADERS, 'Request Timeout: the request head did not arrive within client_header_timeout');
    case 'HPE_HEADER_OVERFLOW':
      // More than large_client_header_buffers NUMBER × SIZE. When what overflowed starts
      // with a request line longer than one buffer, it is nginx's 414.
      if (startsWithLongRequestLine(err.rawPacket, limits.headerBuffers.sizeBytes)) {
        return refusal(414, 'client sent too long URI', READING_LINE);
      }
      return refusal(400, 'client sent too long header line', READING_HEADERS, HEADER_TOO_LARGE);
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return refusal(400, 'client sent duplicate header line: "Content-Length"', READING_HEADERS);
    case 'HPE_INVALID_TRANSFER_ENCODING':
      // chunked not last, or repeated: nginx takes "chunked" alone and answers 501 to the rest.
      return refusal(501, 'client sent unknown "Transfer-Encoding"', READING_HEADERS);
    case 'HPE_INVALID_CONTENT_LENGTH':
      // A value that is not digits, "1, 1" included (nginx takes no list either).
      return refusal(400, 'client sent invalid "Content-Length" header', READING_HEADERS);
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_CR_EXPECTED':
    case 'HPE_LF_EXPECTED':
      // An invalid name, a NUL or control byte, obsolete line folding, a bare LF.
      return refusal(400, 'client sent invalid header line', READING_HEADERS);
    case 'HPE_INVALID_METHOD':
      return refusal(400, 'client sent invalid method', READING_LINE);
    case 'HPE_INVALID_VERSION':
      if (/Invalid HTTP version/.test(reason)) return refusal(505, 'client sent invalid version', READING_LINE);
      return refusal(400, 'client sent invalid request', READING_LINE);
    case 'HPE_PAUSED_H2_UPGRADE':
      // The HTTP/2 connection preface ("PRI * HTTP/2.0") on an HTTP/1 port.
      return refusal(400, 'client sent invalid request', READING_LINE);
    case 'ECONNRESET':
    case 'EPIPE':
      return undefined;
    default:
      if (err.code?.startsWith('HPE_')) return refusal(400, 'client sent invalid request', READING_LINE);
      return undefined;
  }
}

/**
 * What node's parser lets through but nginx refuses, checked once the head is parsed and
 * before anything is sent upstream. `undefined`: the request may go on.
 */
export function refusalForRequest(req: IncomingMessage, limits: ClientLimits): Refusal | undefined {
  const { sizeBytes } = limits.headerBuffers;
  // The request line must fit in one buffer of large_client_header_buffers.
  const requestLine = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  if (Buffer.byteLength(requestLine, 'latin1') > sizeBytes) return refusal(414, 'client sent too long URI', READING_LINE);
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // So must each header line.
    if (name.length + 2 + raw[i + 1]!.length + 2 > sizeBytes) {
      return refusal(400, `client sent too long header line: "${name}: ..."`, READING_HEADERS, HEADER_TOO_LARGE);
    }
    if (name.toLowerCase() === 'host') hosts++;
  }
  if (hosts > 1) return refusal(400, 'client sent duplicate host header', READING_HEADERS);
  // RFC 9112 §3.2: an HTTP/1.1 request without Host is refused (node's own answer would log nothing).
  if (hosts === 0 && req.httpVersion === '1.1') return refusal(400, 'client sent HTTP/1.1 request without "Host" header', READING_HEADERS);
  const transferEncoding = req.headers['transfer-encoding'];
  // nginx ≥ 1.21.1 takes "chunked" alone (any case) and answers 501 to every other coding.
  if (transferEncoding !== undefined && transferEncoding.toLowerCase() !== 'chunked') {
    return refusal(501, 'client sent unknown "Transfer-Encoding"', READING_HEADERS);
  }
  const url = req.url ?? '/';
  if (!url.startsWith('/') && url !== '*') {
    // absolute-form (RFC 9112 §3.2.2): the URI's authority is the request's host, which
    // the app may read instead of Host. One that disagrees with Host is refused, so that
    // the proxy and the app cannot disagree about which site is asked.
    let authority: string | undefined;
    try {
      const parsed = new URL(url);
      authority = parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.host : undefined;
    } catch {
      authority = undefined;
    }
    if (authority === undefined) return refusal(400, 'client sent invalid request', READING_LINE);
    const host = (req.headers.host ?? '').toLowerCase();
    if (authority.toLowerCase() !== host && authority.toLowerCase() !== host.replace(/:80$/, '')) {
      return refusal(400, 'client sent absolute-form URI for another host than "Host"', READING_HEADERS);
    }
  }
  return undefined;
}

/** Where a refusal is reported. */
export interface RefusalLogs {
  readonly errorLog: Logger;
  readonly accessLog: Logger | undefined;
}

/**
 * Answers a refusal on a connection node's parser has given up on (or that was never an
 * HTTP request: CONNECT) and closes it, logging it as nginx does: an error-log line at
 * info, and an access-log line with the status. `requestLine` is what is known of the
 * request, for the logs only (pino escapes it); never for the page.
 */
export function answerRefusal(socket: Socket, refused: Refusal, logs: RefusalLogs, request: { method: string; uri: string; line: string } | undefined): void {
  const body = `${refused.status} ${refused.text}\n`;
  const client = clientAddress(socket);
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${refused.status} ${STATUS_CODES[refused.status] ?? 'Error'}\r\n` +
        'Content-Type: text/plain; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  }
  // Ended our side; a client that never reads or closes must not hold the socket.
  socket.setTimeout(5_000, () => socket.destroy());
  let line = `${refused.message} while ${refused.action}, client: ${client}`;
  if (request !== undefined) line += `, request: ${JSON.stringify(request.line)}`;
  logs.errorLog.info({ status: refused.status }, line);
  logs.accessLog?.info({
    remote_addr: client,
    request_method: request?.method ?? '',
    request_uri: request?.uri ?? '',
    status: refused.status,
    body_bytes_sent: Buffer.byteLength(body),
    request_time: 0,
    upstream_addr: '-',
    upstream_status: '-',
    upstream_response_time: '-',
    request_id: '-',
  });
}

/** Whether `packet` starts with a request line (`METHOD SP …`) longer than `size` bytes. */
function startsWithLongRequestLine(packet: Buffer | undefined, size: number): boolean {
  if (packet === undefined || !/^[A-Z]+ /.test(packet.subarray(0, 32).toString('latin1'))) return false;
  const end = packet.indexOf(0x0a);
  return (end < 0 ? packet.length : end) > size;
}

/** The request line at the start of what the parser refused, for the logs: at most 2 048 bytes, latin1. */
export function requestLineOf(packet: Buffer | undefined): { method: string; uri: string; line: string } | undefined {
  if (packet === undefined || packet.length === 0) return undefined;
  const end = packet.indexOf(0x0a);
  const line = packet
    .subarray(0, Math.min(end < 0 ? packet.length : end, 2048))
    .toString('latin1')
    .replace(/\r$/, '');
  // What overflowed or failed may start mid-head (a later chunk): then nothing is known of the request line.
  if (!/^\S+ \S+ HTTP\/\S+$/.test(line)) return undefined;
  const [method = '', uri = ''] = line.split(' ');
  return { method, uri, line };
}
