import type { Peer } from '../upstream/peer.js';
import { pickSmoothWeighted } from './round-robin.js';
import type { Balancer } from './types.js';
import { peerAtWeight, totalWeight } from './weights.js';

/** ngx_http_upstream_get_random2_peer: after 20 unusable draws, round robin (`++rp->tries > 20`). */
const MAX_RANDOM_TRIES = 20;

/**
 * nginx random (ngx_http_upstream_get_random_peer): an eligible server picked at random,
 * in proportion to its weight. `random` is the uniform source, injectable for tests.
 */
export function makeRandom(random: () => number = Math.random): Balancer {
  return (candidates, eligible) => {
    let total = 0;
    const usable: Peer[] = [];
    for (const peer of candidates) {
      if (!eligible(peer)) continue;
      usable.push(peer);
      total += peer.config.weight;
    }
    let point = random() * total;
    for (const peer of usable) {
      point -= peer.config.weight;
      if (point < 0) return peer;
    }
    return usable.at(-1);
  };
}

/**
 * nginx `random two [least_conn]` (ngx_http_upstream_get_random2_peer): draw servers at
 * random in proportion to weight (ngx_http_upstream_peek_random_peer, over every server,
 * usable or not) until two different usable ones are found, and take the one with fewer
 * active connections per unit of weight; on a tie, the second. Every draw counts against
 * the 20 allowed, the first usable one included; past them, round robin.
 *
 * nginx counts the draws per request, across its attempts; here each attempt has its 20.
 */
export function makeRandomTwo(random: () => number = Math.random): Balancer {
  return (candidates, eligible) => {
    const total = totalWeight(candidates);
    let first: Peer | undefined;
    for (let tries = 0; tries <= MAX_RANDOM_TRIES; tries++) {
      // ngx_http_upstream_peek_random_peer: a weighted draw over every server.
      const peer = peerAtWeight(candidates, Math.floor(random() * total));
      if (peer === first || !eligible(peer)) continue;
      if (first === undefined) {
        first = peer;
        continue;
      }
      // peer->conns * prev->weight > prev->conns * peer->weight: the first has fewer per weight.
      return peer.active * first.config.weight > first.active * peer.config.weight ? first : peer;
    }
    return pickSmoothWeighted(candidates, eligible);
  };
}
