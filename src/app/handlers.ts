/**
 * The sample app's endpoints: the behaviours a reverse proxy has to get right in front of
 * a Gunicorn app (streaming both ways, chunked bodies, trailers, SSE, slow answers, and
 * upstreams that die mid-response), each reachable by URL so tests and demos can ask for it.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

const PATTERN = 'abcdefghijklmnopqrstuvwxyz0123456789';
const CHUNK_BYTES = 64 * 1024;
/** Above this, hashing the /bytes body before sending it would cost more than it is worth. */
const BODY_SHA256_MAX_BYTES = 16 * 1024 * 1024;
/** /mirror holds the body to hash it before the headers go out: larger ones are refused. */
const MIRROR_MAX_BYTES = BODY_SHA256_MAX_BYTES;
/** The /die-mid-body response announces this many bytes and sends DIE_MID_BODY_SENT_BYTES of them. */
const DIE_MID_BODY_DECLARED_BYTES = 100_000;
const DIE_MID_BODY_SENT_BYTES = 10_000;
/** setTimeout's limit; longer delays would fire at once (TimeoutOverflowWarning). */
const MAX_DELAY_MS = 2 ** 31 - 1;
// Any CHUNK_BYTES window of the repeating pattern, whatever its phase, is a view of this block.
const PATTERN_BLOCK = Buffer.from(PATTERN.repeat(Math.ceil(CHUNK_BYTES / PATTERN.length) + 1));

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

const EXACT_ROUTES: Readonly<Record<string, Handler>> = {
  '/': (_req, res) => sendText(res, 200, `Hello from sockproxy sample app (pid ${process.pid})\n`),
  '/echo': echo,
  '/headers': (req, res) => sendJson(res, 200, req.headers),
  '/stream': stream,
  '/sse': sse,
  '/upload': upload,
  '/mirror': mirror,
  '/trailers': trailers,
  // No response at all: the proxy must report "upstream prematurely closed connection".
  '/close': (req) => req.socket.destroy(),
  '/die-mid-body': dieMidBody,
};

const PARAM_ROUTES: ReadonlyArray<readonly [RegExp, (req: IncomingMessage, res: ServerResponse, n: number) => void]> = [
  [/^\/status\/(\d+)$/, status],
  [/^\/delay\/(\d+)$/, delay],
  [/^\/bytes\/(\d+)$/, bytes],
];

/**
 * The request listener. `x-app-pid` and a per-process `x-app-request-count` go on every
 * response so tests can tell which worker answered and whether a connection was reused.
 */
export function createHandler(): (req: IncomingMessage, res: ServerResponse) => void {
  let requestCount = 0;
  return (req, res) => {
    requestCount += 1;
    res.setHeader('x-app-pid', process.pid);
    res.setHeader('x-app-request-count', requestCount);
    const url = new URL(req.url ?? '/', 'http://app.invalid');
    const exact = EXACT_ROUTES[url.pathname];
    if (exact) return exact(req, res, url);
    for (const [pattern, handle] of PARAM_ROUTES) {
      const match = pattern.exec(url.pathname);
      if (!match) continue;
      const n = Number(match[1]);
      if (!Number.isSafeInteger(n)) return sendText(res, 400, `number too large in ${url.pathname}\n`);
      return handle(req, res, n);
    }
    sendText(res, 404, 'not found\n');
  };
}

/** `n` bytes of the repeating PATTERN starting at stream offset `offset`; n <= CHUNK_BYTES. */
export function patternBytes(offset: number, n: number): Buffer {
  const start = offset % PATTERN.length;
  return PATTERN_BLOCK.subarray(start, start + n);
}

/** For requests a test wants to inspect whole; large bodies belong to /upload, which does not hold them. */
function echo(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    sendJson(res, 200, {
      method: req.method,
      url: req.url,
      httpVersion: req.httpVersion,
      headers: req.headers,
      // Order and repetition as sent: req.headers joins duplicates, which would hide a
      // proxy that adds a second X-Forwarded-For instead of appending to the first.
      rawHeaders: req.rawHeaders,
      body: body.toString('utf8'),
      bodyBytes: body.length,
      pid: process.pid,
    });
  });
}

function status(_req: IncomingMessage, res: ServerResponse, code: number): void {
  // 1xx are interim responses (and 101 needs a real upgrade); they cannot end an exchange.
  // Node's writeHead accepts 100..999, and nginx passes any three-digit status on.
  if (code < 200 || code > 999) return sendText(res, 400, `status must be 200..999, got ${code}\n`);
  if (code === 204 || code === 304) {
    res.writeHead(code).end();
    return;
  }
  sendText(res, code, `status ${code}\n`);
}

function delay(_req: IncomingMessage, res: ServerResponse, ms: number): void {
  if (ms > MAX_DELAY_MS) return sendText(res, 400, `delay must be at most ${MAX_DELAY_MS} ms\n`);
  const timer = setTimeout(() => sendText(res, 200, `delayed ${ms}ms\n`), ms);
  // The client (or the proxy, on proxy_read_timeout) went away: nobody is waiting.
  res.on('close', () => clearTimeout(timer));
}

