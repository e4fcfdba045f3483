/**
 * GET /status: what each upstream server is doing, in one JSON document. A process builds
 * its own part (processStatus); combineStatus sums the parts of every worker, so the
 * document has the same shape with one process or several.
 */
import type { UpstreamConnections } from '../forward/connections.js';
import type { FailureMetricKind, LastError, ProcessTotals, ProxyMetrics, StatusClass } from '../observe/metrics.js';
import type { UpstreamGroup } from '../upstream/group.js';
import type { Peer } from '../upstream/peer.js';

/** One upstream block as /status sees it; RunningProxy.upstreams() gives the current ones. */
export interface UpstreamView {
  readonly kind: 'http' | 'stream';
  readonly group: UpstreamGroup;
  /** The HTTP proxy's keep-alive connections; a stream session is its own connection. */
  readonly connections?: UpstreamConnections;
  /**
   * Servers a reload removed from the group that still have requests in flight: shown
   * with state "draining" until they have none. Filled by the reload, which keeps them.
   */
  readonly draining?: readonly Peer[];
}

/**
 * A server's state, from most to least serious (the order combineStatus keeps the worst
 * of): `down` in the configuration; `draining` (removed by a reload, requests still in
 * flight); `unhealthy` (active health checks keep it out); `unavailable` (max_fails
 * failures within fail_timeout: out until `unavailable_until`); `backup` (usable, waiting
 * for the primary servers to be out); `up`.
 */
export const SERVER_STATES = ['down', 'draining', 'unhealthy', 'unavailable', 'backup', 'up'] as const;
export type ServerState = (typeof SERVER_STATES)[number];

export interface ServerStatus {
  /** As in the logs: "unix:/run/gunicorn.sock", "127.0.0.1:8000". */
  address: string;
  backup: boolean;
  weight: number;
  state: ServerState;
  /** ISO 8601, with state "unavailable": when the server is tried again (one probe request). */
  unavailable_until: string | null;
  /** Failures counted toward max_fails now (nginx's peer->fails: a success after fail_timeout clears it). */
  fails: number;
  /** Requests (or stream sessions) in flight to the server. */
  active: number;
  /**
   * Requests sent to the server since start, retries included; for a stream server, the
   * sessions sent to it (every connect attempt, nginx Plus's stream `connections`).
   */
  requests: number;
  /** Failures since start: error, timeout, invalid_header, listed statuses; for a stream server, failed connects. */
  failures: number;
  /** HTTP only: keep-alive connections, idle and carrying a request. */
  connections?: { idle: number; active: number };
  /** Stream only: bytes sent to the server and received from it by the sessions that have ended (nginx Plus's `sent`, `received`). */
  sent?: number;
  received?: number;
  /** The last failure, or null. */
  last_error: LastError | null;
}

export interface UpstreamStatus {
  name: string;
  kind: 'http' | 'stream';
  servers: ServerStatus[];
}

/** One process's part of the document. */
export interface ProcessStatus {
  pid: number;
  started_at: string;
  config: { file: string; loaded_at: string };
  client_connections: number;
  tunnels: number;
  responses: Record<StatusClass, number>;
  sessions: Record<StatusClass, number>;
  upstream_failures: Record<FailureMetricKind, number>;
  reloads: ProcessTotals['reloads'];
  upstreams: UpstreamStatus[];
}

/** The whole document. */
export interface StatusDocument {
  version: string;
  /** The primary, or the only process. */
  pid: number;
  started_at: string;
  uptime_seconds: number;
  config: { file: string; loaded_at: string };
  /** The processes serving requests (one without `workers`), and their own config load times. */
  workers: { pid: number; started_at: string; config_loaded_at: string; requests: number }[];
  /** Workers that did not answer in time: their numbers are missing from the totals. */
  workers_not_answering: number[];
  totals: {
    /** HTTP requests answered (the sum of `responses`); stream sessions are counted apart, in `sessions`. */
    requests: number;
    responses: Record<StatusClass, number>;
    /** Stream sessions ended, by the class of their $status: 2xx once a server was connected, 5xx when none could be. */
    sessions: Record<StatusClass, number>;
    upstream_failures: Record<FailureMetricKind, number>;
    client_connections: number;
    tunnels: number;
    reloads: ProcessTotals['reloads'];
  };
  upstreams: UpstreamStatus[];
}

/** What a process reads to describe itself. */
export interface StatusSource {
  readonly metrics: ProxyMetrics;
  readonly startedAt: Date;
  /** The configuration file in use, and when it was loaded (a reload changes it). */
  config(): { file: string; loadedAt: Date };
  upstreams(): readonly UpstreamView[];
  clientConnections(): Promise<number>;
  tunnels(): number;
}

export async function processStatus(source: StatusSource): Promise<ProcessStatus> {
  const totals = source.metrics.totals();
  const config = source.config();
  return {
    pid: process.pid,
    started_at: source.startedAt.toISOString(),
    config: { file: config.file, loaded_at: config.loadedAt.toISOString() },
    client_connections: await source.clientConnections(),
    tunnels: source.tunnels(),
    responses: totals.responses,
    sessions: totals.sessions,
    upstream_failures: totals.failures,
    reloads: totals.reloads,
    upstreams: source.upstreams().map((view) => upstreamStatus(view, source.metrics)),
  };
}

