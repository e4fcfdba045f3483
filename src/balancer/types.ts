import type { Peer } from '../upstream/peer.js';

/** What a balancer may know about the request it is choosing a server for. */
export interface BalanceContext {
  /** The client's address ($remote_addr), for ip_hash. */
  readonly clientAddress: string;
  /**
   * The value of an nginx variable for this request ("request_uri" for $request_uri), for
   * the `hash` key; "" when unset. Only called by the balancers that need it, so other
   * methods never pay for evaluating variables.
   */
  variable(name: string): string;
  /** The balancer's progress through this request, carried from one attempt to the next. */
  readonly state: BalanceState;
}

/**
 * Where a balancer got to for one request, so that a retry goes on from there, as nginx
 * goes on from the request's peer data (hp->hash, hp->rehash, hp->tries for hash,
 * iphp->hash and iphp->tries for ip_hash, rp->tries for random). Empty when the request
 * starts; each method uses the fields it needs.
 */
export interface BalanceState {
  /** hash: the running sum; hash consistent: the ring point; ip_hash: the running hash. */
  position?: number;
  /** hash: picks made so far (nginx's rehash counter). */
  picks?: number;
  /** Unusable picks so far; past 20 the request goes round robin for good. */
  misses?: number;
}

/**
 * A balancing method: picks one of `candidates` for which `eligible` holds, or undefined.
 * Pure apart from the per-peer balancing state (current/effective weight) it updates, and
 * synchronous, so every method is unit-tested without sockets or clocks.
 */
export type Balancer = (
  candidates: readonly Peer[],
  eligible: (peer: Peer) => boolean,
  context: BalanceContext,
) => Peer | undefined;