function bytes(req: IncomingMessage, res: ServerResponse, total: number): void {
  res.setHeader('content-type', 'application/octet-stream');
  res.setHeader('content-length', total);
  if (total <= BODY_SHA256_MAX_BYTES) res.setHeader('x-body-sha256', patternSha256(total));
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  // Generated chunk by chunk, pausing whenever the socket's buffer is full, so that a
  // 1 GiB body costs 64 KiB of memory and a slow reader slows us down instead of growing
  // a buffer. A client that disconnects makes write() return false and 'drain' never
  // comes, which ends the loop.
  let offset = 0;
  const pump = (): void => {
    while (offset < total) {
      const n = Math.min(CHUNK_BYTES, total - offset);
      const ok = res.write(patternBytes(offset, n));
      offset += n;
      if (!ok) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

function stream(_req: IncomingMessage, res: ServerResponse, url: URL): void {
  const chunks = queryCount(url, 'chunks', 5);
  const intervalMs = queryCount(url, 'interval', 100);
  if (chunks === undefined || intervalMs === undefined) return sendText(res, 400, 'chunks and interval must be integers\n');
  // No Content-Length: HTTP/1.1 clients get chunked encoding, HTTP/1.0 ones (nginx's
  // default proxy_http_version) a body delimited by closing the connection.
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
  every(res, chunks, intervalMs, (i) => res.write(`chunk ${i}\n`));
}

function sse(_req: IncomingMessage, res: ServerResponse, url: URL): void {
  const events = queryCount(url, 'events', 3);
  const intervalMs = queryCount(url, 'interval', 100);
  if (events === undefined || intervalMs === undefined) return sendText(res, 400, 'events and interval must be integers\n');
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  // An SSE client must see the response start before the first event; a buffering proxy
  // that holds it back is exactly what tests of proxy_buffering look for.
  res.flushHeaders();
  every(res, events, intervalMs, (i) => res.write(`data: event ${i}\n\n`));
}

function upload(req: IncomingMessage, res: ServerResponse): void {
  // Hashed as it arrives, never held: a 1 GiB upload costs one chunk of memory.
  const hash = createHash('sha256');
  let count = 0;
  req.on('data', (chunk: Buffer) => {
    count += chunk.length;
    hash.update(chunk);
  });
  req.on('end', () => sendJson(res, 200, { bytes: count, sha256: hash.digest('hex'), pid: process.pid }));
}

/**
 * The request body sent back with its sha256 in x-body-sha256 (the header /bytes sends), so
 * a client that sent a body can check both that the app got it whole and that the answer
 * it got is whole and its own. Held in memory (the hash goes in a header, before the body),
 * so at most MIRROR_MAX_BYTES.
 */
function mirror(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  let count = 0;
  req.on('data', (chunk: Buffer) => {
    count += chunk.length;
    if (count <= MIRROR_MAX_BYTES) chunks.push(chunk);
  });
  req.on('end', () => {
    if (count > MIRROR_MAX_BYTES) return sendText(res, 413, `/mirror takes at most ${MIRROR_MAX_BYTES} bytes\n`);
    const body = Buffer.concat(chunks);
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': body.length,
      'x-body-sha256': createHash('sha256').update(body).digest('hex'),
    });
    res.end(body);
  });
}

function trailers(_req: IncomingMessage, res: ServerResponse): void {
  const lines = ['line 1\n', 'line 2\n', 'line 3\n'];
  const hash = createHash('sha256');
  // Trailers exist only in chunked encoding, so no Content-Length; the Trailer header
  // announces them as RFC 9110 §6.6.2 asks.
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', trailer: 'x-checksum' });
  for (const line of lines) {
    hash.update(line);
    res.write(line);
  }
  res.addTrailers({ 'x-checksum': hash.digest('hex') });
  res.end();
}

function dieMidBody(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': DIE_MID_BODY_DECLARED_BYTES });
  // Destroyed once the partial body has reached the kernel, so the client gets those bytes
  // and then EOF: nginx's "upstream prematurely closed connection while reading upstream".
  res.write(patternBytes(0, DIE_MID_BODY_SENT_BYTES), () => req.socket.destroy());
}

/** Calls `send(i)` for i = 1..count, the first at once and then every intervalMs; then ends. */
function every(res: ServerResponse, count: number, intervalMs: number, send: (i: number) => void): void {
  let sent = 0;
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    if (sent < count) {
      sent += 1;
      send(sent);
    }
    if (sent === count) res.end();
    else timer = setTimeout(tick, intervalMs);
  };
  // The client went away: stop producing for nobody.
  res.on('close', () => clearTimeout(timer));
  tick();
}

function queryCount(url: URL, name: string, fallback: number): number | undefined {
  const text = url.searchParams.get(name);
  if (text === null) return fallback;
  return /^\d{1,9}$/.test(text) ? Number(text) : undefined;
}

function patternSha256(total: number): string {
  const hash = createHash('sha256');
  for (let offset = 0; offset < total; offset += CHUNK_BYTES) {
    hash.update(patternBytes(offset, Math.min(CHUNK_BYTES, total - offset)));
  }
  return hash.digest('hex');
}

function sendText(res: ServerResponse, code: number, body: string): void {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sendJson(res: ServerResponse, code: number, value: unknown): void {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
