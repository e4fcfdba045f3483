import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { isAbsolute } from 'node:path';
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { DEFAULTS, deepFreeze } from './defaults.js';
import { ConfigError } from './errors.js';
import { groupId } from './groups.js';
import { formatListen, parseListen, parseSocketFileParameters } from './listen.js';
import { parseServerAddress, parseServerLine, SERVER_FLAGS, SERVER_PARAMETERS, type ServerParameters } from './server-line.js';
import { parseStatusMatch, type StatusMatch } from './status-match.js';
import type {
  AccessLogTarget,
  AdminConfig,
  Balance,
  BalanceMethod,
  ClientLimits,
  Config,
  HeaderRule,
  HealthCheckConfig,
  ListenAddress,
  LogConfig,
  LogLevel,
  NextUpstreamToken,
  PidFile,
  ProxySettings,
  QueueConfig,
  ServerConfig,
  StreamServerConfig,
  UpstreamBlock,
  UpstreamConfig,
} from './types.js';
import { MAX_TIMER_MS, parseDurationMs, parseInteger, parseSize, valueOf } from './units.js';
import { compileTemplate } from './variables.js';

/** Reads and resolves a configuration file; every problem is a ConfigError naming file, line and column. */
export async function loadConfig(file: string): Promise<Config> {
  return parseConfig(await readConfigSource(file), file);
}

/** The text of a configuration file. Throws ConfigError (nginx's open() words) when it cannot be read. */
export async function readConfigSource(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    throw ConfigError.unreadable(file, cause);
  }
}

/** Parses, validates and defaults a configuration; pure, `file` is only used in messages. Throws ConfigError. */
export function parseConfig(source: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter });
  const [syntaxError] = doc.errors;
  if (syntaxError !== undefined) {
    const position = syntaxError.linePos?.[0];
    // yaml's first line ends with its own " at line L, column C:", which the prefix already says.
    const text = syntaxError.message.split('\n', 1)[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(text, { file, line: position?.line, column: position?.col });
  }
  if (doc.contents === null) {
    throw new ConfigError('the configuration is empty: it needs at least "listen" and "upstream.servers", or "stream"', { file });
  }
  const reader = new Reader(file, lineCounter, doc);
  const root: Field = { node: reader.resolve(doc.contents), path: '' };
  if (!isMap(root.node)) {
    reader.fail(root, `the configuration must be a mapping with "listen" and "upstream", got ${describe(root.node)}`);
  }
  const sections = reader.mapping(root, TOP_KEYS);
  // Every listen address of the file, HTTP and stream, by its printed form: where it first appeared.
  const listens = new Map<string, string>();
  const streamField = sections.get('stream');
  // The HTTP proxy is there unless the file has only `stream` servers: then neither
  // `listen` nor `upstream` is required, and no HTTP listener is started.
  const http =
    streamField === undefined || sections.has('listen') || sections.has('upstream')
      ? {
          listen: readListen(reader, reader.required(root, sections, 'listen'), listens),
          upstream: readUpstream(reader, reader.required(root, sections, 'upstream'), 'http'),
        }
      : undefined;
  const stream = streamField === undefined ? [] : readStream(reader, streamField, listens);
  const workersField = sections.get('workers');
  const adminField = sections.get('admin');
  return deepFreeze({
    file,
    shutdownTimeoutMs: optional(sections, 'shutdown_timeout', (f) => reader.duration(f, 1), DEFAULTS.shutdownTimeoutMs),
    pid: optional(sections, 'pid', (f) => readPid(reader, f), DEFAULTS.pid),
    workers: workersField === undefined ? DEFAULTS.workers : readWorkers(reader, workersField),
    // After every other listen: the admin address must not be one of them.
    admin: adminField === undefined ? undefined : readAdmin(reader, adminField, listens),
    http,
    client: readClientLimits(reader, sections.get('http')),
    proxy: readProxy(reader, sections.get('proxy')),
    stream,
    log: readLog(reader, sections.get('log')),
  } satisfies Config);
}

const TOP_KEYS = ['listen', 'upstream', 'http', 'proxy', 'stream', 'workers', 'admin', 'log', 'shutdown_timeout', 'pid'];
const ADMIN_KEYS = ['listen'];
/** Upstream keys only the HTTP proxy has, with why a stream upstream refuses each. */
const HTTP_ONLY_UPSTREAM_KEYS: ReadonlyMap<string, string> = new Map([
  // ngx_http_upstream_keepalive_module has no stream twin.
  ['keepalive', 'a stream session is its own connection to the server'],
  ['keepalive_timeout', 'a stream session is its own connection to the server'],
  ['keepalive_requests', 'a stream session is its own connection to the server'],
  ['health_check', 'its checks are HTTP requests, which a stream server need not understand'],
  ['queue', 'a stream session is not a request that can wait'],
]);
const UPSTREAM_KEYS = ['name', 'servers', 'balance', ...HTTP_ONLY_UPSTREAM_KEYS.keys()];
const HEALTH_CHECK_KEYS = ['uri', 'interval', 'timeout', 'fails', 'passes', 'status', 'mandatory'];
const QUEUE_KEYS = ['size', 'timeout'];
const STREAM_SERVER_KEYS = [
  'listen',
  'upstream',
  'connect_timeout',
  'timeout',
  'next_upstream',
  'next_upstream_tries',
  'next_upstream_timeout',
];
/**
 * The variables of ngx_stream_core_module a stream `hash KEY` may use: a stream session
 * has a client and a listener, no request.
 */
