import type { ListenAddress } from './types.js';

/** Linux sun_path is 108 bytes including the terminating NUL (nginx: "too long path in the unix domain socket"). */
export const UNIX_PATH_MAX_BYTES = 107;

/**
 * Parses a listen address as nginx's `listen` directive and Gunicorn's `--bind` write them:
 * "8080", "127.0.0.1:8080", "[::1]:8080", "localhost:8080", "unix:/run/app.sock".
 * Returns an error message (nginx's words where it has them) instead of throwing, so the
 * config loader can attach a file position to it.
 */
export function parseListen(text: string): ListenAddress | { error: string } {
  const value = text.trim();
  if (/^unix:/i.test(value)) {
    const path = value.slice('unix:'.length);
    if (path === '') return { error: `no path in the unix domain socket in "${value}"` };
    if (Buffer.byteLength(path) > UNIX_PATH_MAX_BYTES) {
      return { error: `too long path in the unix domain socket in "${value}"` };
    }
    return { kind: 'unix', path };
  }
  if (/^\d+$/.test(value)) {
    const port = parsePort(value);
    return port === undefined ? { error: `invalid port in "${value}"` } : { kind: 'tcp', host: undefined, port };
  }
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d+)$/.exec(value);
  if (!match) return { error: `invalid listen address "${value}" (expected PORT, HOST:PORT, [IPv6]:PORT or unix:PATH)` };
  const port = parsePort(match[3]!);
  if (port === undefined) return { error: `invalid port in "${value}"` };
  return { kind: 'tcp', host: match[1] ?? match[2]!, port };
}

/** A TCP port 1..65535 (nginx's ngx_parse_url rejects 0 and anything above 65535). */
export function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** How nginx prints a listen address: "unix:/run/x.sock", "0.0.0.0:8080", "[::1]:8080". */
export function formatListen(address: ListenAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  if (address.host === undefined) return `*:${address.port}`;
  const host = address.host;
  return host.includes(':') ? `[${host}]:${address.port}` : `${host}:${address.port}`;
}

/** What follows a unix: listen address: `mode=0660`, `group=www-data` (or a numeric gid). */
export interface SocketFileParameters {
  readonly mode?: number;
  readonly group?: string;
}

/**
 * Parses the parameters after a listen address, nginx-style (`listen unix:/run/x.sock
 * mode=0660 group=www-data`). nginx itself leaves a unix socket's mode and group to the
 * umask and the directory, so operators chmod it after start, racing the first client;
 * here they are applied before the socket accepts anything.
 */
export function parseSocketFileParameters(tokens: readonly string[]): SocketFileParameters | { error: string } {
  let mode: number | undefined;
  let group: string | undefined;
  for (const token of tokens) {
    const [name, value] = token.split('=', 2) as [string, string | undefined];
    if (name === 'mode' && value !== undefined && /^0?[0-7]{3}$/.test(value)) mode = parseInt(value, 8);
    else if (name === 'mode') return { error: `invalid mode "${token}" (expected permission bits like mode=0660)` };
    else if (name === 'group' && value) group = value;
    else if (name === 'group') return { error: `invalid group "${token}" (expected a group name or number like group=www-data)` };
    else return { error: `invalid parameter "${token}" (a listen address takes mode= and group=, for unix: sockets)` };
  }
  return { ...(mode === undefined ? {} : { mode }), ...(group === undefined ? {} : { group }) };
}
