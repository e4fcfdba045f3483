/** What the registry needs of a tunnel (./tunnel.ts). */
export interface RegisteredTunnel {
  /** Settles once the tunnel has ended. */
  readonly ended: Promise<unknown>;
  /** Closes both connections now. */
  destroy(): void;
}

/** Why an upgrade request could not have a slot. */
export type NoSlot = 'limit' | 'closing';

/**
 * Every upgraded connection of the proxy, counted against proxy.max_upgraded and kept so
 * that a stop that runs out of time can close them. The registry outlives reloads: tunnels
 * opened under any configuration count against the limit in force. A slot is taken when an upgrade request arrives, before any
 * server is contacted, so that a burst of upgrades cannot overshoot the limit while they
 * wait for their 101; it is given back when the request is answered without one, or when
 * its tunnel ends.
 */
export class TunnelRegistry {
  /** proxy.max_upgraded; 0 = unlimited. A reload may change it: tunnels above a lowered limit run on. */
  limit: number;
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
  }

  /**
   * A graceful stop: new upgrades are refused, open tunnels run on (nginx keeps them until
   * worker_shutdown_timeout). Resolves once every open tunnel has ended by itself.
   */
  async stopAccepting(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#open].map((tunnel) => tunnel.ended));
  }

  /** The stop ran out of time: every open tunnel is closed now. Resolves once they have ended. */
  async destroy(): Promise<void> {
    this.#closing = true;
    const open = [...this.#open];
    for (const tunnel of open) tunnel.destroy();
    await Promise.all(open.map((tunnel) => tunnel.ended));
  }
}
