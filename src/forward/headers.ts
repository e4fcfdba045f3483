import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { HeaderRule, HeaderTemplate } from '../config/types.js';
import { renderTemplate, type VariableContext } from './variables.js';

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1, plus the legacy Keep-Alive and Proxy-Connection):
 * they describe one connection, so a proxy never forwards them in either direction.
 * Transfer-Encoding and the framing are regenerated on each side.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Request fields the proxy answers for itself: `Expect: 100-continue` is handled by the
 * listener (nginx never forwards Expect), and Host is always re-set from the rules below.
 */
const NOT_FORWARDED = new Set(['expect', 'host']);

/**
 * The headers sockproxy sets by default. Unlike nginx's defaults (Host = $proxy_host,
 * no X-Forwarded-*), these are what nginx users configure by hand in front of Gunicorn
 * (proxy_set_header Host $http_host; X-Forwarded-For $proxy_add_x_forwarded_for; …).
 */
const DEFAULT_RULES: readonly HeaderRule[] = [
  { name: 'host', template: [{ variable: 'http_host' }] },
  { name: 'x-forwarded-for', template: [{ variable: 'proxy_add_x_forwarded_for' }] },
  { name: 'x-forwarded-proto', template: [{ variable: 'scheme' }] },
  { name: 'x-forwarded-host', template: [{ variable: 'http_host' }] },
  { name: 'x-request-id', template: [{ variable: 'request_id' }] },
];

/** The request-header rules in force: the defaults, each overridden by a set_header of the same name. */
export function compileRequestRules(setHeader: readonly HeaderRule[]): ReadonlyMap<string, HeaderTemplate> {
  const rules = new Map<string, HeaderTemplate>();
  for (const rule of DEFAULT_RULES) rules.set(rule.name, rule.template);
  for (const rule of setHeader) rules.set(rule.name, rule.template);
  return rules;
}

/**
 * Response fields meant for the proxy alone (nginx's proxy_hide_header defaults): the
 * upstream's instructions to nginx, never shown to the client.
 */
const PROXY_INSTRUCTIONS = [
  'x-accel-buffering',
  'x-accel-charset',
  'x-accel-expires',
  'x-accel-limit-rate',
  'x-accel-redirect',
];

/**
 * The header list sent upstream, as undici's flat [name, value, …] form: the client's
 * end-to-end headers in their order and case, minus hop-by-hop ones and those a rule
 * sets, then each rule's value. A rule whose value renders empty sends nothing, as with
 * nginx's `proxy_set_header X ""`. `contentLength` is a buffered body's length, which
 * replaces the client's framing (nginx sends a chunked body on as Content-Length).
 */
export function upstreamRequestHeaders(
  req: IncomingMessage,
  rules: ReadonlyMap<string, HeaderTemplate>,
  context: VariableContext,
  contentLength: number | undefined,
): string[] {
  const listedInConnection = connectionTokens(req.headers.connection);
  const raw = req.rawHeaders;
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || NOT_FORWARDED.has(name) || rules.has(name)) continue;
    if (listedInConnection !== undefined && listedInConnection.has(name)) continue;
    if (contentLength !== undefined && name === 'content-length') continue;
    headers.push(raw[i]!, raw[i + 1]!);
  }
  if (contentLength !== undefined) headers.push('content-length', String(contentLength));
  for (const [name, template] of rules) {
    const value = renderTemplate(template, context);
    if (value !== '') headers.push(name, value);
  }
  return headers;
}

/**
 * The upstream's response headers made fit for the client, in place: hop-by-hop fields,
 * those its Connection header lists and X-Accel-* removed, X-Request-Id added when the
 * app set none.
 */
export function clientResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
  requestId: string,
): Record<string, string | string[] | undefined> {
  const connection = headers.connection;
  const listed = connectionTokens(Array.isArray(connection) ? connection.join(',') : connection);
  for (const name of HOP_BY_HOP) delete headers[name];
  for (const name of PROXY_INSTRUCTIONS) delete headers[name];
  if (listed !== undefined) for (const name of listed) delete headers[name];
  if (headers['x-request-id'] === undefined) headers['x-request-id'] = requestId;
  return headers;
}

/**
 * The head of the 101 the client gets: the upstream's fields made fit as for any response,
 * plus the two hop-by-hop fields that make the switch (RFC 9110 §7.8): the Upgrade the app
 * chose and `Connection: upgrade`, which nginx's header filter writes for a 101.
 * Values are latin1, as undici decoded them, so the head is written back as latin1.
 */
export function switchingProtocolsHead(headers: IncomingHttpHeaders, requestId: string): string {
  const upgrade = headers.upgrade;
  const fields = clientResponseHeaders({ ...headers }, requestId);
  let head = 'HTTP/1.1 101 Switching Protocols\r\n';
  if (upgrade !== undefined) head += `upgrade: ${upgrade}\r\n`;
  head += 'connection: upgrade\r\n';
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    for (const line of Array.isArray(value) ? value : [value]) head += `${name}: ${line}\r\n`;
  }
  return `${head}\r\n`;
}

function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined || value === '') return undefined;
  const tokens = new Set<string>();
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name !== '' && name !== 'close' && name !== 'keep-alive') tokens.add(name);
  }
  return tokens.size === 0 ? undefined : tokens;
}
