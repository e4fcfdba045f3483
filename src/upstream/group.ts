import type { UpstreamBlock } from '../config/types.js';
import { Peer } from './peer.js';
import { ServerStates } from './states.js';

/** Chooses one of `candidates` for which `eligible` holds (a balancer; see src/balancer). */
export type PickPeer = (candidates: readonly Peer[], eligible: (peer: Peer) => boolean) => Peer | undefined;

/** The servers one request has tried so far (nginx's per-request `tried` bitmap). */
export interface RequestPeers {
  readonly tried: Set<Peer>;
  /** Once a request has moved to the backup servers it stays there (ngx_http_upstream_get_round_robin_peer). */
  usingBackup: boolean;
}

export type HealthEvent = { kind: 'disabled'; peer: Peer };

/**
 * The upstream block: primary and backup peers, passive health (max_fails/fail_timeout)
 * and the selection rules around the balancer, as ngx_http_upstream_round_robin.c has them
 * (and ngx_stream_upstream_round_robin.c, which has the same rules for the stream proxy).
 * A server out by active health (Peer.healthy) is skipped like a `down` one.
 * `nowSec` is injected so the fail_timeout rules are unit-tested without sleeping.
 */
export class UpstreamGroup {
  readonly name: string;
  readonly primary: readonly Peer[];
  readonly backup: readonly Peer[];
  /**
   * One primary server and no backup: nginx never marks it unavailable and never retries
   * it ([RR] peers->single; "such a server will never be considered unavailable").
   */
  readonly single: boolean;
  /** nginx peer.tries: every server that is not `down`, primary and backup. */
  readonly #maxTries: number;

  readonly #nowSec: () => number;
  readonly #onHealthEvent: (event: HealthEvent) => void;

  /**
   * `states`: where the servers' state is kept across reloads (a new set by default);
   * `onSlotFreed` (for a new set): a request to one of the servers ended, so one at
   * max_conns may take another.
   */
  constructor(
    config: UpstreamBlock,
    options: {
      nowSec?: () => number;
      onHealthEvent?: (event: HealthEvent) => void;
      onSlotFreed?: () => void;
      states?: ServerStates;
    } = {},
  ) {
    this.name = config.name;
    const states = (options.states ?? new ServerStates(options.onSlotFreed)).assign(config.servers);
    const peers = config.servers.map((server, index) => new Peer(server, states[index]));
    this.primary = Object.freeze(peers.filter((peer) => !peer.config.backup));
    this.backup = Object.freeze(peers.filter((peer) => peer.config.backup));
    this.single = this.primary.length === 1 && this.backup.length === 0;
    this.#maxTries = peers.filter((peer) => !peer.config.down).length;
    this.#nowSec = options.nowSec ?? (() => Math.floor(Date.now() / 1000));
    this.#onHealthEvent = options.onHealthEvent ?? (() => {});
  }

  /**
   * How many servers one request or session may try: every usable server once, at most
   * `nextUpstreamTries` (0 = no limit); a single server is never retried (nginx's
   * peer.tries, capped by proxy_next_upstream_tries).
   */
  tries(nextUpstreamTries: number): number {
    if (this.single) return 1;
    return nextUpstreamTries === 0 ? this.#maxTries : Math.min(nextUpstreamTries, this.#maxTries);
  }

  newRequest(): RequestPeers {
    return { tried: new Set(), usingBackup: false };
  }

  /**
   * The next server for this request, or undefined when none is usable: the caller answers
   * 502 without connecting anywhere ("no live upstreams"), or queues the request if
   * waitsForSlot(). Marks the chosen server tried.
   */
  select(request: RequestPeers, pick: PickPeer): Peer | undefined {
    const now = this.#nowSec();
    const eligible = (peer: Peer): boolean => this.#usable(peer, request, now) && this.#hasCapacity(peer);
    if (this.single) {
      const peer = this.primary[0]!;
      if (!eligible(peer)) return undefined;
      request.tried.add(peer);
      return peer;
    }

    let peer = request.usingBackup ? undefined : pick(this.primary, eligible);
    if (peer === undefined && this.backup.length > 0) {
      peer = pick(this.backup, eligible);
      // Set only once a backup is chosen: a request waiting in the queue for a primary
      // at max_conns may still get one.
      if (peer !== undefined) request.usingBackup = true;
    }
    if (peer === undefined) return undefined;
    // Past the window, this selection is the one probe let through; the next request
    // still sees the peer as quarantined until this one succeeds.
    if (now - peer.checkedSec > peer.config.failTimeoutSec) peer.checkedSec = now;
    request.tried.add(peer);
    return peer;
  }

  /** An error, timeout, invalid header or listed http_5xx (NGX_PEER_FAILED). */
  recordFailure(peer: Peer): void {
    if (this.single) return;
    const now = this.#nowSec();
    peer.fails++;
    peer.accessedSec = now;
    peer.checkedSec = now;
    const { maxFails, weight } = peer.config;
    if (maxFails > 0) {
      peer.effectiveWeight = Math.max(0, peer.effectiveWeight - Math.floor(weight / maxFails));
      if (peer.fails >= maxFails) this.#onHealthEvent({ kind: 'disabled', peer });
    }
  }

  /**
   * A completed response. Only a success that comes after the fail_timeout window (the probe)
   * clears the count: successes inside the window leave it, as nginx does.
   */
  recordSuccess(peer: Peer): void {
    if (peer.accessedSec < peer.checkedSec) peer.fails = 0;
  }

  /**
   * Whether select() would find a server for this request now. Changes nothing (select
   * moves the balancer and the fail_timeout probe on), so the queue may ask it freely.
   */
  canSelect(request: RequestPeers): boolean {
    const now = this.#nowSec();
    return this.#candidates(request).some((peer) => this.#usable(peer, request, now) && this.#hasCapacity(peer));
  }

  /**
   * Whether a server this request may still use is only at max_conns: nginx Plus's
   * condition for putting a request in the queue ("there are the servers in the group that
   * have reached the max_conns limit"). Servers out for any other reason are not waited for.
   */
  waitsForSlot(request: RequestPeers): boolean {
    const now = this.#nowSec();
    return this.#candidates(request).some((peer) => this.#usable(peer, request, now) && !this.#hasCapacity(peer));
  }

  /**
   * The second until which passive health keeps `peer` out of rotation (max_fails failures
   * within fail_timeout), or undefined when it does not; for /status. A single server is
   * never out, as select() never skips it.
   */
  unavailableUntilSec(peer: Peer): number | undefined {
    if (this.single || !this.#isQuarantined(peer, this.#nowSec())) return undefined;
    return peer.checkedSec + peer.config.failTimeoutSec;
  }

  /** The servers select() looks at for this request, primary and backup. */
  #candidates(request: RequestPeers): readonly Peer[] {
    return request.usingBackup ? this.backup : [...this.primary, ...this.backup];
  }

  /** Usable but for max_conns: not tried by this request, not down, not out by active or passive health. */
  #usable(peer: Peer, request: RequestPeers, now: number): boolean {
    if (request.tried.has(peer) || peer.config.down || !peer.healthy) return false;
    return this.single || !this.#isQuarantined(peer, now);
  }

  #hasCapacity(peer: Peer): boolean {
    return peer.config.maxConns === 0 || peer.active < peer.config.maxConns;
  }

  #isQuarantined(peer: Peer, now: number): boolean {
    const { maxFails, failTimeoutSec } = peer.config;
    return maxFails > 0 && peer.fails >= maxFails && now - peer.checkedSec <= failTimeoutSec;
  }
}
