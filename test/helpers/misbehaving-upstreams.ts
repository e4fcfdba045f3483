/**
 * Upstreams that answer badly in one specific way, for the next_upstream matrix
 * (nginx-semantics §1.6–1.7). Each is a real server on a Unix socket that records the
 * requests it saw. The ones that must put exact bytes on the wire (an invalid header, an
 * unparseable status line, conflicting framing) are raw `net` servers, since node:http
 * refuses to send such responses.
 */
import { once } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import { httpUpstream, readBody, type SeenRequest, type TestUpstream } from './upstreams.js';

/** A raw upstream also counts connections: a connection that never got to send a request is seen too. */
export interface RawUpstream extends TestUpstream {
  connections(): number;
}

/** What a raw upstream does once a whole request (head and Content-Length body) has arrived. */
export type RawAnswer = (socket: net.Socket, seen: SeenRequest) => void;

/**
 * A `net` server on `path` that reads one request per connection (head, then a
 * Content-Length body), records it, and hands the socket to `answer`. Later bytes on the
 * same connection are ignored. With `afterHead`, the socket is handed over as soon as the
 * head is in, with whatever body came along with it.
 */
export async function rawUpstream(path: string, answer: RawAnswer, { afterHead = false } = {}): Promise<RawUpstream> {
  let connections = 0;
  const requests: SeenRequest[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // The proxy may reset the connection once it has what it wants: not this server's concern.
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    let seen: SeenRequest | undefined;
    let bodyLength = 0;
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      if (answered) return;
      buffered = Buffer.concat([buffered, chunk]);
      if (seen === undefined) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const [requestLine = '', ...lines] = buffered.subarray(0, end).toString('latin1').split('\r\n');
        const [method = '', url = ''] = requestLine.split(' ');
        const rawHeaders: string[] = [];
        const headers: IncomingHttpHeaders = {};
        for (const line of lines) {
          const colon = line.indexOf(':');
          const name = line.slice(0, colon);
          const value = line.slice(colon + 1).trim();
          rawHeaders.push(name, value);
          headers[name.toLowerCase()] = value;
        }
        bodyLength = Number(headers['content-length'] ?? 0);
        buffered = buffered.subarray(end + 4);
        seen = { method, url, headers, rawHeaders, body: Buffer.alloc(0) };
        requests.push(seen);
      }
      if (afterHead || buffered.length >= bodyLength) {
        answered = true;
        seen.body = buffered.subarray(0, bodyLength);
        answer(socket, seen);
      }
    });
  });
  server.listen(path);
  await once(server, 'listening');
  return {
    path,
    address: `unix:${path}`,
    requests,
    connections: () => connections,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Answers every request with exactly `bytes`, then closes the connection. */
export function rawResponseUpstream(path: string, bytes: string): Promise<RawUpstream> {
  return rawUpstream(path, (socket) => socket.end(bytes, 'latin1'));
}

/**
 * A header line without a colon: nginx "upstream sent invalid header" (invalid_header),
 * llhttp HPE_INVALID_HEADER_TOKEN.
 */
export const INVALID_HEADER_RESPONSE = 'HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 2\r\n\r\nhi';

export function invalidHeaderUpstream(path: string): Promise<RawUpstream> {
  return rawResponseUpstream(path, INVALID_HEADER_RESPONSE);
}

/**
 * Content-Length and Transfer-Encoding together: nginx "upstream sent "Content-Length" and
 * "Transfer-Encoding" headers at the same time" (invalid_header).
 */
export const LENGTH_AND_CHUNKED_RESPONSE =
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n';

export function lengthAndChunkedUpstream(path: string): Promise<RawUpstream> {
  return rawResponseUpstream(path, LENGTH_AND_CHUNKED_RESPONSE);
}

/** Two Content-Length lines that disagree: nginx "upstream sent duplicate header line" (invalid_header). */
export const CONFLICTING_LENGTHS_RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello!!';

export function conflictingLengthsUpstream(path: string): Promise<RawUpstream> {
  return rawResponseUpstream(path, CONFLICTING_LENGTHS_RESPONSE);
}

/**
 * A status line that is not HTTP's (letters where the status digits belong): nginx logs
 * "upstream sent no valid HTTP/1.0 header" and relays the bytes as HTTP/0.9.
 */
export const BAD_STATUS_LINE_RESPONSE = 'HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nhi';

export function badStatusLineUpstream(path: string): Promise<RawUpstream> {
  return rawResponseUpstream(path, BAD_STATUS_LINE_RESPONSE);
}

/**
 * Sends the headers (Content-Length: `declared`) and `partial` as the start of the body,
 * then destroys the connection once those bytes are in the kernel: a failure after the
 * response headers, which nginx never retries.
 */
export function partialBodyUpstream(path: string, declared: number, partial: string): Promise<RawUpstream> {
  return rawUpstream(path, (socket) => {
    socket.write(
      `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${declared}\r\n\r\n${partial}`,
      'latin1',
      () => socket.destroy(),
    );
  });
}

/** An HTTP server answering `status` with `body` (text/plain) once the request body is read. */
export function statusUpstream(path: string, status: number, body: string): Promise<TestUpstream> {
  return httpUpstream(path, (req, res, seen) =>
    readBody(req, seen, () => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(body);
    }),
  );
}

/**
 * An HTTP server that reads the request, waits `delayMs`, then answers `status` with
 * `body`: slow response headers. Pending answers are dropped on close.
 */
export async function slowUpstream(path: string, delayMs: number, status: number, body: string): Promise<TestUpstream> {
  const timers = new Set<NodeJS.Timeout>();
  const upstream = await httpUpstream(path, (req, res, seen) =>
    readBody(req, seen, () => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(body);
      }, delayMs);
      timers.add(timer);
    }),
  );
  return {
    ...upstream,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await upstream.close();
    },
  };
}
