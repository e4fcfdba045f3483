import type { ServerConfig, SocketAddress } from '../config/types.js';

/**
 * How nginx names an upstream server in logs and in $upstream_addr:
 * "unix:/tmp/app.sock", "127.0.0.1:8000", "[::1]:8000".
 */
export function formatAddress(address: SocketAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** A server as an nginx `server` line would show it: "unix:/tmp/app.sock weight=2 backup". */
export function describeServer(server: ServerConfig): string {
  const { weight, maxFails, failTimeoutSec, maxConns } = server;
  let line = `${formatAddress(server.address)} weight=${weight} max_fails=${maxFails} fail_timeout=${failTimeoutSec}s`;
  if (maxConns > 0) line += ` max_conns=${maxConns}`;
  if (server.backup) line += ' backup';
  if (server.down) line += ' down';
  return line;
}
