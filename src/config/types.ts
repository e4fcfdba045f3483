/**
 * The resolved configuration: what the YAML file means once it has been parsed,
 * validated and defaulted (see ./load.ts). Every object here is frozen; nothing
 * downstream reads the YAML again. Names are camelCase with the unit in the name;
 * the YAML keeps nginx's snake_case directive names.
 */
import type { StatusMatch } from './status-match.js';

/** Where a listener or an upstream server lives: a TCP host:port or a Unix domain socket path. */
export type SocketAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string };

/**
 * A listen address. `host` is undefined for a bare port ("8080"), which, like nginx's
 * `listen 8080`, binds every address.
 */
export type ListenAddress =
  | { readonly kind: 'tcp'; readonly host: string | undefined; readonly port: number }
  | {
      readonly kind: 'unix';
      readonly path: string;
      /** `mode=0660`: the socket file's permission bits; by default 0777 less the umask. */
      readonly mode?: number;
      /** `group=www-data`: the socket file's group, so that its members may connect. */
      readonly group?: { readonly name: string; readonly gid: number };
    };

/** One nginx `server` line of the upstream block (ngx_http_upstream_server). */
export interface ServerConfig {
  readonly address: SocketAddress;
  /**
   * The address exactly as written in the configuration ("backend", "unix:/tmp/app.sock",
   * "[::1]:8000"), nginx's ngx_http_upstream_server_t.name (peer->server). `hash KEY
   * consistent` hashes this text, not the resolved address: "backend" and "backend:80"
   * get different ring points in nginx.
   */
  readonly written: string;
  /** `weight=N`, integer >= 1; default 1. */
  readonly weight: number;
  /** `max_fails=N`, integer >= 0; default 1; 0 disables failure accounting. */
  readonly maxFails: number;
  /** `fail_timeout=T`, whole seconds as in nginx (parsed in seconds mode); default 10. */
  readonly failTimeoutSec: number;
  /** `max_conns=N`, active connections at most; 0 (default) = unlimited. */
  readonly maxConns: number;
  /** `backup`: used only when no primary server is usable. */
  readonly backup: boolean;
  /** `down`: never used. */
  readonly down: boolean;
}

/**
 * The upstream block's balancing directive, resolved. Each method carries only its own
 * parameters, so a combination nginx refuses (`consistent` without `hash`) cannot be written.
 */
export type Balance =
  /** `round_robin`, or no `balance`: nginx's default, smooth weighted round robin. */
  | { readonly method: 'round_robin' }
  /** `least_conn`. */
  | { readonly method: 'least_conn' }
  /** `ip_hash`. */
  | { readonly method: 'ip_hash' }
  /** `hash KEY [consistent]`: `key` is evaluated per request; `consistent` selects ketama. */
  | { readonly method: 'hash'; readonly key: HeaderTemplate; readonly consistent: boolean }
  /** `random [two [least_conn]]`: `two` picks two servers and keeps the one with fewer connections. */
  | { readonly method: 'random'; readonly two: boolean };

export type BalanceMethod = Balance['method'];

/** What the HTTP and the stream upstream blocks have in common: the servers and how one is chosen. */
export interface UpstreamBlock {
  /** nginx's upstream name; `$proxy_host` and the "no live upstreams" upstream_addr. Default "backend". */
  readonly name: string;
  readonly servers: readonly ServerConfig[];
  /** YAML `balance`, the nginx directive text ("least_conn", "hash $request_uri consistent"); default round robin. */
  readonly balance: Balance;
}

/** The HTTP proxy's upstream block: the servers, and the keep-alive connections kept to them. */
export interface UpstreamConfig extends UpstreamBlock {
  /** nginx `keepalive N`: idle connections kept per server; 0 = a new connection per request. Default 32. */
  readonly keepalive: number;
  /** nginx `keepalive_timeout`: how long an idle upstream connection is kept, in ms. Default 1 500 (see defaults.ts). */
  readonly keepaliveTimeoutMs: number;
  /** nginx `keepalive_requests`: requests over one upstream connection before it is closed. Default 1000. */
  readonly keepaliveRequests: number;
  /** nginx Plus `health_check`: active health checks of every server; off (undefined) unless configured. */
  readonly healthCheck?: HealthCheckConfig | undefined;
  /** nginx Plus `queue`: requests wait for a server at max_conns instead of failing; off (undefined) unless configured. */
  readonly queue?: QueueConfig | undefined;
}

/**
 * nginx Plus `health_check` (ngx_http_upstream_hc_module): each server is sent `GET uri`
 * every `intervalMs`; a connect error, a timeout or a status outside `status` fails the check.
 */
