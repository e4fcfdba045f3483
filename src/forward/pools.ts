import { Pool } from 'undici';
import type { ProxySettings, SocketAddress, UpstreamConfig } from '../config/types.js';
import type { Peer } from '../upstream/peer.js';

/**
 * Gunicorn closes an idle keep-alive connection after 2 s (its `keepalive` default) and
 * sends no Keep-Alive hint. Idling ours out sooner means we close first, instead of
 * writing a request into a connection the app is closing (the occasional 502 on POST
 * that nginx users meet with upstream keepalive).
 */
export const UPSTREAM_IDLE_TIMEOUT_MS = 1_500;
/**
 * undici subtracts this from a server's `Keep-Alive: timeout=N` hint. Its default (2 s)
 * would turn Node's and the sample app's `timeout=2` hint into "never reuse".
 */
const KEEPALIVE_HINT_MARGIN_MS = 500;

/**
 * One undici Pool per upstream server, so connections to a server are reused across
 * requests. Everything that talks to an upstream goes through here.
 */
export class PoolRegistry {
  readonly #pools = new Map<Peer, Pool>();
  readonly #keepalive: number;
  readonly #proxy: ProxySettings;

  constructor(upstream: UpstreamConfig, proxy: ProxySettings) {
    this.#keepalive = upstream.keepalive;
    this.#proxy = proxy;
  }

  poolFor(peer: Peer): Pool {
    let pool = this.#pools.get(peer);
    if (pool === undefined) {
      pool = this.#create(peer.config.address);
      this.#pools.set(peer, pool);
    }
    return pool;
  }

  /**
   * nginx `keepalive N` caps the idle connections kept per server, not the active ones:
   * past N in flight, the extra connection is closed once its response is done.
   */
  shouldCloseAfter(peer: Peer): boolean {
    // Called before the new request is counted in `active`.
    return peer.active >= this.#keepalive;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.close()));
    this.#pools.clear();
  }

  #create(address: SocketAddress): Pool {
    const origin =
      address.kind === 'unix'
        ? 'http://localhost'
        : `http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
    return new Pool(origin, {
      connect: {
        timeout: this.#proxy.connectTimeoutMs,
        ...(address.kind === 'unix' ? { socketPath: address.path } : {}),
      },
      // undici's pipelining 0 means "no keep-alive": nginx's `keepalive 0`.
      pipelining: this.#keepalive === 0 ? 0 : 1,
      keepAliveTimeout: UPSTREAM_IDLE_TIMEOUT_MS,
      keepAliveMaxTimeout: UPSTREAM_IDLE_TIMEOUT_MS,
      keepAliveTimeoutThreshold: KEEPALIVE_HINT_MARGIN_MS,
      // proxy_read_timeout: the time between two reads, before and after the headers.
      headersTimeout: this.#proxy.readTimeoutMs,
      bodyTimeout: this.#proxy.readTimeoutMs,
    });
  }
}
