import net from 'node:net';
import type { SocketAddress } from '../config/types.js';

/** How one connect() to an upstream server ended. */
export type ConnectResult =
  | { readonly kind: 'connected'; readonly socket: net.Socket }
  | { readonly kind: 'failed'; readonly error: NodeJS.ErrnoException }
  /** proxy_connect_timeout passed first (a TCP SYN nobody answers; a Unix-socket connect never waits). */
  | { readonly kind: 'timeout' };

/**
 * Opens a connection to `address`, bounded by `timeoutMs`, and calls `done` once with how
 * it went. The socket is half-open capable, so that each direction of a session can
 * be closed on its own (shutdown(SHUT_WR)); Nagle's algorithm is off on TCP, as nginx's
 * default `tcp_nodelay on` has it, so that small writes (an interactive protocol, an echo)
 * are not held back.
 */
export function connectUpstream(address: SocketAddress, timeoutMs: number, done: (result: ConnectResult) => void): void {
  const target = address.kind === 'unix' ? { path: address.path } : { host: address.host, port: address.port };
  const socket = net.connect({ ...target, allowHalfOpen: true, noDelay: true });
  const settle = (result: ConnectResult): void => {
    clearTimeout(timer);
    socket.off('connect', onConnect);
    socket.off('error', onError);
    if (result.kind !== 'connected') socket.destroy();
    done(result);
  };
  const onConnect = (): void => settle({ kind: 'connected', socket });
  const onError = (error: NodeJS.ErrnoException): void => settle({ kind: 'failed', error });
  const timer = setTimeout(() => settle({ kind: 'timeout' }), timeoutMs);
  socket.once('connect', onConnect);
  socket.once('error', onError);
}
