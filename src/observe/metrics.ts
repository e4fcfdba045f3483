import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { FailureKind } from '../forward/classify.js';
import type { Peer, ServerState } from '../upstream/peer.js';

/**
 * An upstream failure as the metrics and /status count it: the three nginx failure types
 * (NGX_HTTP_UPSTREAM_FT_ERROR, _TIMEOUT, _INVALID_HEADER), a status listed in
 * next_upstream that counted against the server (http_500 … http_504 as http_5xx, and
 * http_429), and a request for which no server was usable ("no live upstreams").
 */
export type FailureMetricKind = FailureKind | 'http_5xx' | 'http_429' | 'no_live';

export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** The last failure of one server, for /status. */
export interface LastError {
  /** ISO 8601. */
  readonly time: string;
  readonly kind: FailureMetricKind;
  /** The error-log message without the request details ("connect() to … failed (111: Connection refused)"). */
  readonly message: string;
}

/** What one process has counted for one upstream server (one server line), for /status. */
export interface ServerCounts {
  /**
   * Requests sent to the server: every attempt, retries included (nginx Plus's `requests`);
   * for a stream server, every connect attempt (nginx Plus's stream `connections`).
   */
  requests: number;
  failures: number;
  lastError: LastError | undefined;
  /** Stream only: bytes sent to the server and received from it, counted as each session ends (nginx Plus's `sent`, `received`). */
  sent: number;
  received: number;
}

/** Everything one process counted since it started, for /status's totals. */
export interface ProcessTotals {
  /** Client requests answered, by the status class the client got (499 is a 4xx). */
  readonly responses: Record<StatusClass, number>;
  /** Stream sessions ended, by the class of their $status (200 connected, 502 no server reached). */
  readonly sessions: Record<StatusClass, number>;
  readonly failures: Record<FailureMetricKind, number>;
  readonly reloads: Record<'ok' | 'failed', number>;
}

/**
 * What the per-request loop reports (ForwardContext.observer). Only there when the admin
 * endpoint is on: without it the proxy counts nothing and the hot path does not pay for it.
 */
export interface RequestObserver {
  /** A request goes to `peer`. */
  attemptStarted(peer: Peer): void;
  /** A whole response was read from `peer` in `durationMs` ($upstream_response_time). */
  responseRead(peer: Peer, durationMs: number): void;
  /** `upstream` (a server, or the group's name for no_live) failed a request. */
  upstreamFailed(upstream: Peer | string, kind: FailureMetricKind, message: string): void;
  /** The client got `status`; `upstream` is the last server tried, or "-" when none was. */
  requestFinished(status: number, upstream: string): void;
}

/**
 * What a stream session reports (StreamContext.observer); there only when the admin
 * endpoint is on, as the RequestObserver. A session's connect attempts and their failures
 * are reported as an HTTP request's attempts are.
 */
export interface SessionObserver {
  /** The session tries to connect to `peer` (each try, the next server after a failed connect included). */
  attemptStarted(peer: Peer): void;
  /** `upstream` (a server, or the group's name for no_live) failed the session's connect. */
  upstreamFailed(upstream: Peer | string, kind: FailureMetricKind, message: string): void;
  /** The session relayed through `peer` has ended, having sent it `sent` bytes and received `received`. */
  sessionRelayed(peer: Peer, sent: number, received: number): void;
  /** The session ended with $status `status`; `upstream` is the last server tried, or the group's name when none was usable. */
  sessionFinished(status: number, upstream: string): void;
}

/** What the gauges read when Prometheus scrapes: the live state of the running proxy. */
export interface GaugeSources {
  clientConnections(): Promise<number>;
  tunnels(): number;
}

/** Seconds: 1 ms to a minute (proxy_read_timeout's default), finer where Gunicorn apps answer. */
const RESPONSE_TIME_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The prom-client children of one upstream label (a server's address, or a group's name),
 * each made on first use and kept (labels() hashes its arguments at every call). Only
 * what was used is made, so a stream server's address never shows in the HTTP series.
 */
