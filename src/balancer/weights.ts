import type { Peer } from '../upstream/peer.js';

export function totalWeight(candidates: readonly Peer[]): number {
  return candidates.reduce((sum, peer) => sum + peer.config.weight, 0);
}

/**
 * The peer a hash lands on: nginx's hash balancers walk the server list in order, each
 * server covering `weight` consecutive values of `point % total weight`.
 */
export function peerAtWeight(candidates: readonly Peer[], point: number): Peer {
  let weight = point % totalWeight(candidates);
  let index = 0;
  while (weight >= candidates[index]!.config.weight) {
    weight -= candidates[index]!.config.weight;
    index++;
  }
  return candidates[index]!;
}
