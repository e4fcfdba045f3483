import type { HealthCheckConfig, HeaderRule } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import { HealthCounter, type HealthState } from '../upstream/health.js';
import type { UpstreamGroup } from '../upstream/group.js';
import type { Peer } from '../upstream/peer.js';
import { probe, type ProbeRequest, type ProbeResult } from './health-probe.js';

/** One server's checks: its counter, and the timer or the check under way. */
interface ServerChecks {
  readonly peer: Peer;
  readonly counter: HealthCounter;
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
}

/**
 * Active health checks (nginx Plus `health_check`, HAProxy `check`): every server that is
 * not `down`, primary and backup, is checked in the background, one check at a time per
 * server: the next starts `interval` after the previous one ended. A server is out of
 * rotation (Peer.healthy false) from `fails` failed checks in a row until `passes` passed
 * ones; passive health (max_fails) is kept apart, and a server out by either is skipped.
 * State changes are logged in nginx Plus's words.
 */
export class HealthChecks {
  readonly #group: UpstreamGroup;
  readonly #config: HealthCheckConfig;
  readonly #request: ProbeRequest;
  readonly #log: Logger;
  readonly #onChange: () => void;
  readonly #servers: ServerChecks[];
  readonly #stop = new AbortController();

  /**
   * `host`: the Host header of the checks. `onChange`: a server went in or out of rotation
   * (the queue may dispatch waiting requests, or answer those left with no server).
   */
  constructor(group: UpstreamGroup, config: HealthCheckConfig, options: { host: string; errorLog: Logger; onChange: () => void }) {
    this.#group = group;
    this.#config = config;
    this.#request = { uri: config.uri, host: options.host, timeoutMs: config.timeoutMs, status: config.status };
    this.#log = options.errorLog;
    this.#onChange = options.onChange;
    this.#servers = [...group.primary, ...group.backup]
      .filter((peer) => !peer.config.down)
      .map((peer) => {
        // A server kept by a reload goes on from the state its checks left it in (an
        // unhealthy one still needs `passes` passed checks); a new one starts afresh: with
        // `mandatory` "checking", out of rotation, until its first check.
        const counter = new HealthCounter(config, peer.state.checked ? peer.state.health : undefined);
        peer.state.health = counter.state;
        peer.state.checked = true;
        return { peer, counter, timer: undefined, running: undefined };
      });
  }

  /** Checks every server now, then every `interval`. */
  start(): void {
    for (const server of this.#servers) this.#check(server);
  }

  /**
   * A configuration without checks: every server goes back into rotation, and a later
   * configuration with checks starts them afresh (nobody would bring a server back).
   */
  static forget(group: UpstreamGroup): void {
    for (const peer of [...group.primary, ...group.backup]) {
      peer.state.health = 'healthy';
      peer.state.checked = false;
    }
  }

  /** Stops checking: no check starts any more, and those under way are ended (their connections closed). */
  async close(): Promise<void> {
    this.#stop.abort();
    for (const server of this.#servers) clearTimeout(server.timer);
    await Promise.all(this.#servers.map((server) => server.running));
  }

  #check(server: ServerChecks): void {
    server.timer = undefined;
    if (this.#stop.signal.aborted) return;
    server.running = probe(server.peer.config.address, server.peer.name, this.#request, this.#stop.signal).then((result) => {
      server.running = undefined;
      if (this.#stop.signal.aborted) return;
      this.#record(server, result);
      server.timer = setTimeout(() => this.#check(server), this.#config.intervalMs);
      // The checks alone must not keep a stopping proxy alive.
      server.timer.unref();
    });
  }

  #record(server: ServerChecks, result: ProbeResult): void {
    const { peer, counter } = server;
    const before = counter.state;
    const change = counter.record(result.passed);
    if (!result.passed) {
      // Every failed check of a server in rotation is logged (it counts towards taking it
      // out), at nginx's level; once it is out the same failure would repeat every interval.
      const level = before === 'unhealthy' ? 'debug' : 'error';
      this.#logLine(level, `${result.message} while ${result.action}`, peer, { nginx_level: result.severity });
    }
    if (change === undefined) return;
    peer.state.health = change;
    this.#logChange(peer, change, result);
    this.#onChange();
  }

  /** nginx Plus: "[warn] peer is unhealthy while …", "[notice] peer is healthy while checking status code". */
  #logChange(peer: Peer, state: HealthState, result: ProbeResult): void {
    if (state === 'healthy') {
      this.#logLine('info', 'peer is healthy while checking status code', peer, { nginx_level: 'notice', health: 'healthy' });
    } else {
      const action = result.passed ? 'checking status code' : result.action;
      this.#logLine('warn', `peer is unhealthy while ${action}`, peer, { health: 'unhealthy' });
    }
  }

  /**
   * "<message>, health check "/health" of peer unix:/run/app.sock in upstream "app"": nginx
   * Plus's shape, where it names its `match` block sockproxy names the uri checked.
   */
  #logLine(level: 'debug' | 'info' | 'warn' | 'error', message: string, peer: Peer, extra: object): void {
    const line = `${message}, health check "${this.#config.uri}" of peer ${peer.name} in upstream "${this.#group.name}"`;
    this.#log[level]({ upstream_addr: peer.name, upstream: this.#group.name, ...extra }, line);
  }
}

/**
 * The Host header of the checks. There is no client request to take `$http_host` from, so
 * it is what nginx sends by default, `$proxy_host`: the upstream name; or the value of a
 * `set_header: {Host: ...}` written without variables. Name the upstream after the host
 * the app expects (Django's ALLOWED_HOSTS) or set such a Host.
 */
export function healthCheckHost(upstreamName: string, setHeader: readonly HeaderRule[]): string {
  const rule = setHeader.find((candidate) => candidate.name === 'host');
  const literal = rule?.template.every((part) => typeof part === 'string') ? rule.template.join('') : '';
  return literal === '' ? upstreamName : literal;
}
