import type net from 'node:net';
import { balancerFor } from '../balancer/index.js';
import { formatListen } from '../config/listen.js';
import type { ListenAddress, StreamServerConfig } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { SessionObserver } from '../observe/metrics.js';
import { type HealthEvent, UpstreamGroup } from '../upstream/group.js';
import type { ServerStates } from '../upstream/states.js';
import { type StreamContext, StreamSession } from './session.js';

export interface StreamServerOptions {
  readonly errorLog: Logger;
  readonly accessLog: Logger | undefined;
  /** Counts sessions for the metrics and /status; none when the admin endpoint is off. */
  readonly observer?: SessionObserver | undefined;
  readonly onHealthEvent: (event: HealthEvent) => void;
  /** Where its servers' state is kept across reloads (a new set by default). */
  readonly states?: ServerStates;
}

/**
 * One entry of the `stream` list under one configuration: its upstream group (passive
 * health is per stream server, as each nginx `upstream` block has its own) and the
 * sessions it accepted. Its listeners are the proxy's (src/server/listeners.ts), which
 * hand it each connection; after a reload the sessions it accepted run on with it.
 */
export class StreamServer {
  readonly config: StreamServerConfig;
  readonly #ctx: StreamContext;
  /** Every session not yet ended, so that a stop can wait for them or end them. */
  readonly #sessions = new Set<StreamSession>();
  /** Who waits in drained() for the last session to end. */
  readonly #drainWaiters: (() => void)[] = [];

  constructor(config: StreamServerConfig, options: StreamServerOptions) {
    this.config = config;
    this.#ctx = {
      config,
      group: new UpstreamGroup(config.upstream, { onHealthEvent: options.onHealthEvent, states: options.states }),
      balancer: balancerFor(config.upstream.balance),
      errorLog: options.errorLog,
      accessLog: options.accessLog,
      observer: options.observer,
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

  /** A client connection accepted on `listener` (nginx's name for it, see listenerName). */
  accept(client: net.Socket, listener: string): void {
    const session = new StreamSession(this.#ctx, client, listener, () => {
      this.#sessions.delete(session);
      if (this.#sessions.size === 0) for (const resolve of this.#drainWaiters.splice(0)) resolve();
    });
    this.#sessions.add(session);
    session.start();
  }

  /** Resolves once every session it accepted has ended by itself, as nginx's graceful stop lets stream sessions run on. */
  async drained(): Promise<void> {
    if (this.#sessions.size === 0) return;
    await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
  }

  /** The stop ran out of time: every session is closed now. Resolves once they have ended (and are logged). */
  destroy(): Promise<void> {
    for (const session of this.#sessions) session.destroy();
    return this.drained();
  }
}

/**
 * A listener as nginx names it in a stream error line ("server: 0.0.0.0:9000"): the
 * address it bound, 0.0.0.0 for a bare port.
 */
export function listenerName(address: ListenAddress): string {
  if (address.kind === 'tcp' && address.host === undefined) return `0.0.0.0:${address.port}`;
  return formatListen(address);
}
