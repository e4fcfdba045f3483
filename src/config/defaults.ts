import { tmpdir } from 'node:os';
import type { StatusMatch } from './status-match.js';
import type { AccessLogTarget, Balance, ListenAddress, LogLevel, NextUpstreamToken, PidFile } from './types.js';

/**
 * Every default of the configuration, in one place, in resolved units. Each entry names
 * the nginx directive it stands for and nginx's own default (nginx ≥ 1.29.7, see
 * nginx-semantics.md §0). `listen` and `upstream.servers` have none: they are required.
 */
export const DEFAULTS = deepFreeze({
  server: {
    /** `server ... weight=`: 1. */
    weight: 1,
    /** `server ... max_fails=`: 1. */
    maxFails: 1,
    /** `server ... fail_timeout=`: 10s. */
    failTimeoutSec: 10,
    /** `server ... max_conns=`: 0, unlimited. */
    maxConns: 0,
    /** `server ... backup`: off. */
    backup: false,
    /** `server ... down`: off. */
    down: false,
  },
  /** `server host` without a port: ngx_http_upstream_server sets u.default_port = 80. */
  serverPort: 80,
  upstream: {
    /** `upstream NAME {}`: sockproxy's own default, since the YAML block may omit the name. */
    name: 'backend',
    /** No balancing directive in the block: weighted round robin. */
    balance: { method: 'round_robin' } as Balance,
    /** `keepalive 32` (implicit for an explicit upstream block since nginx 1.29.7). */
    keepalive: 32,
    /**
     * `keepalive_timeout`: nginx's is 60s. sockproxy's is below Gunicorn's 2 s keep-alive
     * (sent without a Keep-Alive hint), so that we close an idle connection before the app
     * does, rather than write a request into a connection it is closing (nginx users' POST 502).
     */
    keepaliveTimeoutMs: 1_500,
    /** `keepalive_requests 1000`. */
    keepaliveRequests: 1000,
  },
  /** nginx Plus `health_check` with no parameters, for the keys `upstream.health_check` leaves out. */
  healthCheck: {
    /** `uri=/`. */
    uri: '/',
    /** `interval=5s`. */
    intervalMs: 5_000,
    /**
     * nginx Plus's HTTP checks use the location's proxy timeouts (60 s each, far longer than the
     * interval); this is ngx_stream_upstream_hc_module's `health_check_timeout 5s`.
     */
    timeoutMs: 5_000,
    /** `fails=1`. */
    fails: 1,
    /** `passes=1`. */
    passes: 1,
    /** No `match`: "the response should have status code 2xx or 3xx". */
    status: { negated: false, ranges: [[200, 399]], text: '200-399' } as StatusMatch,
    /** No `mandatory`: "the server will be initially considered healthy". */
    mandatory: false,
  },
  /** nginx Plus `queue N` without `timeout=`. */
  queue: {
    /** `timeout=60s`. */
    timeoutMs: 60_000,
  },
  proxy: {
    /** `proxy_next_upstream error timeout`. */
    nextUpstream: ['error', 'timeout'] as readonly NextUpstreamToken[],
    /** `proxy_next_upstream_tries 0`: unlimited. */
    nextUpstreamTries: 0,
    /** `proxy_next_upstream_timeout 0`: unlimited. */
    nextUpstreamTimeoutMs: 0,
    /** `proxy_connect_timeout 60s`. */
    connectTimeoutMs: 60_000,
    /** `proxy_send_timeout 60s`. */
    sendTimeoutMs: 60_000,
    /** `proxy_read_timeout 60s`. */
    readTimeoutMs: 60_000,
    /** `client_max_body_size 1m`. */
    clientMaxBodySizeBytes: 1024 * 1024,
    /** `proxy_buffer_size`: one memory page, 4k or 8k; 8k on x86-64 Linux. */
    bufferSizeBytes: 8 * 1024,
    /** `client_body_timeout 60s`. */
    clientBodyTimeoutMs: 60_000,
    /** `proxy_request_buffering on`. */
    requestBuffering: true,
    /** `client_body_buffer_size`: two memory pages, 16k on x86-64. */
    clientBodyBufferSizeBytes: 16 * 1024,
    /** `proxy_buffering on`. */
    buffering: true,
    /** `proxy_buffers 8 8k`: 64k in all. */
    buffersBytes: 64 * 1024,
    /** `proxy_max_temp_file_size 1024m`. */
    maxTempFileSizeBytes: 1024 * 1024 * 1024,
    /** `client_body_temp_path`/`proxy_temp_path`: nginx uses its prefix; sockproxy the OS temp dir ($TMPDIR). */
    tempPath: tmpdir(),
    /** `proxy_set_header`: none beyond nginx's built-in Host and Connection handling. */
    setHeader: [] as const,
    /**
     * No nginx directive (nginx's bound is worker_connections, 512 by default, for every
     * connection together). Each tunnel holds two descriptors, the client's and the app's:
     * 1024 tunnels stay inside the common 4096 hard open-files limit with room for the
     * rest, and a flood of upgrades gets 503 instead of EMFILE for everyone.
     */
    maxUpgraded: 1024,
  },
  /** ngx_http_core_module's client-side defaults (YAML `http`). */
  client: {
    /** `client_header_timeout 60s`. */
    headerTimeoutMs: 60_000,
    /** `keepalive_timeout 75s`. */
    keepaliveTimeoutMs: 75_000,
    /** `keepalive_requests 1000`. */
    keepaliveRequests: 1000,
    /** `large_client_header_buffers 4 8k`. */
    headerBuffers: { number: 4, sizeBytes: 8 * 1024 },
    /** `worker_connections`: nginx's built-in default is 512; 1024 is what its stock nginx.conf sets, and what the issue asks. */
    maxConnections: 1024,
  },
  /** ngx_stream_proxy_module's defaults (ngx_stream_proxy_merge_srv_conf). */
  stream: {
    /** `proxy_connect_timeout 60s`. */
    connectTimeoutMs: 60_000,
    /** `proxy_timeout 10m`. */
    timeoutMs: 10 * 60_000,
    /** `proxy_next_upstream on`. */
    nextUpstream: true,
    /** `proxy_next_upstream_tries 0`: unlimited. */
    nextUpstreamTries: 0,
    /** `proxy_next_upstream_timeout 0`: unlimited. */
    nextUpstreamTimeoutMs: 0,
  },
  /**
   * `worker_shutdown_timeout`: nginx has none by default, so a graceful stop waits for the
   * last WebSocket to close, which may be never; 10s is what `docker stop` waits before
   * SIGKILL, and what the issue asks.
   */
  shutdownTimeoutMs: 10_000,
  /** `pid`: nginx's is logs/nginx.pid under its prefix; sockproxy's is named after the configuration file. */
  pid: { kind: 'default' } as PidFile,
  /** `worker_processes 1`: one process, as nginx's default. */
  workers: 1,
  admin: {
    /**
     * No nginx directive (nginx's stub_status lives in a location the user writes). Loopback
     * only: status and metrics name internal addresses, so they are never public by default.
     */
    listen: { kind: 'tcp', host: '127.0.0.1', port: 9180 } as ListenAddress,
  },
  log: {
    /** `error_log ... notice`'s nearest pino level. */
    level: 'info' as LogLevel,
    /** `access_log`: nginx writes logs/access.log; sockproxy writes to stdout, as containers expect. */
    access: { kind: 'stdout' } as AccessLogTarget,
  },
});

/**
 * Freezes an object graph: these defaults and the resolved Config (load.ts). A frozen Set
 * still accepts add(), so Config types nextUpstream as ReadonlySet.
 */
export function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (typeof child === 'object' && child !== null) deepFreeze(child);
  }
  return Object.freeze(value);
}