interface Series {
  /** HTTP: sockproxy_requests_total, made for every class at once (so that rate() sees the first of each). */
  requests?: Record<StatusClass, Counter.Internal>;
  responseSeconds?: Histogram.Internal<'upstream'>;
  readonly failures: Map<FailureMetricKind, Counter.Internal>;
  /** Stream: sockproxy_stream_sessions_total and sockproxy_stream_upstream_bytes_total. */
  readonly sessions: Map<StatusClass, Counter.Internal>;
  bytes?: { readonly sent: Counter.Internal; readonly received: Counter.Internal };
}

/** What is kept for one server line: its counts for /status and its address's series. */
interface ServerRecord {
  readonly counts: ServerCounts;
  readonly series: Series;
}

/**
 * The process's metrics in a prom-client registry of its own (not the global one, so an
 * embedding program keeps its own), with the default process metrics, and the plain
 * counts /status shows. In a cluster the primary gathers each worker's
 * registry.getMetricsAsJSON() and sums them with prom-client's AggregatorRegistry.
 */
export class ProxyMetrics implements RequestObserver, SessionObserver {
  readonly registry = new Registry();
  /** By address: the label Prometheus knows a server by. */
  readonly #series = new Map<string, Series>();
  /**
   * By server line, for /status: two lines may name one address (a server listed again as
   * a backup). Keyed by the line's ServerState, which a reload hands to the new Peer of an
   * address it keeps (../upstream/states.ts): the counts carry over with the server's
   * health, and start from zero for an address the reload adds.
   */
  readonly #servers = new WeakMap<ServerState, ServerRecord>();
  readonly #responses: Record<StatusClass, number> = { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
  readonly #sessions: Record<StatusClass, number> = { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
  readonly #failures: Record<FailureMetricKind, number> = { error: 0, timeout: 0, invalid_header: 0, http_5xx: 0, http_429: 0, no_live: 0 };
  readonly #reloads: Record<'ok' | 'failed', number> = { ok: 0, failed: 0 };
  #sources: GaugeSources | undefined;

