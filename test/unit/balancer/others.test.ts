import { describe, expect, it } from 'vitest';
import { ipHash } from '../../../src/balancer/ip-hash.js';
import { leastConn } from '../../../src/balancer/least-conn.js';
import { makeRandom, makeRandomTwo } from '../../../src/balancer/random.js';
import type { BalanceContext } from '../../../src/balancer/types.js';
import { Peer } from '../../../src/upstream/peer.js';
import { server } from '../helpers.js';

/** A fresh request each call: the balancers keep their per-request state in it. */
const newRequest = (): BalanceContext => ({ clientAddress: '', variable: () => '', state: {} });

const all = (): boolean => true;

describe('least_conn', () => {
  it('picks the fewest active connections per weight', () => {
    const peers = [new Peer(server('a')), new Peer(server('b', { weight: 2 })), new Peer(server('c'))];
    peers[0]!.active = 2;
    peers[1]!.active = 2; // 1 per unit of weight
    peers[2]!.active = 0;
    expect(leastConn(peers, all, newRequest())?.name).toBe('unix:/c');
    peers[2]!.active = 3;
    expect(leastConn(peers, all, newRequest())?.name).toBe('unix:/b');
  });

  it('breaks ties by round robin among the tied peers', () => {
    const peers = [new Peer(server('a')), new Peer(server('b')), new Peer(server('c'))];
    peers[2]!.active = 5;
    const picks = Array.from({ length: 4 }, () => leastConn(peers, all, newRequest())?.name);
    expect(picks).toEqual(['unix:/a', 'unix:/b', 'unix:/a', 'unix:/b']);
  });
});

describe('ip_hash', () => {
  it('keeps one /24 on one server and spreads different networks', () => {
    const peers = ['a', 'b', 'c', 'd'].map((n) => new Peer(server(n)));
    const pick = (ip: string): string | undefined => ipHash(peers, all, { ...newRequest(), clientAddress: ip })?.name;
    expect(pick('10.1.2.3')).toBe(pick('10.1.2.200'));
    expect(pick('::ffff:10.1.2.3')).toBe(pick('10.1.2.9'));
    const spread = new Set(Array.from({ length: 64 }, (_, i) => pick(`10.${i}.7.1`)));
    expect(spread.size).toBeGreaterThan(1);
  });

  it('rehashes past an unusable server', () => {
    const peers = ['a', 'b'].map((n) => new Peer(server(n)));
    const first = ipHash(peers, all, { ...newRequest(), clientAddress: '192.168.5.5' })!;
    const other = ipHash(peers, (p) => p !== first, { ...newRequest(), clientAddress: '192.168.5.5' });
    expect(other).toBeDefined();
    expect(other).not.toBe(first);
  });
});

describe('random (ngx_http_upstream_get_random_peer)', () => {
  /** a (weight 3), b, c: a draw of v takes floor(v * 5), so 0 to 0.59 → a, 0.6 → b, 0.8 → c. */
  function setup(draws: number[]): { peers: Peer[]; random: ReturnType<typeof makeRandom>; drawn: () => number } {
    const peers = [new Peer(server('a', { weight: 3 })), new Peer(server('b')), new Peer(server('c'))];
    let i = 0;
    const random = makeRandom(() => draws[i++ % draws.length]!);
    return { peers, random, drawn: () => i };
  }

  it('draws in proportion to weight over every server', () => {
    const { peers, random } = setup([0, 0.5, 0.59, 0.6, 0.79, 0.8, 0.99]);
    expect(Array.from({ length: 7 }, () => random(peers, all, newRequest())?.name)).toEqual([
      'unix:/a',
      'unix:/a',
      'unix:/a',
      'unix:/b',
      'unix:/b',
      'unix:/c',
      'unix:/c',
    ]);
  });

  it('draws again, over every server, when the drawn server is unusable', () => {
    // 0.9 draws c, unusable; nginx draws again over all five units of weight, and 0.1 is a.
    // (A draw among the usable servers only would take 0.9 of a's and b's four units: b.)
    const { peers, random, drawn } = setup([0.9, 0.1]);
    const notC = (p: Peer): boolean => p.name !== 'unix:/c';
    expect(random(peers, notC, newRequest())?.name).toBe('unix:/a');
    expect(drawn()).toBe(2);
  });

  it('after 21 unusable draws, falls back to round robin', () => {
    // Every draw lands on a (weight 3), which is unusable: round robin among b and c.
    const { peers, random, drawn } = setup([0]);
    const notA = (p: Peer): boolean => p.name !== 'unix:/a';
    expect(random(peers, notA, newRequest())?.name).toBe('unix:/b');
    expect(drawn()).toBe(21);
    expect(random(peers, notA, newRequest())?.name).toBe('unix:/c');
    expect(drawn()).toBe(42);
    expect(random(peers, () => false, newRequest())).toBeUndefined();
    expect(drawn()).toBe(63);
  });

  it('with the default source, the usable servers keep their weight ratio, at total/usable weight draws a request', () => {
    const peers = [new Peer(server('a', { weight: 8 })), new Peer(server('b', { weight: 3 })), new Peer(server('c'))];
    const notA = (p: Peer): boolean => p.name !== 'unix:/a';
    let draws = 0;
    const random = makeRandom(() => (draws++, Math.random()));
    const picks = Array.from({ length: 20_000 }, () => random(peers, notA, newRequest())?.name);
    const b = picks.filter((name) => name === 'unix:/b').length;
    expect(picks.every((name) => name === 'unix:/b' || name === 'unix:/c')).toBe(true);
    expect(b / picks.length).toBeGreaterThan(0.7);
    expect(b / picks.length).toBeLessThan(0.8);
    // 12 units of weight, 4 usable: 3 draws per request on average.
    expect(draws / picks.length).toBeGreaterThan(2.8);
    expect(draws / picks.length).toBeLessThan(3.2);
  });
});

