import http, { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean) => void;

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

/**
 * The client-facing HTTP/1.x server. Node parses and validates requests (malformed ones
 * get 400 before reaching us; HTTP/1.1 without Host is refused, as nginx does).
 */
export function createHttpServer(handle: RequestHandler, handleUpgrade: UpgradeHandler): http.Server {
  const server = http.createServer({
    // nginx has no limit on a whole request's duration, only between two reads
    // (client_body_timeout); Node's 300 s default would cut long uploads.
    requestTimeout: 0,
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => handle(req, res, false));
  // With a listener, Node leaves `Expect: 100-continue` to us: the 100 is sent only
  // once the body is known to be acceptable (client_max_body_size).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => handle(req, res, true));
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