const STREAM_VARIABLES: ReadonlySet<string> = new Set(['remote_addr', 'remote_port', 'server_addr', 'server_port']);
const SERVER_KEYS = ['address', ...SERVER_PARAMETERS.keys(), ...SERVER_FLAGS];
const PROXY_KEYS = [
  'next_upstream',
  'next_upstream_tries',
  'next_upstream_timeout',
  'connect_timeout',
  'send_timeout',
  'read_timeout',
  'client_max_body_size',
  'buffer_size',
  'set_header',
  'client_body_timeout',
  'request_buffering',
  'client_body_buffer_size',
  'buffering',
  'buffers',
  'max_temp_file_size',
  'temp_path',
  'max_upgraded',
];
const LOG_KEYS = ['level', 'access'];
const CLIENT_KEYS = [
  'client_header_timeout',
  'keepalive_timeout',
  'keepalive_requests',
  'large_client_header_buffers',
  'max_connections',
  // The two below live under `proxy` (they are read per request, with the body): a clear
  // error points there rather than "unknown key".
  'client_body_timeout',
  'client_max_body_size',
];

const BALANCE_EXPECTED = 'one of round_robin, least_conn, ip_hash, hash KEY [consistent], random [two [least_conn]]';
/** ngx_http_upstream_ip_hash, ngx_http_upstream_hash and ngx_http_upstream_random do not set NGX_HTTP_UPSTREAM_BACKUP. */
const WITHOUT_BACKUP: ReadonlySet<BalanceMethod> = new Set(['ip_hash', 'hash', 'random']);
const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
/** ngx_http_proxy_next_upstream_masks; `off` is handled apart. */
const NEXT_UPSTREAM_TOKENS: ReadonlySet<string> = new Set<NextUpstreamToken>([
  'error',
  'timeout',
  'invalid_header',
  'http_500',
  'http_502',
  'http_503',
  'http_504',
  'http_403',
  'http_404',
  'http_429',
  'non_idempotent',
]);
/** RFC 9110 §5.1: field-name = token; §5.6.2: tchar. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 §5.5: CR, LF and NUL are never valid in a field value. */
const FORBIDDEN_IN_HEADER_VALUE = /[\r\n\0]/;
/** It becomes $proxy_host, the Host header sent upstream, so it must be a valid host name. */
const UPSTREAM_NAME = /^[A-Za-z0-9._-]+$/;

/** A value in the document and its YAML path; `node` is null where YAML has none (the `a` of a flow `{a}`). */
interface Field {
  readonly node: Node | null;
  readonly path: string;
  /** Where to point when `node` is null. */
  readonly keyNode?: Node;
}

/** A `listen` value; `seen` holds the addresses already listened on elsewhere in the file, with their YAML path. */
function readListen(reader: Reader, field: Field, seen: Map<string, string>): readonly ListenAddress[] {
  const items = isSeq(field.node) ? reader.items(field) : [field];
  if (items.length === 0) reader.fail(field, `${field.path} must be a port, an address or a list of them, got an empty list`);
  return items.map((item) => {
    const text = reader.text(item, 'a port like 8080, an address like "127.0.0.1:8080" or "unix:/run/sockproxy.sock"');
    const [written = '', ...parameters] = text.trim().split(/\s+/);
    const address = withSocketFileParameters(reader, item, parseListen(written), parameters);
    // Two listeners on one address fail at bind time with EADDRINUSE; nginx refuses it at load.
    const key = formatListen(address);
    const first = seen.get(key);
    if (first !== undefined) {
      const also = listPath(first) === listPath(item.path) ? '' : ` (also in ${first})`;
      reader.fail(item, `a duplicate listen "${key}" in ${item.path}${also}`);
    }
    seen.set(key, item.path);
    return address;
  });
}

/** nginx `worker_processes`: `auto` (one per CPU this process may use) or a count. */
function readWorkers(reader: Reader, field: Field): number {
  const expected = 'auto or a positive integer like 2';
  const text = reader.text(field, expected);
  if (text === 'auto') return os.availableParallelism();
  return reader.parsed(field, expected, () => {
    const value = valueOf(parseInteger(text));
    return value === undefined || value < 1 ? undefined : value;
  });
}

/**
 * `admin: { listen }`. A bare port binds 127.0.0.1, not every address as `listen: 8080`
 * does: status and metrics name internal addresses, so they are public only when the user
 * writes a public address. An address the proxy or a stream server listens on, or one that
 * would collide with it at bind time (the same port on a wildcard), is refused.
 */
