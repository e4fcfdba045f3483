import type { Peer } from '../upstream/peer.js';
import type { Balancer } from './types.js';
import { pickSmoothWeighted } from './round-robin.js';

/**
 * nginx least_conn (ngx_http_upstream_get_least_conn_peer): the eligible peers with the
 * fewest active connections per unit of weight; ties are broken by smooth weighted round
 * robin among the tied peers only.
 */
export const leastConn: Balancer = (candidates, eligible) => {
  let fewest: Peer | undefined;
  for (const peer of candidates) {
    if (!eligible(peer)) continue;
    // a.active / a.weight < b.active / b.weight, without division (as nginx compares).
    if (fewest === undefined || peer.active * fewest.config.weight < fewest.active * peer.config.weight) fewest = peer;
  }
  if (fewest === undefined) return undefined;
  const least = fewest;
  return pickSmoothWeighted(
    candidates,
    (peer) => eligible(peer) && peer.active * least.config.weight === least.active * peer.config.weight,
  );
};