export interface HealthCheckConfig {
  /** `uri=`: the path requested; default "/". */
  readonly uri: string;
  /** `interval=`: from the end of one check of a server to the start of the next, in ms; default 5 000. */
  readonly intervalMs: number;
  /** The whole check (connect, headers, body) in ms, then it fails as a timeout; default 5 000. */
  readonly timeoutMs: number;
  /** `fails=`: consecutive failed checks that take a server out of rotation; default 1. */
  readonly fails: number;
  /** `passes=`: consecutive passed checks that bring it back; default 1. */
  readonly passes: number;
  /** `match { status ... }`: the statuses that pass; default 200-399 (nginx Plus: "2xx or 3xx"). */
  readonly status: StatusMatch;
  /** `mandatory`: a server starts out of rotation ("checking") until its first check; default off (starts healthy). */
  readonly mandatory: boolean;
}

/** nginx Plus `queue N timeout=T`: a request waits while every server it may use is at max_conns. */
export interface QueueConfig {
  /** `N`: requests waiting at most; past it, 503. */
  readonly size: number;
  /** `timeout=`: how long a request waits for a server, in ms, then 503; default 60 000. */
  readonly timeoutMs: number;
}

/** The proxy_next_upstream tokens (ngx_http_proxy_next_upstream_masks). `off` resolves to an empty set. */
export type NextUpstreamToken =
  | 'error'
  | 'timeout'
  | 'invalid_header'
  | 'http_500'
  | 'http_502'
  | 'http_503'
  | 'http_504'
  | 'http_403'
  | 'http_404'
  | 'http_429'
  | 'non_idempotent';

/**
 * A proxy_set_header value, compiled: literal text and `$variable` references in order.
 * `[]` (from "") means "remove the header".
 */
export type HeaderTemplate = ReadonlyArray<string | { readonly variable: string }>;

export interface HeaderRule {
  /** Lower-cased header name. */
  readonly name: string;
  readonly template: HeaderTemplate;
}

export interface ProxySettings {
  /** proxy_next_upstream; default {error, timeout}. */
  readonly nextUpstream: ReadonlySet<NextUpstreamToken>;
  /** proxy_next_upstream_tries; 0 = unlimited (default). */
  readonly nextUpstreamTries: number;
  /** proxy_next_upstream_timeout in ms; 0 = unlimited (default). */
  readonly nextUpstreamTimeoutMs: number;
  /** proxy_connect_timeout in ms; default 60 000. */
  readonly connectTimeoutMs: number;
  /** proxy_send_timeout in ms, between two successive writes to the upstream; default 60 000. */
  readonly sendTimeoutMs: number;
  /** proxy_read_timeout in ms, between two successive reads from the upstream; default 60 000. */
  readonly readTimeoutMs: number;
  /** client_max_body_size in bytes; 0 = unlimited; default 1 MiB. */
  readonly clientMaxBodySizeBytes: number;
  /** proxy_buffer_size in bytes: the largest upstream response header block; default 8k. */
  readonly bufferSizeBytes: number;
  /** client_body_timeout in ms, between two successive reads of the request body; default 60 000 (then 408). */
  readonly clientBodyTimeoutMs: number;
  /** proxy_request_buffering: read the whole request body before contacting an upstream; default on. */
  readonly requestBuffering: boolean;
  /** client_body_buffer_size in bytes: a buffered request body larger than this goes to a temp file; default 16k. */
  readonly clientBodyBufferSizeBytes: number;
  /** proxy_buffering: read the response as fast as the upstream sends it, holding what the client has not taken; default on. */
  readonly buffering: boolean;
  /** proxy_buffers, in total bytes: the response held in memory before the temp file; default 64k. */
  readonly buffersBytes: number;
  /** proxy_max_temp_file_size in bytes: the response held on disk at most; 0 = none; default 1024m. */
  readonly maxTempFileSizeBytes: number;
  /** client_body_temp_path and proxy_temp_path: where the temp files go; default the OS temp directory. */
  readonly tempPath: string;
  /** proxy_set_header rules, applied after the defaults, in file order. */
  readonly setHeader: readonly HeaderRule[];
  /**
   * sockproxy's own: upgraded connections (WebSocket tunnels, and upgrade requests waiting
   * for the app's answer) at most; past it an upgrade request gets 503. 0 = unlimited;
   * default 1024.
   */
  readonly maxUpgraded: number;
}

export type AccessLogTarget =
  | { readonly kind: 'stdout' }
  | { readonly kind: 'stderr' }
  | { readonly kind: 'off' }
  | { readonly kind: 'file'; readonly path: string };

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export interface LogConfig {
  /** Error-log level; default "info". */
  readonly level: LogLevel;
  /** Access log destination; default stdout. */
  readonly access: AccessLogTarget;
}

