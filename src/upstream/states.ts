import type { ServerConfig } from '../config/types.js';
import { formatAddress } from './address.js';
import { ServerState } from './peer.js';

/**
 * The state of every server of one upstream block, by address, kept across reloads: a
 * server whose address stays in the block keeps its passive health (fails within
 * fail_timeout), its active health and its count of requests in flight, whatever else of
 * its line changed, as nginx Plus keeps a server's state in the upstream's shared memory
 * zone across a reload. The address is the key because that is what the health is about:
 * a new weight does not make a failing socket work again.
 */
export class ServerStates {
  readonly #states = new Map<string, ServerState>();
  readonly #onSlotFreed: () => void;

  /** `onSlotFreed`: a request to one of the servers ended (the queue may dispatch a waiting one). */
  constructor(onSlotFreed: () => void = () => {}) {
    this.#onSlotFreed = onSlotFreed;
  }

  /**
   * The states for a configuration's servers, in order: the kept one for each address, a
   * new one for a new address. The same address listed twice gets two states, as nginx
   * makes two peers of it.
   */
  assign(servers: readonly ServerConfig[]): ServerState[] {
    return keys(servers).map((key) => {
      let state = this.#states.get(key);
      if (state === undefined) {
        state = new ServerState(this.#onSlotFreed);
        this.#states.set(key, state);
      }
      return state;
    });
  }

  /**
   * The configuration with `servers` took effect: the states of addresses it does not list
   * are forgotten (requests still running on them hold theirs until they end).
   */
  retain(servers: readonly ServerConfig[]): void {
    const kept = new Set(keys(servers));
    for (const key of this.#states.keys()) if (!kept.has(key)) this.#states.delete(key);
  }
}

/** Each server's key: its address, with "#2", "#3" for the second and third line of one address. */
function keys(servers: readonly ServerConfig[]): string[] {
  const seen = new Set<string>();
  return servers.map((server) => {
    const address = formatAddress(server.address);
    let key = address;
    for (let n = 2; seen.has(key); n++) key = `${address}#${n}`;
    seen.add(key);
    return key;
  });
}
