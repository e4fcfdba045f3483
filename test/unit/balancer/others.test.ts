import { describe, expect, it } from 'vitest';
import { ipHash } from '../../../src/balancer/ip-hash.js';
import { leastConn } from '../../../src/balancer/least-conn.js';
import { makeRandom } from '../../../src/balancer/random.js';
import { Peer } from '../../../src/upstream/peer.js';
import { server } from '../helpers.js';

const all = (): boolean => true;

describe('least_conn', () => {
  it('picks the fewest active connections per weight', () => {
    const peers = [new Peer(server('a')), new Peer(server('b', { weight: 2 })), new Peer(server('c'))];
    peers[0]!.active = 2;
    peers[1]!.active = 2; // 1 per unit of weight
    peers[2]!.active = 0;
    expect(leastConn(peers, all, { clientAddress: '' })?.name).toBe('unix:/c');
    peers[2]!.active = 3;
    expect(leastConn(peers, all, { clientAddress: '' })?.name).toBe('unix:/b');
  });

  it('breaks ties by round robin among the tied peers', () => {
    const peers = [new Peer(server('a')), new Peer(server('b')), new Peer(server('c'))];
    peers[2]!.active = 5;
    const picks = Array.from({ length: 4 }, () => leastConn(peers, all, { clientAddress: '' })?.name);
    expect(picks).toEqual(['unix:/a', 'unix:/b', 'unix:/a', 'unix:/b']);
  });
});

describe('ip_hash', () => {
  it('keeps one /24 on one server and spreads different networks', () => {
    const peers = ['a', 'b', 'c', 'd'].map((n) => new Peer(server(n)));
    const pick = (ip: string): string | undefined => ipHash(peers, all, { clientAddress: ip })?.name;
    expect(pick('10.1.2.3')).toBe(pick('10.1.2.200'));
    expect(pick('::ffff:10.1.2.3')).toBe(pick('10.1.2.9'));
    const spread = new Set(Array.from({ length: 64 }, (_, i) => pick(`10.${i}.7.1`)));
    expect(spread.size).toBeGreaterThan(1);
  });

  it('rehashes past an unusable server', () => {
    const peers = ['a', 'b'].map((n) => new Peer(server(n)));
    const first = ipHash(peers, all, { clientAddress: '192.168.5.5' })!;
    const other = ipHash(peers, (p) => p !== first, { clientAddress: '192.168.5.5' });
    expect(other).toBeDefined();
    expect(other).not.toBe(first);
  });
});

describe('random', () => {
  it('picks in proportion to weight, among eligible peers only', () => {
    const peers = [new Peer(server('a', { weight: 3 })), new Peer(server('b')), new Peer(server('c'))];
    const values = [0, 0.5, 0.74, 0.76, 0.99];
    let i = 0;
    const random = makeRandom(() => values[i++]!);
    const eligible = (p: Peer): boolean => p.name !== 'unix:/c';
    expect(values.map(() => random(peers, eligible, { clientAddress: '' })?.name)).toEqual([
      'unix:/a',
      'unix:/a',
      'unix:/a',
      'unix:/b',
      'unix:/b',
    ]);
  });
});
