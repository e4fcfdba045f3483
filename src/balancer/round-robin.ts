import type { Peer } from '../upstream/peer.js';
import type { Balancer } from './types.js';

/**
 * nginx's smooth weighted round robin (ngx_http_upstream_get_peer): every eligible peer's
 * current weight grows by its effective weight, the largest wins (ties go to the earliest
 * listed) and pays back the total. Weights 5/1/1 give a a b a c a a. The effective weight,
 * lowered on failure, climbs back by one per selection round.
 */
export const roundRobin: Balancer = (candidates, eligible) => pickSmoothWeighted(candidates, eligible);

export function pickSmoothWeighted(candidates: readonly Peer[], eligible: (peer: Peer) => boolean): Peer | undefined {
  let best: Peer | undefined;
  let total = 0;
  for (const peer of candidates) {
    if (!eligible(peer)) continue;
    peer.currentWeight += peer.effectiveWeight;
    total += peer.effectiveWeight;
    if (peer.effectiveWeight < peer.config.weight) peer.effectiveWeight++;
    if (best === undefined || peer.currentWeight > best.currentWeight) best = peer;
  }
  if (best !== undefined) best.currentWeight -= total;
  return best;
}
