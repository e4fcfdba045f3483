import type { ServerConfig } from '../config/types.js';
import { formatAddress } from './address.js';

/**
 * One upstream server and the state nginx keeps for it (ngx_http_upstream_rr_peer_t).
 * Times are whole seconds, as nginx's cached ngx_time() is: fail_timeout windows are
 * compared in seconds, so "fail_timeout=0" quarantines for the rest of the current second.
 */
export class Peer {
  readonly config: ServerConfig;
  /** "unix:/tmp/app.sock" or "127.0.0.1:8000": the name used in every log line. */
  readonly name: string;

  /** Smooth weighted round robin state (ngx_http_upstream_get_peer). */
  currentWeight = 0;
  effectiveWeight: number;

  /** Failures counted since the last success that came after a fail_timeout window. */
  fails = 0;
  /** Second of the last failure. */
  accessedSec = 0;
  /** Second the current fail_timeout window started (last failure, or the last probe). */
  checkedSec = 0;

  /** Requests in flight to this server: each holds one active (non-idle) connection. */
  active = 0;

  /**
   * Active health (upstream.health_check): false while the checks keep the server out of
   * rotation, "unhealthy" or, with `mandatory`, "checking". Always true without checks.
   */
  healthy = true;

  readonly #onSlotFreed: () => void;

  /** `onSlotFreed`: a request to this server ended (the group's queue may dispatch a waiting one). */
  constructor(config: ServerConfig, onSlotFreed: () => void = () => {}) {
    this.config = config;
    this.name = formatAddress(config.address);
    this.effectiveWeight = config.weight;
    this.#onSlotFreed = onSlotFreed;
  }

  /** A request to this server starts: it counts against max_conns until it ends. */
  takeSlot(): void {
    this.active++;
  }

  releaseSlot(): void {
    this.active--;
    this.#onSlotFreed();
  }
}
