import http, { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ClientLimits } from '../config/types.js';
import { answerRefusal, READING_LINE, refusal, refusalForParseError, type RefusalLogs, requestLineOf } from './client-refusals.js';

/**
 * What the handler of a request is told after it took the request: its chunked body
 * turned out malformed (node's parser refused a chunk size, a missing CRLF after chunk
 * data, …), so the body will never end. The connection can carry nothing more.
 */
export interface RequestBodyWatch {
  bodyMalformed(): void;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean) => RequestBodyWatch;

/**
 * The client's side of a request that asked to switch protocols (`Connection: upgrade`,
 * `Upgrade: …`): node has handed the connection over, with `head` the bytes that followed
 * the request head (the start of the new protocol, if the client did not wait for 101).
 */
export interface ClientUpgrade {
  readonly socket: Socket;
  readonly head: Buffer;
}

/**
 * An upgrade request: `res` answers it as plain HTTP (a refusal, an error page), after
 * which the connection is closed; `upgrade` is the connection to tunnel once the upstream
 * said 101.
 */
export type UpgradeHandler = (req: IncomingMessage, res: ServerResponse, upgrade: ClientUpgrade) => void;

/** What the server reads from the configuration in force, each time it needs it. */
export interface ClientSide {
  readonly limits: () => ClientLimits;
  readonly logs: () => RefusalLogs;
}

/**
 * How often node looks for connections past client_header_timeout (its default, 30 s,
 * would let a 1 s timeout run 30 s).
 */
const HEADER_TIMEOUT_CHECK_MS = 250;
/** "worker_connections are not enough" is logged at most this often, with the count refused meanwhile. */
const DROP_REPORT_MS = 1_000;

/**
 * The client-facing HTTP/1.x server. Node's parser (llhttp, strict) refuses malformed
 * requests; sockproxy answers each as nginx does (./client-refusals.ts) instead of node's
 * bare 400. HTTP/1.1 without Host is refused, as nginx does.
 */
export function createHttpServer(handle: RequestHandler, handleUpgrade: UpgradeHandler, client: ClientSide): http.Server {
  const server = http.createServer({
    // nginx has no limit on a whole request's duration, only between two reads
    // (client_body_timeout); Node's 300 s default would cut long uploads.
    requestTimeout: 0,
    connectionsCheckingInterval: HEADER_TIMEOUT_CHECK_MS,
    // Node would answer a bare 400 itself, logging nothing; refusalForRequest answers as nginx does.
    requireHostHeader: false,
  });
  applyClientLimits(server, client.limits());
  // Connections being refused: waiting for the answers to the requests before it, or
  // answering a malformed body. A later parse error is an echo of the first.
  const refusing = new WeakSet<Socket>();
  // The handlers of requests whose body is still being read.
  const bodyWatches = new WeakMap<IncomingMessage, RequestBodyWatch>();
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket) => {
    if (refusing.has(socket)) return;
    // Our side is closed already (a refusal, or an answer that closed the connection): a
    // later error (the client closing mid-request) is an echo of that, answered and logged once.
    if (socket.writableEnded) {
      socket.destroy();
      return;
    }
    const refused = refusalForParseError(err, socket, client.limits());
    if (refused === undefined) {
      socket.destroy();
      return;
    }
    const incoming = (socket as Socket & { parser?: { incoming?: IncomingMessage | null } }).parser?.incoming;
    if (incoming !== undefined && incoming !== null && !incoming.complete) {
      // The client closed its side mid-body: its request is cut off (499), nothing is malformed.
      if (err.code === 'HPE_INVALID_EOF_STATE') {
        socket.destroy();
        return;
      }
      // A body that turned out malformed after its head was accepted: only a chunked body
      // is parsed (a Content-Length body is counted). Its handler answers (nginx: 400
      // "client sent invalid chunked body") and closes the connection. Without one, the
      // request is behind an answer that closes the connection: never read, as in nginx.
      refusing.add(socket);
      bodyWatches.get(incoming)?.bodyMalformed();
      return;
    }
    const respond = (): void => answerRefusal(socket, refused, client.logs(), requestLineOf(err.rawPacket));
    const underWay = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (underWay === undefined || underWay === null) {
      respond();
      return;
    }
    // A later pipelined request did not parse: as nginx does, the requests before it are
    // answered in order, then it is refused and the connection closed.
    refusing.add(socket);
    afterResponses(socket, respond);
  });
  // CONNECT asks for a tunnel to another host: sockproxy is not a forward proxy (nginx: 400).
  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => {});
    const line = `${req.method} ${req.url} HTTP/${req.httpVersion}`;
    answerRefusal(socket, refusal(400, 'client sent invalid request', READING_LINE), client.logs(), { method: req.method ?? '', uri: req.url ?? '', line });
  });
  reportDrops(server, client);
  // nginx reads no further than a request whose answer closes the connection (a refusal,
  // `Connection: close`, HTTP/1.0): requests pipelined behind it are never forwarded, where
  // node's parser would hand them over and the app would act on requests nobody answers.
  const closing = new WeakSet<Socket>();
  const onRequest = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void => {
    if (closing.has(req.socket)) {
      req.resume();
      return;
    }
    const watch = handle(req, keepAlive(res, client), expectsContinue);
    if (!req.complete) bodyWatches.set(req, watch);
    if (!res.shouldKeepAlive) closing.add(req.socket);
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res, false));
  // With a listener, Node leaves `Expect: 100-continue` to us: the 100 is sent only
  // once the body is known to be acceptable (client_max_body_size).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res, true));
  // Any other expectation: nginx ignores it and serves the request, where node would answer 417 itself, unlogged.
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => onRequest(req, res, false));
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    let res: ServerResponse;
    try {
      res = responseForUpgrade(req, socket);
    } catch {
      // ERR_HTTP_SOCKET_ASSIGNED: the upgrade was pipelined behind a request whose response
      // is still being written. No order of the two answers would be right: close.
      socket.destroy();
      return;
    }
    handleUpgrade(req, res, { socket, head });
  });
  return server;
}

