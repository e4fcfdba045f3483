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
