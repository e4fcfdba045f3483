import net from 'node:net';
import { balancerFor } from '../balancer/index.js';
import { formatListen } from '../config/listen.js';
import type { ListenAddress, StreamServerConfig } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import { listen } from '../server/listen.js';
import { type HealthEvent, UpstreamGroup } from '../upstream/group.js';
import { type StreamContext, StreamSession } from './session.js';

export interface StreamServerOptions {
  readonly errorLog: Logger;
  readonly accessLog: Logger | undefined;
  readonly onHealthEvent: (event: HealthEvent) => void;
}

/**
 * One entry of the `stream` list: its listeners, its upstream group (passive health is per
 * stream server, as each nginx `upstream` block has its own), and the sessions open on it.
 */
export class StreamServer {
  readonly config: StreamServerConfig;
  readonly #ctx: StreamContext;
  readonly #listeners: net.Server[] = [];
  /** Every session not yet ended, so that a stop can wait for them (and later work can end them). */
  readonly #sessions = new Set<StreamSession>();
  /** Who waits in close() for the last session to end. */
  readonly #drainWaiters: (() => void)[] = [];

  constructor(config: StreamServerConfig, options: StreamServerOptions) {
    this.config = config;
    this.#ctx = {
      config,
      group: new UpstreamGroup(config.upstream, { onHealthEvent: options.onHealthEvent }),
      balancer: balancerFor(config.upstream.balance),
      errorLog: options.errorLog,
      accessLog: options.accessLog,
    };
  }

  /** The upstream group: its servers and their passive-health state, for /status. */
  get group(): UpstreamGroup {
    return this.#ctx.group;
  }

  /** The listen addresses as nginx prints them ("*:9000", "unix:/run/x.sock"). */
  get addresses(): readonly string[] {
    return this.config.listen.map(formatListen);
  }

  /** Binds every listen address; rejects with a ListenError (what did bind stays open: close() it). */
  async start(): Promise<void> {
    for (const address of this.config.listen) {
      const name = listenerName(address);
      // pauseOnConnect: nothing is read from a client before its upstream connection is up.
      // noDelay: nginx's `tcp_nodelay on`, the default for both sides of a stream session.
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (client) =>
        this.#accept(client, name),
      );
      this.#listeners.push(server);
      await listen(server, address);
    }
  }

  /**
   * Stops accepting (a Unix-socket listener's file is removed) and resolves once every open
   * session has ended by itself, as nginx's graceful stop lets stream sessions run on.
   */
  async close(): Promise<void> {
    for (const server of this.#listeners) if (server.listening) server.close();
    if (this.#sessions.size === 0) return;
    await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
  }

  #accept(client: net.Socket, listener: string): void {
    const session = new StreamSession(this.#ctx, client, listener, () => {
      this.#sessions.delete(session);
      if (this.#sessions.size === 0) for (const resolve of this.#drainWaiters.splice(0)) resolve();
    });
    this.#sessions.add(session);
    session.start();
  }
}

/**
 * A listener as nginx names it in a stream error line ("server: 0.0.0.0:9000"): the
 * address it bound, 0.0.0.0 for a bare port.
 */
function listenerName(address: ListenAddress): string {
  if (address.kind === 'tcp' && address.host === undefined) return `0.0.0.0:${address.port}`;
  return formatListen(address);
}