/**
 * Calls `then` once every response queued on the connection has been sent (node assigns
 * the next pipelined one to the socket as each finishes); never, if the connection is closed first.
 */
function afterResponses(socket: Socket, then: () => void): void {
  const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  // Closed, or an answer before it closed the connection: the bad request is never read, as in nginx.
  if (socket.destroyed || socket.writableEnded) return;
  if (current === undefined || current === null) {
    then();
    return;
  }
  let moved = false;
  const next = (): void => {
    if (moved) return;
    moved = true;
    // After node's own 'finish' listener has moved on to the next response.
    setImmediate(() => afterResponses(socket, then));
  };
  current.once('finish', next);
  current.once('close', next);
}

/**
 * Whether the connection is kept after this response. keepalive_requests: node says
 * `Connection: close` on the last request a connection may carry, but leaves the
 * connection open (and answers 503 to the next); nginx closes it once that response is
 * sent, and so does this. `keepalive_timeout 0` is nginx's "no keep-alive", where node's
 * keepAliveTimeout 0 would keep an idle connection forever.
 */
function keepAlive(res: ServerResponse, client: ClientSide): ServerResponse {
  const lastRequest = (res as ServerResponse & { maxRequestsOnConnectionReached?: boolean }).maxRequestsOnConnectionReached;
  if (lastRequest || client.limits().keepaliveTimeoutMs === 0) res.shouldKeepAlive = false;
  return res;
}

/**
 * A ServerResponse on a connection node handed over with its 'upgrade' event, for
 * answering the request as plain HTTP. Node's parser has left the connection, so no
 * further request can be read from it: the response says `Connection: close` and the
 * connection is closed once it is sent. Whoever tunnels the connection instead calls
 * `res.detachSocket(socket)` first.
 */
export function responseForUpgrade(req: IncomingMessage, socket: Socket): ServerResponse {
  // Node removed its own error listener when it handed the socket over: without one, a
  // reset from the client would crash the process.
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  socket.on('error', () => {});
  // Nor does node's server pass the socket's 'drain' on to this response: it keeps the
  // response's need for one in a private flag, cleared by its own 'drain' listener, which
  // it removed too. Without them a response larger than the socket's buffer would wait for
  // a 'drain' that never comes. Every write of this response goes straight to the socket,
  // so the socket's own state says the same thing: read it, and pass its 'drain' on.
  Object.defineProperty(res, 'writableNeedDrain', {
    get: () => !res.writableEnded && !res.destroyed && socket.writableNeedDrain,
  });
  socket.on('drain', () => res.emit('drain'));
  res.once('finish', () => {
    if (res.socket !== socket) return;
    res.detachSocket(socket);
    socket.end();
  });
  return res;
}

/**
 * Puts the client limits in force on a server, at creation and at each reload: node reads
 * each of these when it next needs it (a new connection, a new request, the next check).
 */
export function applyClientLimits(server: http.Server, limits: ClientLimits): void {
  server.headersTimeout = limits.headerTimeoutMs;
  server.keepAliveTimeout = limits.keepaliveTimeoutMs;
  server.maxRequestsPerSocket = limits.keepaliveRequests;
  // The whole head, request line included: large_client_header_buffers NUMBER × SIZE.
  // Node reads it per connection (parser.initialize); its type is read-only.
  (server as { maxHeaderSize?: number }).maxHeaderSize = limits.headerBuffers.number * limits.headerBuffers.sizeBytes;
  server.maxConnections = limits.maxConnections;
}

/**
 * Node closes a connection past maxConnections as soon as it is accepted ('drop'), so they
 * never queue. nginx's alert for it is logged at most once a second, with how many were
 * refused, so that a flood does not flood the log too.
 */
function reportDrops(server: http.Server, client: ClientSide): void {
  let refused = 0;
  let timer: NodeJS.Timeout | undefined;
  const report = (): void => {
    timer = undefined;
    if (refused === 0) return;
    const max = server.maxConnections;
    client.logs().errorLog.error(
      { nginx_level: 'alert', refused },
      `${max} worker_connections are not enough (http.max_connections), ${refused} connection${refused === 1 ? '' : 's'} refused`,
    );
    refused = 0;
    timer = setTimeout(report, DROP_REPORT_MS).unref();
  };
  server.on('drop', () => {
    refused++;
    if (timer === undefined) report();
  });
}
