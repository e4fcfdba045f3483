import { isIPv6 } from 'node:net';
import { DEFAULTS } from './defaults.js';
import { parsePort, UNIX_PATH_MAX_BYTES } from './listen.js';
import type { ServerConfig, SocketAddress } from './types.js';
import { parseDurationSeconds, parseInteger, valueOf } from './units.js';

/** A ServerConfig without its address, being filled in from the defaults. */
export type ServerParameters = { -readonly [K in Exclude<keyof ServerConfig, 'address' | 'written'>]: ServerConfig[K] };

export interface ServerParameter {
  /** The ServerConfig field it sets. */
  readonly field: 'weight' | 'maxFails' | 'failTimeoutSec' | 'maxConns';
  /** The value's syntax, for messages about the mapping form. */
  readonly expected: string;
  /** The value, or undefined where nginx jumps to `invalid:`. */
  readonly parse: (text: string) => number | undefined;
}

/** The `name=value` parameters of ngx_http_upstream_server, with nginx's own value checks. */
export const SERVER_PARAMETERS: ReadonlyMap<string, ServerParameter> = new Map([
  // ngx_atoi, then `weight == 0` is rejected.
  ['weight', { field: 'weight', expected: 'an integer >= 1', parse: (text) => positive(valueOf(parseInteger(text))) }],
  ['max_fails', { field: 'maxFails', expected: 'a non-negative integer', parse: (text) => valueOf(parseInteger(text)) }],
  ['max_conns', { field: 'maxConns', expected: 'a non-negative integer', parse: (text) => valueOf(parseInteger(text)) }],
  // ngx_parse_time(&s, 1): whole seconds, no `ms`.
  [
    'fail_timeout',
    {
      field: 'failTimeoutSec',
      expected: 'a duration in seconds like 10, 10s or 1m30s',
      parse: (text) => valueOf(parseDurationSeconds(text)),
    },
  ],
]);

/** The flag parameters of ngx_http_upstream_server. */
export const SERVER_FLAGS: ReadonlySet<string> = new Set(['backup', 'down'] satisfies Array<keyof ServerParameters>);

/**
 * Parses one nginx `server` line of an upstream block, as ngx_http_upstream_server does:
 * `ADDRESS [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N] [backup] [down]`.
 * A leading `server ` keyword and a trailing `;` are accepted so lines pasted from nginx.conf work.
 * Parameters are checked before the address, in nginx's order, and a repeated parameter
 * overrides the earlier one, as in nginx. Host names are not resolved here.
 */
export function parseServerLine(text: string): ServerConfig | { error: string } {
  const directive = text.trim().replace(/;$/, '').replace(/^server\s+/, '');
  const [addressText, ...parameterTokens] = directive.split(/\s+/).filter((token) => token !== '');
  if (addressText === undefined) return { error: 'invalid number of arguments in "server" directive' };

  const parameters: ServerParameters = { ...DEFAULTS.server };
  for (const token of parameterTokens) {
    if (!applyParameter(parameters, token)) return { error: `invalid parameter "${token}"` };
  }
  const address = parseServerAddress(addressText);
  if ('error' in address) return address;
  return Object.freeze({ address, written: addressText, ...parameters });
}

/**
 * A `server` address as ngx_parse_url reads it for an upstream (default port 80, no URI
 * part), with ngx_parse_url's error texts: `unix:PATH` (prefix case-insensitive),
 * `host[:port]`, `[ipv6][:port]`.
 */
export function parseServerAddress(text: string): SocketAddress | { error: string } {
  if (/^unix:/i.test(text)) {
    const path = text.slice('unix:'.length);
    if (path === '') return { error: `no path in the unix domain socket in upstream "${text}"` };
    if (Buffer.byteLength(path) > UNIX_PATH_MAX_BYTES) {
      return { error: `too long path in the unix domain socket in upstream "${text}"` };
    }
    return Object.freeze({ kind: 'unix', path });
  }

  // ngx_parse_inet6_url for "[...]", otherwise ngx_parse_inet_url: the port after the first ':'.
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (text.startsWith('[') && !bracketed) return { error: `invalid host in upstream "${text}"` };
  const colon = text.indexOf(':');
  const host = bracketed ? bracketed[1]! : colon === -1 ? text : text.slice(0, colon);
  const portText = bracketed ? bracketed[2] : colon === -1 ? undefined : text.slice(colon + 1);

  const port = portText === undefined ? DEFAULTS.serverPort : parsePort(portText);
  if (port === undefined) return { error: `invalid port in upstream "${text}"` };
  if (host === '') return { error: `no host in upstream "${text}"` };
  if (bracketed && !isIPv6(host)) return { error: `invalid IPv6 address in upstream "${text}"` };
  // nginx fails to resolve such a name at load ("host not found"); we resolve later, so reject it now.
  // All digits is no DNS name: most likely a port written without its host.
  if (!bracketed && (!/^[A-Za-z0-9._-]+$/.test(host) || /^\d+$/.test(host))) {
    return { error: `invalid host in upstream "${text}"` };
  }
  return Object.freeze({ kind: 'tcp', host, port });
}

/** One `name=value` or flag token; false where nginx jumps to `invalid:`. Names are case-sensitive (ngx_strncmp). */
function applyParameter(parameters: ServerParameters, token: string): boolean {
  if (SERVER_FLAGS.has(token)) {
    parameters[token as 'backup' | 'down'] = true;
    return true;
  }
  const equals = token.indexOf('=');
  const parameter = equals === -1 ? undefined : SERVER_PARAMETERS.get(token.slice(0, equals));
  const value = parameter?.parse(token.slice(equals + 1));
  if (parameter === undefined || value === undefined) return false;
  parameters[parameter.field] = value;
  return true;
}

function positive(value: number | undefined): number | undefined {
  return value === undefined || value === 0 ? undefined : value;
}