function readAdmin(reader: Reader, field: Field, listens: ReadonlyMap<string, string>): AdminConfig {
  const keys = reader.mapping(field, ADMIN_KEYS);
  const listenField = keys.get('listen');
  if (listenField === undefined) return DEFAULTS.admin;
  const text = reader.text(listenField, 'a port like 9180, an address like "127.0.0.1:9180" or "unix:/run/sockproxy-admin.sock"');
  const [written = '', ...parameters] = text.trim().split(/\s+/);
  let address = withSocketFileParameters(reader, listenField, parseListen(written), parameters);
  if (address.kind === 'tcp' && address.host === undefined) address = { ...address, host: '127.0.0.1' };
  for (const [key, path] of listens) {
    const other = parseListen(key.replace(/^\*:/, ''));
    if ('error' in other || !listensCollide(address, other)) continue;
    reader.fail(listenField, `admin.listen "${formatListen(address)}" is also listened on by ${path} ("${key}")`);
  }
  return { listen: address };
}

/** Whether two listeners would ask for the same socket: one path, or one port on the same or a wildcard host. */
function listensCollide(a: ListenAddress, b: ListenAddress): boolean {
  if (a.kind === 'unix' || b.kind === 'unix') return a.kind === 'unix' && b.kind === 'unix' && a.path === b.path;
  if (a.port !== b.port) return false;
  const wildcard = (host: string | undefined): boolean => host === undefined || host === '0.0.0.0' || host === '::' || host === '[::]';
  return a.host === b.host || wildcard(a.host) || wildcard(b.host);
}

/** A listen address with its `mode=` and `group=` (unix: only), the group resolved to its id now. */
function withSocketFileParameters(
  reader: Reader,
  item: Field,
  address: ListenAddress | { error: string },
  parameters: readonly string[],
): ListenAddress {
  if ('error' in address) reader.fail(item, `${address.error} in ${item.path}`);
  if (parameters.length === 0) return address;
  if (address.kind !== 'unix') {
    reader.fail(item, `"${parameters.join(' ')}" applies only to a unix: listen address, not "${formatListen(address)}", in ${item.path}`);
  }
  const parsed = parseSocketFileParameters(parameters);
  if ('error' in parsed) reader.fail(item, `${parsed.error} in ${item.path}`);
  const withMode = parsed.mode === undefined ? address : { ...address, mode: parsed.mode };
  if (parsed.group === undefined) return withMode;
  const gid = groupId(parsed.group);
  if (gid === undefined) reader.fail(item, `unknown group "${parsed.group}" (not in /etc/group; a numeric gid works too) in ${item.path}`);
  return { ...withMode, group: { name: parsed.group, gid } };
}

/** The `listen` a listen item belongs to: "stream[1].listen" for "stream[1].listen[0]". */
function listPath(path: string): string {
  return path.replace(/\[\d+\]$/, '');
}

/** The `stream` list: nginx's stream { server { … } } blocks, one L4 proxy each. */
function readStream(reader: Reader, field: Field, listens: Map<string, string>): readonly StreamServerConfig[] {
  const items = isNull(field.node) ? [] : reader.items(field);
  if (items.length === 0) reader.fail(field, 'stream must list one or more servers (each with "listen" and "upstream"), got nothing');
  return items.map((item) => {
    const keys = reader.mapping(item, STREAM_SERVER_KEYS);
    const get = <T>(key: string, read: (field: Field) => T, fallback: T): T => {
      const valueField = keys.get(key);
      return valueField ? read(valueField) : fallback;
    };
    const defaults = DEFAULTS.stream;
    return {
      listen: readListen(reader, reader.required(item, keys, 'listen'), listens),
      upstream: readUpstream(reader, reader.required(item, keys, 'upstream'), 'stream'),
      // As for HTTP: nginx would arm a 0 ms timer, Node would read 0 as "never"; refuse both readings.
      connectTimeoutMs: get('connect_timeout', (f) => reader.duration(f, 1), defaults.connectTimeoutMs),
      timeoutMs: get('timeout', (f) => reader.duration(f, 1), defaults.timeoutMs),
      nextUpstream: get('next_upstream', (f) => reader.flag(f), defaults.nextUpstream),
      nextUpstreamTries: get('next_upstream_tries', (f) => reader.integer(f), defaults.nextUpstreamTries),
      nextUpstreamTimeoutMs: get('next_upstream_timeout', (f) => reader.duration(f, 0), defaults.nextUpstreamTimeoutMs),
    };
  });
}

