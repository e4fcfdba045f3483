import type { ServerConfig } from '../config/types.js';
import type { HealthState } from './health.js';
import { formatAddress } from './address.js';

/**
 * What the proxy knows about one upstream server beyond its configuration line: its
 * passive and active health and the requests in flight to it. Kept per address, apart
 * from the configuration (as Caddy's hosts and nginx Plus's zone are), so that it
 * survives a reload that keeps the server (./states.ts).
 */
export class ServerState {
  /** Failures counted since the last success that came after a fail_timeout window. */
  fails = 0;
  /** Second of the last failure. */
  accessedSec = 0;
  /** Second the current fail_timeout window started (last failure, or the last probe). */
  checkedSec = 0;
  /** Requests (and tunnels, stream sessions) in flight to this server, whichever configuration they started on. */
  active = 0;
  /**
   * Active health (upstream.health_check), as its checks last left it; 'healthy' while
   * the server is not checked. `checked` says whether any check configuration has judged
   * it yet: a reload carries the state of a checked server instead of starting afresh.
   */
  health: HealthState = 'healthy';
  checked = false;

  readonly #onSlotFreed: () => void;

  constructor(onSlotFreed: () => void = () => {}) {
    this.#onSlotFreed = onSlotFreed;
  }

  slotFreed(): void {
    this.#onSlotFreed();
  }
}

/**
 * One upstream server of one configuration (ngx_http_upstream_rr_peer_t): its server line,
 * the balancer's weights, and the state nginx keeps for it, held in a ServerState that a
 * reload may hand to the next configuration's Peer for the same address.
 * Times are whole seconds, as nginx's cached ngx_time() is: fail_timeout windows are
 * compared in seconds, so "fail_timeout=0" quarantines for the rest of the current second.
 */
export class Peer {
  readonly config: ServerConfig;
  /** "unix:/tmp/app.sock" or "127.0.0.1:8000": the name used in every log line. */
  readonly name: string;
  readonly state: ServerState;

  /** Smooth weighted round robin state (ngx_http_upstream_get_peer). */
  currentWeight = 0;
  effectiveWeight: number;

  /** `state`: the server's state carried from an earlier configuration; a new one by default. */
  constructor(config: ServerConfig, state: ServerState = new ServerState()) {
    this.config = config;
    this.name = formatAddress(config.address);
    this.effectiveWeight = config.weight;
    this.state = state;
  }

  get fails(): number {
    return this.state.fails;
  }
  set fails(value: number) {
    this.state.fails = value;
  }

  get accessedSec(): number {
    return this.state.accessedSec;
  }
  set accessedSec(value: number) {
    this.state.accessedSec = value;
  }

  get checkedSec(): number {
    return this.state.checkedSec;
  }
  set checkedSec(value: number) {
    this.state.checkedSec = value;
  }

  /** Requests in flight to this server: each holds one active (non-idle) connection. */
  get active(): number {
    return this.state.active;
  }
  set active(value: number) {
    this.state.active = value;
  }

  /**
   * Active health (upstream.health_check): false while the checks keep the server out of
   * rotation, "unhealthy" or, with `mandatory`, "checking". Always true without checks.
   */
  get healthy(): boolean {
    return this.state.health === 'healthy';
  }
  set healthy(value: boolean) {
    this.state.health = value ? 'healthy' : 'unhealthy';
  }

  /** A request to this server starts: it counts against max_conns until it ends. */
  takeSlot(): void {
    this.state.active++;
  }

  releaseSlot(): void {
    this.state.active--;
    this.state.slotFreed();
  }
}
