import http from 'node:http';
import type net from 'node:net';
import { formatListen } from '../config/listen.js';
import type { ListenAddress } from '../config/types.js';
import { listen } from './listen.js';

/** How often a closing HTTP listener closes the client connections that have gone idle. */
const IDLE_SWEEP_MS = 50;

/** What listens on an address: the HTTP proxy or a stream server. */
export type ListenerKind = 'http' | 'stream';

export interface WantedListener {
  readonly address: ListenAddress;
  readonly kind: ListenerKind;
}

/** One bound address. */
export class Listener {
  readonly address: ListenAddress;
  readonly kind: ListenerKind;
  readonly server: net.Server;
  /** Set once it stops accepting: an HTTP response then says `Connection: close`. */
  closing = false;
  #closed: Promise<void> | undefined;

  constructor(address: ListenAddress, kind: ListenerKind, server: net.Server) {
    this.address = address;
    this.kind = kind;
    this.server = server;
  }

  /**
   * Stops accepting (a unix: listener's socket file is removed) and resolves once every
   * connection it accepted is closed. An HTTP connection is closed as soon as its response
   * is done, as nginx's graceful stop does, instead of lingering until the keep-alive
   * timeout: responses now say Connection: close, and those already under way are swept
   * once they go idle. Upgraded connections and stream sessions run on until they end.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (!(this.server instanceof http.Server)) return closed;
    const server = this.server;
    server.closeIdleConnections();
    const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
    await closed;
    clearInterval(sweep);
  }

  /** Closes every HTTP connection it accepted now, requests in flight included. */
  destroy(): void {
    if (this.server instanceof http.Server) this.server.closeAllConnections();
  }
}

/**
 * The proxy's listen addresses across reloads. An address kept by a reload keeps its
 * socket: nothing is refused while the configuration changes, and a client's keep-alive
 * connection simply carries its next request under the new configuration. New addresses
 * are bound; removed ones stop accepting and let their connections finish.
 */
export class Listeners {
  /** By the address as nginx prints it ("*:8080", "unix:/run/sockproxy.sock"). */
  readonly #bound = new Map<string, Listener>();
  /** Listeners a reload removed whose connections have not all ended. */
  readonly #draining = new Set<Listener>();
  readonly #create: (wanted: WantedListener, listener: () => Listener) => net.Server;

  /**
   * `create` makes the server for an address; its handlers may read the Listener it
   * belongs to (`closing`) through the function it is given.
   */
  constructor(create: (wanted: WantedListener, listener: () => Listener) => net.Server) {
    this.#create = create;
  }

  /** The bound listener of an address, if any. */
  get(address: ListenAddress): Listener | undefined {
    return this.#bound.get(formatListen(address));
  }

  /**
   * Binds every wanted address that is not bound yet. All or nothing: if one cannot be
   * bound, those bound by this call are closed again and the ListenError is thrown, with
   * the listeners in force untouched. An address that changes from HTTP to stream (or
   * back) is closed first, then bound anew.
   */
  async bind(wanted: readonly WantedListener[]): Promise<void> {
    const added: Listener[] = [];
    try {
      for (const entry of wanted) {
        const key = formatListen(entry.address);
        const current = this.#bound.get(key);
        if (current?.kind === entry.kind) continue;
        if (current !== undefined) this.#retire(key, current);
        let listener: Listener | undefined;
        const server = this.#create(entry, () => listener!);
        listener = new Listener(entry.address, entry.kind, server);
        await listen(server, entry.address);
        added.push(listener);
        this.#bound.set(key, listener);
      }
    } catch (err) {
      for (const listener of added) {
        this.#bound.delete(formatListen(listener.address));
        listener.server.close();
      }
      throw err;
    }
  }

  /** Closes every bound address that `wanted` does not have; their connections run on. */
  unbindOthers(wanted: readonly WantedListener[]): void {
    const keep = new Set(wanted.map((entry) => formatListen(entry.address)));
    for (const [key, listener] of this.#bound) if (!keep.has(key)) this.#retire(key, listener);
  }

  /** Open client connections on the listeners of `kind`, those still draining after a reload included. */
  async connections(kind: ListenerKind): Promise<number> {
    const listeners = [...this.#bound.values(), ...this.#draining].filter((listener) => listener.kind === kind);
    const counts = await Promise.all(
      listeners.map(({ server }) => new Promise<number>((resolve) => server.getConnections((err, count) => resolve(err ? 0 : count)))),
    );
    return counts.reduce((sum, count) => sum + count, 0);
  }

  /** A graceful stop: every listener stops accepting; resolves once all their connections have ended. */
  async close(): Promise<void> {
    for (const [key, listener] of this.#bound) this.#retire(key, listener);
    await Promise.all([...this.#draining].map((listener) => listener.close()));
  }

  /** Closes every HTTP connection now, requests in flight included. */
  destroy(): void {
    for (const listener of [...this.#bound.values(), ...this.#draining]) listener.destroy();
  }

  #retire(key: string, listener: Listener): void {
    this.#bound.delete(key);
    this.#draining.add(listener);
    void listener.close().then(() => this.#draining.delete(listener));
  }
}