/** An upstream block; `stream`'s has none of the HTTP-only keys, and nginx stream's balancing methods. */
function readUpstream(reader: Reader, field: Field, kind: 'http'): UpstreamConfig;
function readUpstream(reader: Reader, field: Field, kind: 'stream'): UpstreamBlock;
function readUpstream(reader: Reader, field: Field, kind: 'http' | 'stream'): UpstreamConfig | UpstreamBlock {
  const keys = reader.mapping(field, UPSTREAM_KEYS);
  if (kind === 'stream') {
    for (const [key, why] of HTTP_ONLY_UPSTREAM_KEYS) {
      const valueField = keys.get(key);
      if (valueField === undefined) continue;
      reader.fail(
        { node: valueField.keyNode ?? valueField.node, path: valueField.path },
        `"${key}" is not available in a stream upstream (${field.path}): ${why}`,
      );
    }
  }
  const nameField = keys.get('name');
  const nameExpected = 'a host name (letters, digits, ".", "-", "_")';
  const name = nameField ? reader.text(nameField, nameExpected) : DEFAULTS.upstream.name;
  if (nameField && !UPSTREAM_NAME.test(name)) {
    reader.fail(nameField, `${nameField.path} must be ${nameExpected}, got ${JSON.stringify(name)}`);
  }
  const balanceField = keys.get('balance');
  const balance = balanceField ? readBalance(reader, balanceField, kind) : DEFAULTS.upstream.balance;
  const keepaliveField = keys.get('keepalive');
  const keepalive = keepaliveField ? reader.integer(keepaliveField) : DEFAULTS.upstream.keepalive;
  const timeoutField = keys.get('keepalive_timeout');
  const keepaliveTimeoutMs = timeoutField ? reader.duration(timeoutField, 1) : DEFAULTS.upstream.keepaliveTimeoutMs;
  const requestsField = keys.get('keepalive_requests');
  const keepaliveRequests = requestsField
    ? reader.parsed(requestsField, 'a positive integer', (text) => {
        const value = valueOf(parseInteger(text));
        return value === undefined || value < 1 ? undefined : value;
      })
    : DEFAULTS.upstream.keepaliveRequests;

  const serversField = reader.required(field, keys, 'servers');
  // `servers:` with every line commented out is null: the same empty block as in nginx.
  const serverItems = isNull(serversField.node) ? [] : reader.items(serversField);
  if (serverItems.length === 0) reader.fail(serversField, `no servers are inside upstream in ${serversField.path}`);
  const servers = serverItems.map((item) => {
    const server = readServer(reader, item);
    // nginx checks this flag when it meets the server line; YAML keys have no order, so check after.
    if (server.backup && WITHOUT_BACKUP.has(balance.method)) {
      const written = describe(balanceField?.node ?? null);
      reader.fail(item, `balancing method does not support parameter "backup" in ${item.path} (balance is ${written})`);
    }
    return server;
  });
  if (kind === 'stream') return { name, servers, balance };
  const healthCheckField = keys.get('health_check');
  const healthCheck = healthCheckField ? readHealthCheck(reader, healthCheckField) : undefined;
  const queueField = keys.get('queue');
  const queue = queueField ? readQueue(reader, queueField, servers) : undefined;
  return { name, servers, balance, keepalive, keepaliveTimeoutMs, keepaliveRequests, healthCheck, queue };
}

/** nginx Plus `health_check` parameters, as a mapping; `health_check:` alone is nginx's bare `health_check;`. */
function readHealthCheck(reader: Reader, field: Field): HealthCheckConfig {
  const keys = reader.mapping(field, HEALTH_CHECK_KEYS);
  const defaults = DEFAULTS.healthCheck;
  return {
    uri: optional(keys, 'uri', (f) => readUri(reader, f), defaults.uri),
    intervalMs: optional(keys, 'interval', (f) => reader.duration(f, 1), defaults.intervalMs),
    timeoutMs: optional(keys, 'timeout', (f) => reader.duration(f, 1), defaults.timeoutMs),
    fails: optional(keys, 'fails', (f) => readPositiveInteger(reader, f), defaults.fails),
    passes: optional(keys, 'passes', (f) => readPositiveInteger(reader, f), defaults.passes),
    status: optional(keys, 'status', (f) => readStatusMatch(reader, f), defaults.status),
    mandatory: optional(keys, 'mandatory', (f) => reader.flag(f), defaults.mandatory),
  };
}

/**
 * nginx Plus `queue N [timeout=T]`. A request waits only "if there are the servers in the
 * group that have reached the max_conns limit" (ngx_http_upstream_module, queue): without
 * max_conns on any server that can be used, the queue could never hold a request, so it
 * is refused rather than accepted and silently ignored.
 */
function readQueue(reader: Reader, field: Field, servers: readonly ServerConfig[]): QueueConfig {
  const keys = reader.mapping(field, QUEUE_KEYS);
  const size = readPositiveInteger(reader, reader.required(field, keys, 'size'));
  const timeoutMs = optional(keys, 'timeout', (f) => reader.duration(f, 1), DEFAULTS.queue.timeoutMs);
  if (!servers.some((server) => server.maxConns > 0 && !server.down)) {
    reader.fail(
      { node: field.keyNode ?? field.node, path: field.path },
      `${field.path} needs max_conns on the servers: a request waits only while the servers are at their max_conns, and no server has max_conns`,
    );
  }
  return { size, timeoutMs };
}

/** A key's value read by `read`, or `fallback` when the key is absent. */
function optional<T>(keys: Map<string, Field>, key: string, read: (field: Field) => T, fallback: T): T {
  const field = keys.get(key);
  return field ? read(field) : fallback;
}

function readPositiveInteger(reader: Reader, field: Field): number {
  return reader.parsed(field, 'a positive integer', (text) => {
    const value = valueOf(parseInteger(text));
    return value === undefined || value < 1 ? undefined : value;
  });
}

/** The request target of a check: it goes into the request line, so no spaces or control characters. */
function readUri(reader: Reader, field: Field): string {
  const expected = 'a path starting with "/", like /health';
  const text = reader.text(field, expected);
  if (/^\/[^\s\x00-\x1f\x7f]*$/.test(text)) return text;
  return reader.fail(field, `${field.path} must be ${expected}, got ${JSON.stringify(text)}`);
}

