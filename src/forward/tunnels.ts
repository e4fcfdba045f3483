/** What the registry needs of a tunnel (./tunnel.ts). */
export interface RegisteredTunnel {
  /** Settles once the tunnel has ended. */
  readonly ended: Promise<unknown>;
  /** Graceful close. */
  close(): void;
}

/** Why an upgrade request could not have a slot. */
export type NoSlot = 'limit' | 'closing';

/**
 * Every upgraded connection of the proxy, counted against proxy.max_upgraded and kept so
 * that a stop can close them. A slot is taken when an upgrade request arrives, before any
 * server is contacted, so that a burst of upgrades cannot overshoot the limit while they
 * wait for their 101; it is given back when the request is answered without one, or when
 * its tunnel ends.
 */
export class TunnelRegistry {
  /** proxy.max_upgraded; 0 = unlimited. */
  readonly limit: number;
  readonly #open = new Set<RegisteredTunnel>();
  #slots = 0;
  #closing = false;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Slots in use: upgrade requests waiting for an answer, and open tunnels. */
  get size(): number {
    return this.#slots;
  }

  /** Takes a slot for an upgrade request; says why not when the limit is reached or the proxy is stopping. */
  reserve(): NoSlot | undefined {
    if (this.#closing) return 'closing';
    if (this.limit > 0 && this.#slots >= this.limit) return 'limit';
    this.#slots++;
    return undefined;
  }

  /** Gives back a slot whose request was answered without a tunnel. */
  release(): void {
    this.#slots--;
  }

  /** Registers the tunnel of a reserved slot; the slot is given back when the tunnel ends. */
  add(tunnel: RegisteredTunnel): void {
    this.#open.add(tunnel);
    void tunnel.ended.then(() => {
      this.#open.delete(tunnel);
      this.#slots--;
    });
    // A 101 that arrived while the proxy was stopping: its tunnel is closed at once.
    if (this.#closing) tunnel.close();
  }

  /** Refuses new upgrades and closes every open tunnel gracefully; resolves once all have ended. */
  async close(): Promise<void> {
    this.#closing = true;
    const open = [...this.#open];
    for (const tunnel of open) tunnel.close();
    await Promise.all(open.map((tunnel) => tunnel.ended));
  }
}
