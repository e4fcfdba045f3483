import type net from 'node:net';
import type { BalanceContext, Balancer } from '../balancer/index.js';
import type { StreamServerConfig } from '../config/types.js';
import { formatSeconds, seconds, type StreamAccessEntry } from '../observe/access-log.js';
import type { Logger } from '../observe/logger.js';
import type { SessionObserver } from '../observe/metrics.js';
import { clientAddress, serverAddress } from '../server/client-address.js';
import { connectFailure, type ConnectFailure, describeErrno } from '../server/errno.js';
import type { RequestPeers, UpstreamGroup } from '../upstream/group.js';
import type { Peer } from '../upstream/peer.js';
import { Tunnel, type TunnelEnding } from '../tunnel.js';
import { type ConnectResult, connectUpstream } from './connect.js';

/** Everything a session needs, built once per stream server. */
export interface StreamContext {
  readonly config: StreamServerConfig;
  readonly group: UpstreamGroup;
  readonly balancer: Balancer;
  readonly errorLog: Logger;
  readonly accessLog: Logger | undefined;
  /** Metrics and /status counts (src/observe/metrics.ts); undefined when the admin endpoint is off. */
  readonly observer: SessionObserver | undefined;
}

/**
 * The $status values a proxied session ends with (ngx_stream_proxy_module): NGX_STREAM_OK
 * once a server was connected, however the session ended afterwards (both sides closed, a
 * reset, proxy_timeout); NGX_STREAM_BAD_GATEWAY when no server could be reached.
 */
const STREAM_OK = 200;
const STREAM_BAD_GATEWAY = 502;

const CONNECT_TIMED_OUT: ConnectFailure = { message: 'upstream timed out (110: Connection timed out)', severity: 'error' };

/** One attempt, for $upstream_addr, $upstream_bytes_sent/received and $upstream_connect_time. */
interface AttemptRecord {
  readonly addr: string;
  readonly sent: number;
  readonly received: number;
  readonly connectTime: string;
}

/**
 * One client connection through a stream server: ngx_stream_proxy_connect and
 * ngx_stream_proxy_next_upstream choose and connect a server (the next one after a failed
 * connect, while tries are left), then a Tunnel (../tunnel.ts) moves the bytes until both sides are done.
 * The client socket arrives paused (pauseOnConnect), so nothing is read from it before a
 * server is there to take it: the kernel holds what the client sends meanwhile.
 */
export class StreamSession {
  readonly #ctx: StreamContext;
  readonly #client: net.Socket;
  /** The listener, as nginx prints it in "server: …". */
  readonly #server: string;
  /** $remote_addr, $server_addr, $server_port: read once, while the socket is open. */
  readonly #remoteAddr: string;
  readonly #serverAddr: string;
  readonly #serverPort: number | undefined;
  readonly #onEnd: () => void;
  readonly #startedAt = performance.now();
  readonly #peers: RequestPeers;
  readonly #balanceContext: BalanceContext;
  readonly #attempts: AttemptRecord[] = [];
  #triesLeft: number;
  /** The connected upstream, once there is one. */
  #upstream: net.Socket | undefined;
  /** The relay between the client and the upstream, once connected. */
  #tunnel: Tunnel | undefined;
  #done = false;

  constructor(ctx: StreamContext, client: net.Socket, server: string, onEnd: () => void) {
    this.#ctx = ctx;
    this.#client = client;
    this.#server = server;
    this.#onEnd = onEnd;
    this.#remoteAddr = clientAddress(client);
    this.#serverAddr = serverAddress(client);
    this.#serverPort = client.localPort;
    this.#peers = ctx.group.newRequest();
    this.#balanceContext = { clientAddress: this.#remoteAddr, variable: (name) => this.#variable(name), state: {} };
    this.#triesLeft = ctx.group.tries(ctx.config.nextUpstreamTries);
    // Until the relay takes over: an error (a reset) on the paused client is noticed by the
    // relay, whose reads and writes then fail; this listener only keeps it from being thrown.
    client.on('error', () => {});
  }

  start(): void {
    this.#next();
  }

  /**
   * Closes both connections now (a stop that reached shutdown_timeout). A session still
   * connecting ends when its connect does: the tunnel finds its client closed.
   */
  destroy(): void {
    if (this.#tunnel !== undefined) this.#tunnel.destroy();
    else this.#client.destroy();
  }

  readonly #pick = (candidates: readonly Peer[], eligible: (peer: Peer) => boolean): Peer | undefined =>
    this.#ctx.balancer(candidates, eligible, this.#balanceContext);

  /** The stream variables a `hash KEY` may use (ngx_stream_variables.c). */
  #variable(name: string): string {
    switch (name) {
      case 'remote_addr':
        return this.#remoteAddr;
      case 'remote_port':
        return this.#client.remotePort?.toString() ?? '';
      case 'server_addr':
        return this.#serverAddr;
      case 'server_port':
        return this.#serverPort?.toString() ?? '';
      default:
        return '';
    }
  }

  // --- choosing and connecting a server ---------------------------------------------

