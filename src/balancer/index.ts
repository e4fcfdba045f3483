import type { BalanceMethod } from '../config/types.js';
import { ipHash } from './ip-hash.js';
import { leastConn } from './least-conn.js';
import { makeRandom } from './random.js';
import { roundRobin } from './round-robin.js';
import type { Balancer } from './types.js';

export type { Balancer, BalanceContext } from './types.js';

export function balancerFor(method: BalanceMethod): Balancer {
  switch (method) {
    case 'round_robin':
      return roundRobin;
    case 'least_conn':
      return leastConn;
    case 'ip_hash':
      return ipHash;
    case 'random':
      return makeRandom();
  }
}