function readStatusMatch(reader: Reader, field: Field): StatusMatch {
  const expected = 'status codes or ranges like 200-399, "200 204" or "! 500-599"';
  const match = parseStatusMatch(reader.text(field, expected));
  if ('error' in match) reader.fail(field, `${match.error} in ${field.path} (expected ${expected})`);
  return match;
}

function readBalance(reader: Reader, field: Field, kind: 'http' | 'stream'): Balance {
  const text = reader.text(field, BALANCE_EXPECTED);
  const balance = parseBalance(text);
  if (balance === undefined) reader.fail(field, `${field.path} must be ${BALANCE_EXPECTED}, got ${JSON.stringify(text)}`);
  if ('error' in balance) reader.fail(field, `${balance.error} in ${field.path}`);
  if (kind === 'http') return balance;
  // nginx's stream upstream has hash, least_conn and random, but no ip_hash.
  if (balance.method === 'ip_hash') {
    reader.fail(field, `"ip_hash" is not available in a stream upstream, use "hash $remote_addr" in ${field.path}`);
  }
  if (balance.method === 'hash') {
    for (const part of balance.key) {
      if (typeof part !== 'string' && !STREAM_VARIABLES.has(part.variable)) {
        reader.fail(field, `unknown "${part.variable}" variable in ${field.path} (a stream session has ${[...STREAM_VARIABLES].map((v) => `$${v}`).join(', ')})`);
      }
    }
  }
  return balance;
}

/**
 * The balancing directive as nginx's handlers read it: `least_conn` and `ip_hash` take no
 * argument; `hash KEY [consistent]` (ngx_http_upstream_hash) compiles KEY as a complex
 * value before it looks at the second word; `random [two [least_conn]]`
 * (ngx_http_upstream_random). Words are case-sensitive, as ngx_strcmp compares them.
 * Undefined for a method nginx does not have.
 */
function parseBalance(text: string): Balance | { error: string } | undefined {
  const [method = '', ...args] = text.split(/\s+/).filter((word) => word !== '');
  const invalidArguments = { error: `invalid number of arguments in "${method}" directive` };
  switch (method) {
    case 'round_robin':
    case 'least_conn':
    case 'ip_hash':
      return args.length === 0 ? { method } : invalidArguments;
    case 'hash': {
      const [keyText, parameter] = args;
      if (keyText === undefined || args.length > 2) return invalidArguments;
      const key = compileTemplate(keyText);
      if ('error' in key) return key;
      if (parameter !== undefined && parameter !== 'consistent') return { error: `invalid parameter "${parameter}"` };
      return { method, key, consistent: parameter !== undefined };
    }
    case 'random': {
      const [two, comparison] = args;
      if (args.length > 2) return invalidArguments;
      if (two !== undefined && two !== 'two') return { error: `invalid parameter "${two}"` };
      // least_conn is the only way `two` compares, and its default.
      if (comparison !== undefined && comparison !== 'least_conn') return { error: `invalid parameter "${comparison}"` };
      return { method, two: two !== undefined };
    }
    default:
      return undefined;
  }
}

function readServer(reader: Reader, field: Field): ServerConfig {
  if (!isMap(field.node)) {
    const text = reader.text(field, 'a server line like "unix:/run/app.sock" or "127.0.0.1:8000 weight=2", or a mapping');
    const server = parseServerLine(text);
    if ('error' in server) reader.fail(field, `${server.error} in ${field.path}`);
    return server;
  }
  const keys = reader.mapping(field, SERVER_KEYS);
  const addressField = reader.required(field, keys, 'address');
  const written = reader.text(addressField, 'an address like "unix:/run/app.sock" or "127.0.0.1:8000"');
  const address = parseServerAddress(written);
  if ('error' in address) reader.fail(addressField, `${address.error} in ${addressField.path}`);
  const parameters: ServerParameters = { ...DEFAULTS.server };
  for (const [key, parameter] of SERVER_PARAMETERS) {
    const valueField = keys.get(key);
    if (valueField) parameters[parameter.field] = reader.parsed(valueField, parameter.expected, parameter.parse);
  }
  for (const flag of SERVER_FLAGS) {
    const valueField = keys.get(flag);
    if (valueField) parameters[flag as 'backup' | 'down'] = reader.boolean(valueField);
  }
  return { address, written, ...parameters };
}