  #next(): void {
    const { group, config } = this.#ctx;
    const peer = group.select(this.#peers, this.#pick);
    if (peer === undefined) {
      // Every server is down, failed within fail_timeout or at max_conns: no connect is tried.
      this.#attempts.push({ addr: group.name, sent: 0, received: 0, connectTime: '-' });
      this.#logError('error', 'no live upstreams while connecting to upstream', group.name);
      this.#ctx.observer?.upstreamFailed(group.name, 'no_live', 'no live upstreams');
      this.#finish(STREAM_BAD_GATEWAY);
      return;
    }
    this.#triesLeft--;
    peer.active++;
    this.#ctx.observer?.attemptStarted(peer);
    const startedAt = performance.now();
    connectUpstream(peer.config.address, config.connectTimeoutMs, (result) => this.#onConnect(peer, startedAt, result));
  }

  #onConnect(peer: Peer, startedAt: number, result: ConnectResult): void {
    const { group, config } = this.#ctx;
    if (result.kind === 'connected') {
      // All a stream proxy learns about a server's health is whether it accepts connections.
      group.recordSuccess(peer);
      this.#relay(peer, result.socket, performance.now() - startedAt);
      return;
    }
    peer.active--;
    this.#attempts.push({ addr: peer.name, sent: 0, received: 0, connectTime: '-' });
    const failure = result.kind === 'timeout' ? CONNECT_TIMED_OUT : connectFailure(result.error, peer.name);
    this.#logError('error', `${failure.message} while connecting to upstream`, peer.name, { nginx_level: failure.severity });
    this.#ctx.observer?.upstreamFailed(peer, result.kind === 'timeout' ? 'timeout' : 'error', failure.message);
    // Counted even with next_upstream off, as nginx frees the peer as failed before it decides.
    group.recordFailure(peer);
    const elapsedMs = performance.now() - this.#startedAt;
    const mayTryNext =
      this.#triesLeft > 0 &&
      config.nextUpstream &&
      (config.nextUpstreamTimeoutMs === 0 || elapsedMs < config.nextUpstreamTimeoutMs);
    if (mayTryNext) this.#next();
    else this.#finish(STREAM_BAD_GATEWAY);
  }

  // --- relaying -----------------------------------------------------------------------

  #relay(peer: Peer, upstream: net.Socket, connectMs: number): void {
    this.#upstream = upstream;
    // proxy_timeout bounds both: nothing read for that long, or a write stuck that long.
    const { timeoutMs } = this.#ctx.config;
    this.#tunnel = new Tunnel(this.#client, upstream, Buffer.alloc(0), { idleMs: timeoutMs, sendMs: timeoutMs });
    void this.#tunnel.ended.then(({ ending }) => {
      peer.active--;
      this.#attempts.push({
        addr: peer.name,
        sent: upstream.bytesWritten,
        received: upstream.bytesRead,
        connectTime: formatSeconds(connectMs),
      });
      this.#ctx.observer?.sessionRelayed(peer, upstream.bytesWritten, upstream.bytesRead);
      this.#logTunnelEnd(ending, peer.name);
      this.#finish(STREAM_OK);
    });
  }

  /** nginx's words for how the session ended (ngx_stream_proxy_process_connection, ngx_stream_proxy_process). */
  #logTunnelEnd(ending: TunnelEnding, upstream: string): void {
    switch (ending.kind) {
      case 'closed':
        this.#logError('debug', `${ending.side} disconnected`, upstream);
        return;
      case 'idle_timeout':
      case 'send_timeout':
        // proxy_timeout, on a read or a write: logged at [info] by nginx, and the session is a success (200).
        this.#logError('info', 'connection timed out (110: Connection timed out) while proxying connection', upstream);
        return;
      case 'error': {
        const reading = ending.error.syscall === undefined || ending.error.syscall === 'read';
        const call = reading ? 'recv()' : 'writev()';
        const action = reading ? `proxying and reading from ${ending.side}` : `proxying and sending to ${ending.side}`;
        // nginx logs a client's resets at [info] (c->log_error = NGX_ERROR_INFO), an upstream's at [error].
        const level = ending.side === 'client' ? 'info' : 'error';
        this.#logError(level, `${call} failed (${describeErrno(ending.error)}) while ${action}`, upstream);
        return;
      }
      case 'shutdown':
        // Closed at shutdown_timeout: the stop's own warning says so once for every connection.
        return;
    }
  }

  // --- the end --------------------------------------------------------------------------

  #finish(status: number): void {
    if (this.#done) return;
    this.#done = true;
    const client = this.#client;
    client.destroy();
    this.#onEnd();
    this.#ctx.observer?.sessionFinished(status, this.#attempts.at(-1)?.addr ?? '-');
    const log = this.#ctx.accessLog;
    if (log === undefined) return;
    const entry: StreamAccessEntry = {
      protocol: 'TCP',
      remote_addr: this.#remoteAddr,
      server_addr: this.#serverAddr,
      server_port: this.#serverPort,
      status,
      bytes_sent: client.bytesWritten,
      bytes_received: client.bytesRead,
      session_time: seconds(performance.now() - this.#startedAt),
      upstream_addr: this.#attempts.map((a) => a.addr).join(', ') || '-',
      upstream_bytes_sent: this.#attempts.map((a) => a.sent).join(', ') || '-',
      upstream_bytes_received: this.#attempts.map((a) => a.received).join(', ') || '-',
      upstream_connect_time: this.#attempts.map((a) => a.connectTime).join(', ') || '-',
    };
    log.info(entry);
  }

  /**
   * One error-log line in the shape of ngx_stream_log_error and ngx_stream_proxy_log_error:
   * "<message>, client: …, server: …, upstream: "…", bytes from/to client:N/N, bytes
   * from/to upstream:N/N", with the upstream also as a field.
   */
  #logError(level: 'error' | 'info' | 'debug', message: string, upstream: string, extra?: object): void {
    const client = this.#client;
    const pc = this.#upstream;
    const line =
      `${message}, client: ${this.#remoteAddr}, server: ${this.#server}, upstream: "${upstream}"` +
      `, bytes from/to client:${client.bytesRead}/${client.bytesWritten}` +
      `, bytes from/to upstream:${pc?.bytesRead ?? 0}/${pc?.bytesWritten ?? 0}`;
    this.#ctx.errorLog[level]({ upstream_addr: upstream, ...extra }, line);
  }
}