describe('per-request state across retries', () => {
  it('random: 21 misses send the rest of the request to round robin, the retry included (rp->tries)', () => {
    // a and b weight 1, c weight 5: a draw of v takes floor(v * 7), so 0.5 → c, 0.2 → b.
    const peers = [new Peer(server('a')), new Peer(server('b')), new Peer(server('c', { weight: 5 }))];
    let draw = 0.5;
    const random = makeRandom(() => draw);
    const request = newRequest();
    // First attempt: c is full, and every draw lands on it; round robin takes a.
    expect(random(peers, (p) => p.name !== 'unix:/c', request)?.name).toBe('unix:/a');
    // The retry (a tried, c usable again): a draw would take b, but the request is on round robin now.
    draw = 0.2;
    expect(random(peers, (p) => p.name !== 'unix:/a', request)?.name).toBe('unix:/c');
    // A new request draws again.
    expect(random(peers, (p) => p.name !== 'unix:/a', newRequest())?.name).toBe('unix:/b');
  });

  it('ip_hash: a retry goes on from the hash of the last attempt (iphp->hash)', () => {
    const peers = ['a', 'b', 'c', 'd', 'e'].map((name) => new Peer(server(name)));
    const clientAddress = '10.1.2.3';
    // nginx's walk, computed here: hash = (hash * 113 + octet) % 6271 over 10.1.2, from 89.
    const walk: string[] = [];
    let hash = 89;
    for (let i = 0; i < 6; i++) {
      for (const octet of [10, 1, 2]) hash = (hash * 113 + octet) % 6271;
      walk.push(peers[hash % 5]!.name);
    }
    const [first, second] = [...new Set(walk)];
    const request = { ...newRequest(), clientAddress };
    // The first server of the walk is at max_conns: the attempt takes the next one.
    expect(ipHash(peers, (p) => p.name !== first, request)?.name).toBe(second);
    // The retry (second tried, first usable again) goes on along the walk, past first.
    const expected = walk.slice(walk.indexOf(second!) + 1).find((name) => name !== second);
    expect(ipHash(peers, (p) => p.name !== second, request)?.name).toBe(expected);
    expect(expected).not.toBe(first);
  });
});

describe('random two least_conn (ngx_http_upstream_get_random2_peer)', () => {
  /** a (weight 1), b (weight 1), c (weight 2): a draw of v takes floor(v * 4), so 0 → a, 0.25 → b, 0.5 and 0.75 → c. */
  function setup(draws: number[]): { peers: Peer[]; two: ReturnType<typeof makeRandomTwo>; drawn: () => number } {
    const peers = [new Peer(server('a')), new Peer(server('b')), new Peer(server('c', { weight: 2 }))];
    let i = 0;
    const two = makeRandomTwo(() => draws[i++ % draws.length]!);
    return { peers, two, drawn: () => i };
  }
  const A = 0;
  const B = 0.25;
  const C = 0.5;

  it('of two different servers drawn by weight, takes the one with fewer connections per weight', () => {
    const { peers, two } = setup([A, B]);
    peers[0]!.active = 3;
    peers[1]!.active = 1;
    expect(two(peers, all, newRequest())?.name).toBe('unix:/b');
    peers[1]!.active = 4;
    expect(two(peers, all, newRequest())?.name).toBe('unix:/a');
  });

  it('compares per unit of weight, and a tie goes to the second drawn', () => {
    const { peers, two } = setup([A, C]);
    peers[0]!.active = 1;
    peers[2]!.active = 2; // 1 per unit of weight: a tie
    expect(two(peers, all, newRequest())?.name).toBe('unix:/c');
    peers[2]!.active = 3;
    expect(two(peers, all, newRequest())?.name).toBe('unix:/a');
  });

  it('draws again for the same server or an unusable one', () => {
    const { peers, two, drawn } = setup([A, A, B, C]);
    peers[2]!.active = 5;
    expect(two(peers, (p) => p.name !== 'unix:/b', newRequest())?.name).toBe('unix:/a');
    expect(drawn()).toBe(4);
  });

  it('after 21 draws without two usable servers, falls back to round robin', () => {
    const { peers, two, drawn } = setup([A]);
    const onlyA = (p: Peer): boolean => p.name === 'unix:/a';
    expect(two(peers, onlyA, newRequest())?.name).toBe('unix:/a');
    expect(drawn()).toBe(21);
    expect(two(peers, () => false, newRequest())).toBeUndefined();
    expect(drawn()).toBe(42);
  });

  it('with the default source, spreads idle requests over every server', () => {
    const peers = ['a', 'b', 'c'].map((n) => new Peer(server(n)));
    const two = makeRandomTwo();
    const seen = new Set(Array.from({ length: 200 }, () => two(peers, all, newRequest())?.name));
    expect(seen.size).toBe(3);
  });
});