/** YAML `http`: ngx_http_core_module's client-side limits. */
function readClientLimits(reader: Reader, field: Field | undefined): ClientLimits {
  const keys = field ? reader.mapping(field, CLIENT_KEYS) : new Map<string, Field>();
  for (const key of ['client_body_timeout', 'client_max_body_size']) {
    const misplaced = keys.get(key);
    if (misplaced) reader.fail(misplaced, `${key} is set under "proxy" (proxy.${key}), with the request body's other settings, not in "http"`);
  }
  const get = <T>(key: string, read: (field: Field) => T, fallback: T): T => {
    const valueField = keys.get(key);
    return valueField ? read(valueField) : fallback;
  };
  const client = DEFAULTS.client;
  return {
    headerTimeoutMs: get('client_header_timeout', (f) => reader.duration(f, 1), client.headerTimeoutMs),
    // nginx's `keepalive_timeout 0` turns keep-alive off.
    keepaliveTimeoutMs: get('keepalive_timeout', (f) => reader.duration(f, 0), client.keepaliveTimeoutMs),
    keepaliveRequests: get(
      'keepalive_requests',
      (f) => reader.parsed(f, 'a positive integer', (text) => positive(valueOf(parseInteger(text)))),
      client.keepaliveRequests,
    ),
    headerBuffers: get('large_client_header_buffers', (f) => readHeaderBuffers(reader, f), client.headerBuffers),
    maxConnections: get(
      'max_connections',
      (f) => reader.parsed(f, 'a positive integer', (text) => positive(valueOf(parseInteger(text)))),
      client.maxConnections,
    ),
  };
}

function positive(value: number | undefined): number | undefined {
  return value === undefined || value < 1 ? undefined : value;
}

/** large_client_header_buffers NUMBER SIZE, as nginx writes it ("4 8k"). */
function readHeaderBuffers(reader: Reader, field: Field): { number: number; sizeBytes: number } {
  const expected = 'nginx\'s "NUMBER SIZE", like "4 8k"';
  const text = reader.text(field, expected);
  const [count, size, ...rest] = text.trim().split(/\s+/);
  const number = positive(valueOf(parseInteger(count ?? '')));
  const sizeBytes = positive(valueOf(parseSize(size ?? '')));
  if (number === undefined || sizeBytes === undefined || rest.length > 0) {
    return reader.fail(field, `${field.path} must be ${expected}, got ${JSON.stringify(text)}`);
  }
  return { number, sizeBytes };
}

function readProxy(reader: Reader, field: Field | undefined): ProxySettings {
  const keys = field ? reader.mapping(field, PROXY_KEYS) : new Map<string, Field>();
  const get = <T>(key: string, read: (field: Field) => T, fallback: T): T => {
    const valueField = keys.get(key);
    return valueField ? read(valueField) : fallback;
  };
  const proxy = DEFAULTS.proxy;
  return {
    nextUpstream: get('next_upstream', (f) => readNextUpstream(reader, f), new Set(proxy.nextUpstream)),
    nextUpstreamTries: get('next_upstream_tries', (f) => reader.integer(f), proxy.nextUpstreamTries),
    nextUpstreamTimeoutMs: get('next_upstream_timeout', (f) => reader.duration(f, 0), proxy.nextUpstreamTimeoutMs),
    // nginx arms a 0 ms timer (an immediate timeout) where Node and undici read 0 as "never": refuse both readings.
    connectTimeoutMs: get('connect_timeout', (f) => reader.duration(f, 1), proxy.connectTimeoutMs),
    sendTimeoutMs: get('send_timeout', (f) => reader.duration(f, 1), proxy.sendTimeoutMs),
    readTimeoutMs: get('read_timeout', (f) => reader.duration(f, 1), proxy.readTimeoutMs),
    clientMaxBodySizeBytes: get(
      'client_max_body_size',
      (f) => reader.parsed(f, 'a size like 1m, 512k or 4g (0 = unlimited)', (text) => valueOf(parseSize(text))),
      proxy.clientMaxBodySizeBytes,
    ),
    bufferSizeBytes: get('buffer_size', (f) => readPositiveSize(reader, f), proxy.bufferSizeBytes),
    setHeader: get('set_header', (f) => readSetHeader(reader, f), proxy.setHeader),
    clientBodyTimeoutMs: get('client_body_timeout', (f) => reader.duration(f, 1), proxy.clientBodyTimeoutMs),
    requestBuffering: get('request_buffering', (f) => reader.flag(f), proxy.requestBuffering),
    clientBodyBufferSizeBytes: get('client_body_buffer_size', (f) => readPositiveSize(reader, f), proxy.clientBodyBufferSizeBytes),
    buffering: get('buffering', (f) => reader.flag(f), proxy.buffering),
    buffersBytes: get('buffers', (f) => readBuffers(reader, f), proxy.buffersBytes),
    maxTempFileSizeBytes: get(
      'max_temp_file_size',
      (f) => reader.parsed(f, 'a size like 1024m or 1g (0 = no temp file)', (text) => valueOf(parseSize(text))),
      proxy.maxTempFileSizeBytes,
    ),
    tempPath: get('temp_path', (f) => readAbsolutePath(reader, f), proxy.tempPath),
    maxUpgraded: get(
      'max_upgraded',
      (f) => reader.parsed(f, 'a non-negative integer (0 = unlimited)', (text) => valueOf(parseInteger(text))),
      proxy.maxUpgraded,
    ),
  };
}

function readPositiveSize(reader: Reader, field: Field): number {
  return reader.parsed(field, 'a size like 8k or 16k (more than 0)', (text) => {
    const size = valueOf(parseSize(text));
    return size === undefined || size < 1 ? undefined : size;
  });
}

