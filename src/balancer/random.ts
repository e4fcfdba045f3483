import type { Peer } from '../upstream/peer.js';
import type { Balancer } from './types.js';

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