/**
 * YAML `http`: what one client connection may do before the proxy answers for itself,
 * with nginx's directive names (ngx_http_core_module) and defaults.
 */
export interface ClientLimits {
  /** client_header_timeout in ms: the whole request head must arrive within it, then 408; default 60 000. */
  readonly headerTimeoutMs: number;
  /** keepalive_timeout in ms: an idle client connection is closed after it; 0 = no keep-alive; default 75 000. */
  readonly keepaliveTimeoutMs: number;
  /** keepalive_requests: requests over one client connection, then it is closed; default 1000. */
  readonly keepaliveRequests: number;
  /**
   * large_client_header_buffers NUMBER SIZE: the request line must fit in SIZE (else 414),
   * each header line too (else 400), and the whole head in NUMBER × SIZE (else 400); default 4 8k.
   */
  readonly headerBuffers: { readonly number: number; readonly sizeBytes: number };
  /** nginx worker_connections: client connections per listener at most, per worker; past it new ones are closed at once; default 1024. */
  readonly maxConnections: number;
}

/** The HTTP reverse proxy: where it listens and the servers it forwards requests to. */
export interface HttpConfig {
  /** YAML `listen`: one or more addresses. */
  readonly listen: readonly ListenAddress[];
  readonly upstream: UpstreamConfig;
}

/**
 * One server of the YAML `stream` list: nginx's `stream { server { listen …; proxy_pass
 * upstream; } }`, an L4 proxy that relays bytes unchanged between a client and one
 * upstream server (ngx_stream_proxy_module).
 */
export interface StreamServerConfig {
  /** `listen`: one or more addresses, TCP or unix:, as for HTTP. */
  readonly listen: readonly ListenAddress[];
  /** The upstream block: `servers` and `balance` as for HTTP (no keep-alive: a session is its own connection). */
  readonly upstream: UpstreamBlock;
  /** proxy_connect_timeout in ms; default 60 000. */
  readonly connectTimeoutMs: number;
  /** proxy_timeout in ms: the longest idle time between two reads or writes, on either connection; default 600 000. */
  readonly timeoutMs: number;
  /** proxy_next_upstream (a flag in the stream module): a failed connect moves on to the next server; default on. */
  readonly nextUpstream: boolean;
  /** proxy_next_upstream_tries; 0 = unlimited (default). */
  readonly nextUpstreamTries: number;
  /** proxy_next_upstream_timeout in ms; 0 = unlimited (default). */
  readonly nextUpstreamTimeoutMs: number;
}

/**
 * nginx `pid`: the file the process id is written to, which `--reload`, `-s stop` and the
 * like read. `default`: a file in the OS temp directory named after the configuration
 * file's real path (src/pid-file.ts), so that `-s reload -c FILE` finds it with no setup.
 */
export type PidFile = { readonly kind: 'default' } | { readonly kind: 'off' } | { readonly kind: 'file'; readonly path: string };

/** YAML `admin`: the status and metrics endpoint (GET /status, GET /metrics); off unless present. */
export interface AdminConfig {
  /** `listen`: TCP or unix:; a bare port means 127.0.0.1, never every address. Default 127.0.0.1:9180. */
  readonly listen: ListenAddress;
}

export interface Config {
  /** The file the configuration was read from (for messages). */
  readonly file: string;
  /**
   * nginx `worker_shutdown_timeout`: how long a graceful stop waits for requests, tunnels
   * and stream sessions to end before it closes them, in ms; default 10 000.
   */
  readonly shutdownTimeoutMs: number;
  /** nginx `pid`; default a file named after the configuration file (see PidFile). */
  readonly pid: PidFile;
  /**
   * nginx `worker_processes`: processes serving the listeners; `auto` is resolved to the
   * CPUs this process may use (os.availableParallelism()). Default 1: no primary process.
   */
  readonly workers: number;
  /** The admin endpoint; undefined (off) unless `admin` is in the file. */
  readonly admin: AdminConfig | undefined;
  /** The HTTP proxy (YAML `listen` and `upstream`); undefined for a configuration with only `stream`. */
  readonly http: HttpConfig | undefined;
  /** YAML `http`: the client connection limits, defaulted even when there is no HTTP proxy. */
  readonly client: ClientLimits;
  /** The HTTP proxy's proxy_* settings (YAML `proxy`), defaulted even when there is no HTTP proxy. */
  readonly proxy: ProxySettings;
  /** YAML `stream`: the L4 proxies, in file order; empty when there are none. */
  readonly stream: readonly StreamServerConfig[];
  readonly log: LogConfig;
}
