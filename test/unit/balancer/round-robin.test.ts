import { describe, expect, it } from 'vitest';
import { roundRobin } from '../../../src/balancer/round-robin.js';
import type { BalanceContext } from '../../../src/balancer/types.js';
import { Peer } from '../../../src/upstream/peer.js';
import { server } from '../helpers.js';

/** A request that gives the balancer nothing to go on. */
/** A fresh request each call: the balancers keep their per-request state in it. */
const newRequest = (): BalanceContext => ({ clientAddress: '', variable: () => '', state: {} });

function sequence(peers: Peer[], count: number, eligible: (peer: Peer) => boolean = () => true): string[] {
  return Array.from({ length: count }, () => roundRobin(peers, eligible, newRequest())?.name ?? '-');
}

describe('smooth weighted round robin (ngx_http_upstream_get_peer)', () => {
  it('weights 5/1/1 give a a b a c a a', () => {
    const peers = [new Peer(server('a', { weight: 5 })), new Peer(server('b')), new Peer(server('c'))];
    expect(sequence(peers, 14)).toEqual(
      ['a', 'a', 'b', 'a', 'c', 'a', 'a', 'a', 'a', 'b', 'a', 'c', 'a', 'a'].map((n) => `unix:/${n}`),
    );
  });

  it('equal weights alternate from the first listed', () => {
    const peers = [new Peer(server('a')), new Peer(server('b'))];
    expect(sequence(peers, 4)).toEqual(['unix:/a', 'unix:/b', 'unix:/a', 'unix:/b']);
  });

  it('skips ineligible peers and returns undefined when none is left', () => {
    const peers = [new Peer(server('a')), new Peer(server('b'))];
    expect(sequence(peers, 3, (peer) => peer.name !== 'unix:/a')).toEqual(['unix:/b', 'unix:/b', 'unix:/b']);
    expect(roundRobin(peers, () => false, newRequest())).toBeUndefined();
  });

  it('a penalised effective weight climbs back by one per round', () => {
    const peers = [new Peer(server('a', { weight: 3 })), new Peer(server('b', { weight: 3 }))];
    peers[0]!.effectiveWeight = 0;
    roundRobin(peers, () => true, newRequest());
    expect(peers[0]!.effectiveWeight).toBe(1);
  });
});
