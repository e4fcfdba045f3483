import type { Socket } from 'node:net';

/**
 * nginx's $remote_addr for a client connection. A port bound on every address takes IPv4
 * clients on an IPv6 socket; they are shown as nginx shows them, "127.0.0.1", not
 * "::ffff:127.0.0.1". nginx prints "unix:" for a client on a Unix-socket listener.
 */
export function clientAddress(socket: Socket): string {
  return plainAddress(socket.remoteAddress);
}

/** nginx's $server_addr for a client connection, on the same rules: where the client connected. */
export function serverAddress(socket: Socket): string {
  return plainAddress(socket.localAddress);
}

function plainAddress(address: string | undefined): string {
  if (address === undefined) return 'unix:';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
