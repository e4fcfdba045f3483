import type { Socket } from 'node:net';
import { buildConnector, Client, type Dispatcher, Pool } from 'undici';
import type { ProxySettings, SocketAddress, UpstreamConfig } from '../config/types.js';
import type { Peer } from '../upstream/peer.js';
import { watchConnection } from './upstream-sockets.js';

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
  readonly #upstream: UpstreamConfig;
  readonly #proxy: ProxySettings;

  constructor(upstream: UpstreamConfig, proxy: ProxySettings) {
    this.#upstream = upstream;
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
    return peer.active >= this.#upstream.keepalive;
  }

  /**
   * A one-request connection of its own, for a request that lost the keep-alive race on a
   * reused one: the pool might hand it another idle connection the app is closing too.
   */
  freshConnection(peer: Peer): Dispatcher {
    const client = new Client(this.#origin(peer.config.address), { ...this.#options(peer.config.address), pipelining: 0 });
    // The caller dispatches at once, in this same task; close() then lets that one request finish.
    queueMicrotask(() => void client.close());
    return client;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.close()));
    this.#pools.clear();
  }

  #create(address: SocketAddress): Pool {
    return new Pool(this.#origin(address), this.#options(address));
  }

  #origin(address: SocketAddress): string {
    return address.kind === 'unix'
      ? 'http://localhost'
      : `http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
  }

  #options(address: SocketAddress): Pool.Options {
    const { keepalive, keepaliveRequests } = this.#upstream;
    const connector = buildConnector({
      timeout: this.#proxy.connectTimeoutMs,
      ...(address.kind === 'unix' ? { socketPath: address.path } : {}),
    });
    return {
      connect: (options, callback) => {
        connector(options, (...result) => {
          if (result[0] === null) watchConnection(result[1] as Socket);
          callback(...result);
        });
      },
      // undici's pipelining 0 means "no keep-alive": nginx's `keepalive 0`, or one request per connection.
      pipelining: keepalive === 0 || keepaliveRequests === 1 ? 0 : 1,
      // keepalive_timeout, also as the ceiling on the app's own Keep-Alive hint.
      keepAliveTimeout: this.#upstream.keepaliveTimeoutMs,
      keepAliveMaxTimeout: this.#upstream.keepaliveTimeoutMs,
      keepAliveTimeoutThreshold: KEEPALIVE_HINT_MARGIN_MS,
      // undici closes a connection on the request after the limit (its counter is checked
      // before it is incremented), so N - 1 makes N requests per connection, as nginx's.
      maxRequestsPerClient: keepaliveRequests - 1,
      // proxy_buffer_size: a larger header block is "upstream sent too big header" (invalid_header).
      maxHeaderSize: this.#proxy.bufferSizeBytes,
      // proxy_read_timeout: the time between two reads, before and after the headers.
      headersTimeout: this.#proxy.readTimeoutMs,
      bodyTimeout: this.#proxy.readTimeoutMs,
    };
  }
}