function upstreamStatus(view: UpstreamView, metrics: ProxyMetrics): UpstreamStatus {
  const { group } = view;
  const draining = new Set(view.draining ?? []);
  const servers = [...group.primary, ...group.backup, ...draining].map((peer): ServerStatus => {
    const untilSec = group.unavailableUntilSec(peer);
    const counts = metrics.serverCounts(peer);
    return {
      address: peer.name,
      backup: peer.config.backup,
      weight: peer.config.weight,
      state: serverState(peer, draining.has(peer), untilSec),
      unavailable_until: untilSec === undefined ? null : new Date(untilSec * 1000).toISOString(),
      fails: peer.fails,
      active: peer.active,
      requests: counts?.requests ?? 0,
      failures: counts?.failures ?? 0,
      ...(view.kind === 'http'
        ? { connections: view.connections?.count(peer) ?? { idle: 0, active: 0 } }
        : { sent: counts?.sent ?? 0, received: counts?.received ?? 0 }),
      last_error: counts?.lastError ?? null,
    };
  });
  return { name: group.name, kind: view.kind, servers };
}

function serverState(peer: Peer, draining: boolean, unavailableUntilSec: number | undefined): ServerState {
  if (peer.config.down) return 'down';
  if (draining) return 'draining';
  if (!peer.healthy) return 'unhealthy';
  if (unavailableUntilSec !== undefined) return 'unavailable';
  return peer.config.backup ? 'backup' : 'up';
}

export interface PrimaryInfo {
  readonly version: string;
  readonly pid: number;
  readonly startedAt: Date;
  readonly config: { file: string; loadedAt: Date };
  /** Reloads as the primary counted them: with workers, it is the one that reads the file first. */
  readonly reloads?: ProcessTotals['reloads'];
}

/**
 * The document from every process's part. Counts are summed; a server's state is the most
 * serious any worker reports (passive health is per worker, as in nginx without a shared
 * zone: one worker may have a server out while another still uses it), with the latest
 * unavailable_until and last error.
 */
export function combineStatus(primary: PrimaryInfo, parts: readonly ProcessStatus[], notAnswering: readonly number[]): StatusDocument {
  const upstreams = new Map<string, UpstreamStatus>();
  const servers = new Map<string, ServerStatus>();
  const totals: StatusDocument['totals'] = {
    requests: 0,
    responses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
    sessions: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
    upstream_failures: { error: 0, timeout: 0, invalid_header: 0, http_5xx: 0, http_429: 0, no_live: 0 },
    client_connections: 0,
    tunnels: 0,
    reloads: primary.reloads ?? { ok: 0, failed: 0 },
  };
  for (const part of parts) {
    addInto(totals.responses, part.responses);
    addInto(totals.sessions, part.sessions);
    addInto(totals.upstream_failures, part.upstream_failures);
    totals.client_connections += part.client_connections;
    totals.tunnels += part.tunnels;
    if (primary.reloads === undefined) addInto(totals.reloads, part.reloads);
    for (const upstream of part.upstreams) {
      const upstreamKey = `${upstream.kind} ${upstream.name}`;
      let combined = upstreams.get(upstreamKey);
      if (combined === undefined) {
        combined = { name: upstream.name, kind: upstream.kind, servers: [] };
        upstreams.set(upstreamKey, combined);
      }
      for (const server of upstream.servers) {
        const serverKey = `${upstreamKey} ${server.address} ${server.backup}`;
        const seen = servers.get(serverKey);
        if (seen === undefined) {
          const copy = structuredClone(server);
          servers.set(serverKey, copy);
          combined.servers.push(copy);
        } else {
          mergeServer(seen, server);
        }
      }
    }
  }
  totals.requests = Object.values(totals.responses).reduce((sum, count) => sum + count, 0);
  return {
    version: primary.version,
    pid: primary.pid,
    started_at: primary.startedAt.toISOString(),
    uptime_seconds: Math.round((Date.now() - primary.startedAt.getTime()) / 100) / 10,
    config: { file: primary.config.file, loaded_at: primary.config.loadedAt.toISOString() },
    workers: parts.map((part) => ({
      pid: part.pid,
      started_at: part.started_at,
      config_loaded_at: part.config.loaded_at,
      requests: Object.values(part.responses).reduce((sum, count) => sum + count, 0),
    })),
    workers_not_answering: [...notAnswering],
    totals,
    upstreams: [...upstreams.values()],
  };
}

function mergeServer(into: ServerStatus, from: ServerStatus): void {
  if (SERVER_STATES.indexOf(from.state) < SERVER_STATES.indexOf(into.state)) into.state = from.state;
  if (from.unavailable_until !== null && (into.unavailable_until === null || from.unavailable_until > into.unavailable_until)) {
    into.unavailable_until = from.unavailable_until;
  }
  into.fails += from.fails;
  into.active += from.active;
  into.requests += from.requests;
  into.failures += from.failures;
  if (from.sent !== undefined) into.sent = (into.sent ?? 0) + from.sent;
  if (from.received !== undefined) into.received = (into.received ?? 0) + from.received;
  if (from.connections !== undefined) {
    into.connections = {
      idle: (into.connections?.idle ?? 0) + from.connections.idle,
      active: (into.connections?.active ?? 0) + from.connections.active,
    };
  }
  if (from.last_error && (!into.last_error || from.last_error.time > into.last_error.time)) into.last_error = from.last_error;
}

function addInto<K extends string>(into: Record<K, number>, from: Record<K, number>): void {
  for (const key of Object.keys(from) as K[]) into[key] = (into[key] ?? 0) + from[key];
}