/** proxy_buffers: nginx's `NUMBER SIZE` ("8 8k"), or the total as one size ("64k"). */
function readBuffers(reader: Reader, field: Field): number {
  return reader.parsed(field, 'a size like 64k, or nginx\'s "8 8k"', (text) => {
    const parts = text.trim().split(/\s+/);
    const sizes = parts.map((part) => valueOf(parseSize(part)));
    if (sizes.some((size) => size === undefined || size < 1) || sizes.length > 2) return undefined;
    return sizes.reduce((product, size) => product! * size!, 1);
  });
}

/** A directory for temp files; relative paths would depend on where the proxy was started. */
function readAbsolutePath(reader: Reader, field: Field): string {
  const text = reader.text(field, 'an absolute directory path');
  if (isAbsolute(text)) return text;
  return reader.fail(field, `${field.path} must be an absolute directory path, got ${JSON.stringify(text)}`);
}

/** ngx_conf_set_bitmask_slot with ngx_http_proxy_next_upstream_masks, then the merge rule "off wins". */
function readNextUpstream(reader: Reader, field: Field): ReadonlySet<NextUpstreamToken> {
  const expected = 'conditions like "error timeout http_502", or "off"';
  const tokens: Array<{ token: string; field: Field }> = isSeq(field.node)
    ? reader.items(field).map((item) => ({ token: reader.text(item, expected), field: item }))
    : reader
        .text(field, expected)
        .split(/\s+/)
        .filter((token) => token !== '')
        .map((token) => ({ token, field }));
  if (tokens.length === 0) reader.fail(field, `${field.path} must list ${expected}, got ${describe(field.node)}`);
  const result = new Set<NextUpstreamToken>();
  let off = false;
  for (const { token, field: tokenField } of tokens) {
    const lower = token.toLowerCase();
    if (lower === 'off') off = true;
    else if (NEXT_UPSTREAM_TOKENS.has(lower)) result.add(lower as NextUpstreamToken);
    else reader.fail(tokenField, `invalid value "${token}" in ${field.path}`);
  }
  return off ? new Set() : result;
}

function readSetHeader(reader: Reader, field: Field): readonly HeaderRule[] {
  if (isNull(field.node)) return [];
  const rules: HeaderRule[] = [];
  for (const [name, valueField, keyField] of reader.pairs(field)) {
    if (!HEADER_NAME.test(name)) {
      reader.fail(keyField, `invalid header name ${JSON.stringify(name)} in ${field.path} (RFC 9110 token characters only)`);
    }
    const lower = name.toLowerCase();
    // YAML rejects exact duplicate keys; header names are case-insensitive, so catch the rest.
    if (rules.some((rule) => rule.name === lower)) reader.fail(keyField, `duplicate header "${name}" in ${field.path}`);
    const value = reader.text(valueField, 'a string ("" removes the header)');
    if (FORBIDDEN_IN_HEADER_VALUE.test(value)) {
      reader.fail(valueField, `${valueField.path} must not contain CR, LF or NUL, got ${JSON.stringify(value)}`);
    }
    const template = compileTemplate(value);
    if ('error' in template) reader.fail(valueField, `${template.error} in ${valueField.path}`);
    rules.push({ name: lower, template });
  }
  return rules;
}

function readLog(reader: Reader, field: Field | undefined): LogConfig {
  const keys = field ? reader.mapping(field, LOG_KEYS) : new Map<string, Field>();
  const levelField = keys.get('level');
  const accessField = keys.get('access');
  return {
    level: levelField ? reader.oneOf(levelField, LOG_LEVELS) : DEFAULTS.log.level,
    access: accessField ? readAccess(reader, accessField) : DEFAULTS.log.access,
  };
}

/** nginx `pid FILE`, or `off`; a relative path would depend on where the proxy (and `-s reload`) was started. */
function readPid(reader: Reader, field: Field): PidFile {
  const text = reader.text(field, 'an absolute file path or off');
  if (text === 'off') return { kind: 'off' };
  if (isAbsolute(text)) return { kind: 'file', path: text };
  return reader.fail(field, `${field.path} must be an absolute file path or off, got ${JSON.stringify(text)}`);
}

function readAccess(reader: Reader, field: Field): AccessLogTarget {
  const expected = 'stdout, stderr, off or a file path';
  const text = reader.text(field, expected);
  if (text === 'stdout' || text === 'stderr' || text === 'off') return { kind: text };
  if (text === '') reader.fail(field, `${field.path} must be ${expected}, got ""`);
  return { kind: 'file', path: text };
}

/** Turns nodes into values, or into a ConfigError pointing at the node. */
class Reader {
  constructor(
    private readonly file: string,
    private readonly lineCounter: LineCounter,
    private readonly doc: Document,
  ) {}

  fail(field: Field, text: string): never {
    const node = field.node ?? field.keyNode;
    const offset = node?.range?.[0];
    const position = offset === undefined ? undefined : this.lineCounter.linePos(offset);
    throw new ConfigError(text, { file: this.file, line: position?.line, column: position?.col, path: field.path });
  }

  /** Follows an alias (`*name`) to the node it names. */
  resolve(node: unknown): Node | null {
    if (isAlias(node)) return node.resolve(this.doc) ?? null;
    return isMap(node) || isSeq(node) || isScalar(node) ? node : null;
  }

