import diagnosticsChannel from 'node:diagnostics_channel';
import type { Socket } from 'node:net';

/**
 * What the proxy learns by watching its own upstream sockets, through the connector
 * (./pools.ts) and undici's documented diagnostics channels: which request runs on which
 * socket, whether the socket was reused, and when the app closed it.
 */

/** An attempt, as far as its socket is concerned. */
export interface SocketUser {
  /** The app closed the connection (FIN), maybe with the end of the response still unparsed. */
  onUpstreamEnd(): void;
}

/** Node 20 keeps channels weakly, and a collected channel loses its subscribers: held here. */
const requestCreate = diagnosticsChannel.channel('undici:request:create');
const sendHeaders = diagnosticsChannel.channel('undici:client:sendHeaders');

/** The attempt calling dispatch(): undici creates its Request synchronously inside that call. */
let dispatching: SocketUser | undefined;
const userOfRequest = new WeakMap<object, SocketUser>();
const userOfSocket = new WeakMap<Socket, SocketUser>();
/** socket.bytesRead when the current request's headers were written. */
const bytesReadAtRequest = new WeakMap<Socket, number>();

requestCreate.subscribe((message) => {
  if (dispatching !== undefined) userOfRequest.set((message as { request: object }).request, dispatching);
});
sendHeaders.subscribe((message) => {
  const { request, socket } = message as { request: object; socket: Socket };
  bytesReadAtRequest.set(socket, socket.bytesRead);
  const user = userOfRequest.get(request);
  if (user !== undefined) userOfSocket.set(socket, user);
});

/** Runs `dispatch` (a dispatcher.dispatch call) on behalf of `user`. */
export function dispatchAs<T>(user: SocketUser, dispatch: () => T): T {
  dispatching = user;
  try {
    return dispatch();
  } finally {
    dispatching = undefined;
  }
}

/**
 * The keep-alive race (nginx-semantics §4): the app closes an idle connection at the
 * moment the proxy writes the next request into it. nginx then answers 502 to a POST (it
 * retries other methods, as any `error`). The request never reached the app, so sockproxy
 * sends it again on a new connection. A connection is reused when it had read an earlier
 * response before this request's headers went out; the failure is the race when nothing
 * of this response was read.
 *
 * The kernel resets a connection closed with our request unread (ECONNRESET), or refuses
 * the write into a closed one (EPIPE): either way the app never read the request, and any
 * method can be sent again.
 */
const NEVER_READ = new Set(['ECONNRESET', 'EPIPE']);
/**
 * undici's "other side closed": the app sent FIN. That is the race too, when the FIN
 * crossed our request, but an app that read the request and died looks the same, so, as
 * Go's net/http does, only an idempotent request is sent again.
 */
const CLOSED = 'UND_ERR_SOCKET';
/** RFC 9110 §9.2.2. */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

const neverRead = new WeakSet<Error>();
const closedIdle = new WeakSet<Error>();

/** Watches a new upstream socket; called from the pool's connector before undici sees the socket. */
export function watchConnection(socket: Socket): void {
  // Listeners run in order: these see each event before undici's own.
  socket.on('error', (error: NodeJS.ErrnoException) => {
    const before = bytesReadAtRequest.get(socket);
    if (before === undefined || before === 0 || socket.bytesRead !== before) return;
    if (NEVER_READ.has(error.code ?? '')) neverRead.add(error);
    else if (error.code === CLOSED) closedIdle.add(error);
  });
  socket.on('end', () => userOfSocket.get(socket)?.onUpstreamEnd());
}

/** Whether a failed request lost the keep-alive race and can be sent again on a new connection. */
export function lostKeepaliveRace(error: Error, method: string): boolean {
  return neverRead.has(error) || (closedIdle.has(error) && IDEMPOTENT_METHODS.has(method));
}
