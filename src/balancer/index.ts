import type { Balance } from '../config/types.js';
import { makeConsistentHash, makeHash } from './hash.js';
import { ipHash } from './ip-hash.js';
import { leastConn } from './least-conn.js';
import { makeRandom, makeRandomTwo } from './random.js';
import { roundRobin } from './round-robin.js';
import type { Balancer } from './types.js';

export type { Balancer, BalanceContext } from './types.js';

export function balancerFor(balance: Balance): Balancer {
  switch (balance.method) {
    case 'round_robin':
      return roundRobin;
    case 'least_conn':
      return leastConn;
    case 'ip_hash':
      return ipHash;
    case 'hash':
      return balance.consistent ? makeConsistentHash(balance.key) : makeHash(balance.key);
    case 'random':
      return balance.two ? makeRandomTwo() : makeRandom();
  }
}