  readonly #requestsTotal = new Counter({
    name: 'sockproxy_requests_total',
    help: 'Client requests answered, by the status class the client got and the last upstream server tried ("-": none)',
    labelNames: ['status_class', 'upstream'] as const,
    registers: [this.registry],
  });
  readonly #responseSeconds = new Histogram({
    name: 'sockproxy_upstream_response_seconds',
    help: 'Time to read a whole response from an upstream server ($upstream_response_time), per server',
    labelNames: ['upstream'] as const,
    buckets: RESPONSE_TIME_BUCKETS,
    registers: [this.registry],
  });
  readonly #failuresTotal = new Counter({
    name: 'sockproxy_upstream_failures_total',
    help: 'Upstream failures by kind (error, timeout, invalid_header, http_5xx, http_429, no_live) and server (the upstream name for no_live)',
    labelNames: ['kind', 'upstream'] as const,
    registers: [this.registry],
  });
  readonly #sessionsTotal = new Counter({
    name: 'sockproxy_stream_sessions_total',
    help: 'Stream sessions ended, by the class of their $status (2xx: a server was connected; 5xx: none could be) and the last upstream server tried (the upstream name when none was usable)',
    labelNames: ['status_class', 'upstream'] as const,
    registers: [this.registry],
  });
  readonly #streamBytesTotal = new Counter({
    name: 'sockproxy_stream_upstream_bytes_total',
    help: 'Bytes a stream session sent to an upstream server (direction="sent") and received from it ("received"), counted when the session ends',
    labelNames: ['direction', 'upstream'] as const,
    registers: [this.registry],
  });
  readonly #reloadsTotal = new Counter({
    name: 'sockproxy_reloads_total',
    help: 'Configuration reloads (SIGHUP), by result: ok, or failed (the file was invalid and the old configuration stays)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly #workerRestarts = new Counter({
    name: 'sockproxy_worker_restarts_total',
    help: 'Worker processes started again after one died',
    registers: [this.registry],
  });

  constructor() {
    const sources = (): GaugeSources | undefined => this.#sources;
    new Gauge({
      name: 'sockproxy_client_connections',
      help: 'Open client connections to the HTTP listeners',
      registers: [this.registry],
      async collect() {
        this.set((await sources()?.clientConnections()) ?? 0);
      },
    });
    new Gauge({
      name: 'sockproxy_tunnels',
      help: 'Open upgraded connections (WebSocket tunnels), with upgrade requests waiting for their answer',
      registers: [this.registry],
      collect() {
        this.set(sources()?.tunnels() ?? 0);
      },
    });
    // Both results shown from the start, so that rate() sees the first failure.
    this.#reloadsTotal.labels('ok').inc(0);
    this.#reloadsTotal.labels('failed').inc(0);
    collectDefaultMetrics({ register: this.registry });
  }

  /** Where the gauges read the running proxy's state; set once it has started (and again after a reload). */
  watch(sources: GaugeSources): void {
    this.#sources = sources;
  }

  attemptStarted(peer: Peer): void {
    this.#server(peer).counts.requests++;
  }

  responseRead(peer: Peer, durationMs: number): void {
    const series = this.#server(peer).series;
    series.responseSeconds ??= this.#responseSeconds.labels(peer.name);
    series.responseSeconds.observe(durationMs / 1000);
  }

  upstreamFailed(upstream: Peer | string, kind: FailureMetricKind, message: string): void {
    let series: Series;
    let name: string;
    if (typeof upstream === 'string') {
      series = this.#seriesOf(upstream);
      name = upstream;
    } else {
      const record = this.#server(upstream);
      record.counts.failures++;
      record.counts.lastError = { time: new Date().toISOString(), kind, message };
      series = record.series;
      name = upstream.name;
    }
    let counter = series.failures.get(kind);
    if (counter === undefined) {
      counter = this.#failuresTotal.labels(kind, name);
      series.failures.set(kind, counter);
    }
    counter.inc();
    this.#failures[kind]++;
  }

  requestFinished(status: number, upstream: string): void {
    const statusClass = statusClassOf(status);
    const series = this.#seriesOf(upstream);
    series.requests ??= Object.fromEntries(
      STATUS_CLASSES.map((each) => [each, this.#requestsTotal.labels(each, upstream)]),
    ) as Record<StatusClass, Counter.Internal>;
    series.requests[statusClass].inc();
    this.#responses[statusClass]++;
  }

  sessionRelayed(peer: Peer, sent: number, received: number): void {
    const { counts, series } = this.#server(peer);
    counts.sent += sent;
    counts.received += received;
    series.bytes ??= { sent: this.#streamBytesTotal.labels('sent', peer.name), received: this.#streamBytesTotal.labels('received', peer.name) };
    series.bytes.sent.inc(sent);
    series.bytes.received.inc(received);
  }

  sessionFinished(status: number, upstream: string): void {
    const statusClass = statusClassOf(status);
    const sessions = this.#seriesOf(upstream).sessions;
    let counter = sessions.get(statusClass);
    if (counter === undefined) {
      counter = this.#sessionsTotal.labels(statusClass, upstream);
      sessions.set(statusClass, counter);
    }
    counter.inc();
    this.#sessions[statusClass]++;
  }

  reloaded(result: 'ok' | 'failed'): void {
    this.#reloadsTotal.labels(result).inc();
    this.#reloads[result]++;
  }

  workerRestarted(): void {
    this.#workerRestarts.inc();
  }

  /** This process's counts for one server line; undefined if it has seen nothing of it. */
  serverCounts(peer: Peer): ServerCounts | undefined {
    return this.#servers.get(peer.state)?.counts;
  }

  totals(): ProcessTotals {
    return {
      responses: { ...this.#responses },
      sessions: { ...this.#sessions },
      failures: { ...this.#failures },
      reloads: { ...this.#reloads },
    };
  }

  #server(peer: Peer): ServerRecord {
    let record = this.#servers.get(peer.state);
    if (record === undefined) {
      record = { counts: { requests: 0, failures: 0, lastError: undefined, sent: 0, received: 0 }, series: this.#seriesOf(peer.name) };
      this.#servers.set(peer.state, record);
    }
    return record;
  }

  #seriesOf(upstream: string): Series {
    let series = this.#series.get(upstream);
    if (series === undefined) {
      series = { failures: new Map(), sessions: new Map() };
      this.#series.set(upstream, series);
    }
    return series;
  }
}

/** 1xx … 5xx; anything else (none is expected) as 5xx. */
function statusClassOf(status: number): StatusClass {
  return STATUS_CLASSES[Math.floor(status / 100) - 1] ?? '5xx';
}
