import type { Peer } from '../upstream/peer.js';
import { pickSmoothWeighted } from './round-robin.js';
import type { Balancer } from './types.js';
import { peerAtWeight, totalWeight } from './weights.js';

/**
 * ngx_http_upstream_get_random_peer and ngx_http_upstream_get_random2_peer: after 20
 * unusable draws, round robin (`++rp->tries > 20`): at most 21 draws.
 */
const MAX_RANDOM_TRIES = 20;

/**
 * nginx random (ngx_http_upstream_get_random_peer): a server drawn at random in proportion
 * to its weight over every server, usable or not (ngx_http_upstream_peek_random_peer); an
 * unusable one (tried, down, failed, at max_conns) means another draw, and after 21 draws
 * without a usable server, round robin. The usable servers still share in proportion to
 * weight, but a heavy unusable server sends some requests to round robin, as in nginx
 * (weight 8 of 10 unusable: 0.8^21, about 1%). The misses are counted per request
 * (rp->tries), across its attempts. `random` is the uniform source, injectable for tests.
 */
export function makeRandom(random: () => number = Math.random): Balancer {
  return (candidates, eligible, { state }) => {
    if (candidates.length === 0) return undefined;
    const total = totalWeight(candidates);
    while ((state.misses ?? 0) <= MAX_RANDOM_TRIES) {
      // ngx_random() % total_weight, then the server whose weight range holds it.
      const peer = peerAtWeight(candidates, Math.floor(random() * total));
      if (eligible(peer)) return peer;
      state.misses = (state.misses ?? 0) + 1;
    }
    return pickSmoothWeighted(candidates, eligible);
  };
}

/**
 * nginx `random two [least_conn]` (ngx_http_upstream_get_random2_peer): draw servers at
 * random in proportion to weight (ngx_http_upstream_peek_random_peer, over every server,
 * usable or not) until two different usable ones are found, and take the one with fewer
 * active connections per unit of weight; on a tie, the second. Every draw counts against
 * the 20 allowed, the first usable one included, and they are counted per request
 * (rp->tries), across its attempts; past them, round robin.
 */
export function makeRandomTwo(random: () => number = Math.random): Balancer {
  return (candidates, eligible, { state }) => {
    const total = totalWeight(candidates);
    let first: Peer | undefined;
    while ((state.misses ?? 0) <= MAX_RANDOM_TRIES) {
      // ngx_http_upstream_peek_random_peer: a weighted draw over every server.
      const peer = peerAtWeight(candidates, Math.floor(random() * total));
      if (peer !== first && eligible(peer)) {
        // peer->conns * prev->weight > prev->conns * peer->weight: the first has fewer per weight.
        if (first !== undefined) return peer.active * first.config.weight > first.active * peer.config.weight ? first : peer;
        first = peer;
      }
      state.misses = (state.misses ?? 0) + 1;
    }
    return pickSmoothWeighted(candidates, eligible);
  };
}
