import { isIPv4 } from 'node:net';
import type { Balancer } from './types.js';
import { pickSmoothWeighted } from './round-robin.js';
import { peerAtWeight, totalWeight } from './weights.js';

/** nginx falls back to round robin once `++tries > 20`: after 21 unusable picks. */
const MAX_HASH_TRIES = 20;

/**
 * nginx ip_hash (ngx_http_upstream_get_ip_hash_peer): the key is the first three octets
 * of an IPv4 address (so a /24 sticks to one server) or the whole IPv6 address; the hash
 * walks the weighted server list, rehashing past unusable servers. The hash and the misses
 * belong to the request (iphp->hash, iphp->tries): a retry goes on from them.
 */
export const ipHash: Balancer = (candidates, eligible, { clientAddress, state }) => {
  const key = hashKey(clientAddress);
  if (totalWeight(candidates) === 0) return undefined;
  let hash = state.position ?? 89;
  while ((state.misses ?? 0) <= MAX_HASH_TRIES) {
    for (const byte of key) hash = (hash * 113 + byte) % 6271;
    const peer = peerAtWeight(candidates, hash);
    if (eligible(peer)) {
      state.position = hash;
      return peer;
    }
    state.misses = (state.misses ?? 0) + 1;
  }
  return pickSmoothWeighted(candidates, eligible);
};

function hashKey(address: string): number[] {
  const v4 = address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
  if (isIPv4(v4)) return v4.split('.').slice(0, 3).map(Number);
  return [...Buffer.from(address, 'latin1')];
}