  /** A mapping's entries by key, refusing keys outside `known`. A key without value (null) reads as an empty mapping. */
  mapping(field: Field, known: readonly string[]): Map<string, Field> {
    const entries = new Map<string, Field>();
    if (isNull(field.node)) return entries;
    for (const [key, valueField, keyField] of this.pairs(field)) {
      if (!known.includes(key)) {
        const where = field.path === '' ? '' : ` in ${field.path}`;
        const suggestion = closest(key, known);
        this.fail(keyField, `unknown key "${key}"${where}${suggestion ? ` (did you mean "${suggestion}"?)` : ''}`);
      }
      entries.set(key, valueField);
    }
    return entries;
  }

  /** Each key of a mapping as text, with its value and the key itself as fields. */
  pairs(field: Field): Array<[string, Field, Field]> {
    if (!isMap(field.node)) this.fail(field, `${field.path} must be a mapping, got ${describe(field.node)}`);
    return field.node.items.map((pair) => {
      const keyNode = this.resolve(pair.key);
      const key = isScalar(keyNode) ? scalarText(keyNode) : describe(keyNode);
      const path = field.path === '' ? key : `${field.path}.${key}`;
      const keyField: Field = { node: keyNode, path };
      return [key, { node: this.resolve(pair.value), path, keyNode: keyNode ?? undefined }, keyField] as [string, Field, Field];
    });
  }

  items(field: Field): Field[] {
    if (!isSeq(field.node)) this.fail(field, `${field.path} must be a list, got ${describe(field.node)}`);
    return field.node.items.map((item, index) => ({ node: this.resolve(item), path: `${field.path}[${index}]` }));
  }

  required(parent: Field, entries: Map<string, Field>, key: string): Field {
    const field = entries.get(key);
    if (field) return field;
    const where = parent.path === '' ? '' : ` in ${parent.path}`;
    return this.fail(parent, `missing required key "${key}"${where}`);
  }

  /** A string, or a number's text as written (nginx sees "1.0", not 1). */
  text(field: Field, expected: string): string {
    const { node } = field;
    if (isScalar(node) && (typeof node.value === 'string' || typeof node.value === 'number')) return scalarText(node);
    return this.fail(field, `${field.path} must be ${expected}, got ${describe(node)}`);
  }

  /** A value through one of the units parsers; `parse` returns undefined for anything invalid. */
  parsed(field: Field, expected: string, parse: (text: string) => number | undefined): number {
    const text = this.text(field, expected);
    const value = parse(text);
    if (value !== undefined) return value;
    return this.fail(field, `${field.path} must be ${expected}, got ${JSON.stringify(text)}`);
  }

  integer(field: Field): number {
    return this.parsed(field, 'a non-negative integer', (text) => valueOf(parseInteger(text)));
  }

  /** A proxy_* duration (ngx_conf_set_msec_slot) in ms, at least `minimum` and short enough for a Node timer. */
  duration(field: Field, minimum: number): number {
    const range = minimum === 0 ? '0 = unlimited' : 'more than 0';
    const expected = `a duration like 60s, 1m30s or 500ms (${range}, at most 24d20h)`;
    return this.parsed(field, expected, (text) => {
      const ms = valueOf(parseDurationMs(text));
      return ms === undefined || ms < minimum || ms > MAX_TIMER_MS ? undefined : ms;
    });
  }

  /** An nginx flag (ngx_conf_set_flag_slot): on or off; YAML's true and false too. */
  flag(field: Field): boolean {
    const { node } = field;
    if (isScalar(node) && typeof node.value === 'boolean') return node.value;
    if (isScalar(node) && (node.value === 'on' || node.value === 'off')) return node.value === 'on';
    return this.fail(field, `${field.path} must be on or off, got ${describe(node)}`);
  }

  boolean(field: Field): boolean {
    const { node } = field;
    if (isScalar(node) && typeof node.value === 'boolean') return node.value;
    return this.fail(field, `${field.path} must be true or false, got ${describe(node)}`);
  }

  oneOf<T extends string>(field: Field, values: readonly T[]): T {
    const expected = `one of ${values.join(', ')}`;
    const text = this.text(field, expected);
    if ((values as readonly string[]).includes(text)) return text as T;
    return this.fail(field, `${field.path} must be ${expected}, got ${JSON.stringify(text)}`);
  }
}

/** An empty value: `key:` with nothing after it, `~` or `null`. */
function isNull(node: Node | null): boolean {
  return node === null || (isScalar(node) && node.value === null);
}

function scalarText(node: { value: unknown; source?: string | undefined }): string {
  if (typeof node.value === 'string') return node.value;
  return node.source ?? String(node.value);
}

/** How a wrong value is shown in "must be X, got Y". */
function describe(node: Node | null): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isNull(node)) return 'nothing';
  return isScalar(node) ? JSON.stringify(scalarText(node)) : 'an unsupported value';
}

/**
 * The one known key closest to a misspelt one, within two edits and no more than half the
 * key's length (so "foo" does not suggest "log").
 */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  let tie = false;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance > 2 || distance * 2 > candidate.length) continue;
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
      tie = false;
    } else if (distance === bestDistance) {
      tie = true;
    }
  }
  return tie ? undefined : best;
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}
