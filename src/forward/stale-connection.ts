import diagnosticsChannel from 'node:diagnostics_channel';
import type { Socket } from 'node:net';

/**
 * The keep-alive race (nginx-semantics §4): the app closes an idle connection at the moment
 * the proxy writes the next request into it. nginx then answers 502 to a POST (it retries
 * other methods, as any `error`). The request never reached the app, so sockproxy sends it
 * again on a new connection. This module recognises that failure.
 *
 * A connection is reused when it had read an earlier response before this request's
 * headers went out; the failure is the race when nothing of this response was read.
 */

/** socket.bytesRead when the current request's headers were written (undici's documented diagnostics channel). */
const bytesReadAtRequest = new WeakMap<Socket, number>();
diagnosticsChannel.subscribe('undici:client:sendHeaders', (message) => {
  const { socket } = message as { socket: Socket };
  bytesReadAtRequest.set(socket, socket.bytesRead);
});

/**
 * The kernel resets a connection closed with our request unread (ECONNRESET), or refuses
 * the write into a closed one (EPIPE): either way the app never read the request, and
 * any method can be sent again.
 */
const NEVER_READ = new Set(['ECONNRESET', 'EPIPE']);
/**
 * undici's "other side closed": the app sent FIN. That is the race too, when the FIN
 * crossed our request, but an app that read the request and died looks the same, so as
 * Go's net/http does, only an idempotent request is sent again.
 */
const CLOSED = 'UND_ERR_SOCKET';
/** RFC 9110 §9.2.2. */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

const neverRead = new WeakSet<Error>();
const closedIdle = new WeakSet<Error>();

/** Watches a new upstream socket; called from the pool's connector before undici sees the socket. */
export function watchConnection(socket: Socket): void {
  // Listeners run in order: this one sees the error before undici hands it to the request.
  socket.on('error', (error: NodeJS.ErrnoException) => {
    const before = bytesReadAtRequest.get(socket);
    if (before === undefined || before === 0 || socket.bytesRead !== before) return;
    if (NEVER_READ.has(error.code ?? '')) neverRead.add(error);
    else if (error.code === CLOSED) closedIdle.add(error);
  });
}

/** Whether a failed request lost the keep-alive race and can be sent again on a new connection. */
export function lostKeepaliveRace(error: Error, method: string): boolean {
  return neverRead.has(error) || (closedIdle.has(error) && IDEMPOTENT_METHODS.has(method));
}
