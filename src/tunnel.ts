import type { Socket } from 'node:net';

/** The side of a tunnel something happened on. */
export type TunnelSide = 'client' | 'upstream';

/** Why a tunnel ended: the first cause wins (what follows from it is not a cause). */
export type TunnelEnding =
  /**
   * The connections closed: both in order (each FIN passed on), `side` the one that sent
   * the last FIN; or `side`'s connection closed before both its directions were done.
   */
  | { readonly kind: 'closed'; readonly side: TunnelSide }
  /** Nothing went either way for proxy_read_timeout (the stream proxy's proxy_timeout). */
  | { readonly kind: 'idle_timeout' }
  /** A write to `side` waited longer than proxy_send_timeout (proxy_timeout): it stopped reading. */
  | { readonly kind: 'send_timeout'; readonly side: TunnelSide }
  | { readonly kind: 'error'; readonly side: TunnelSide; readonly error: NodeJS.ErrnoException }
  /** The proxy closed it: a stop reached shutdown_timeout. */
  | { readonly kind: 'shutdown' };

export interface TunnelTimeouts {
  /** proxy_read_timeout: closed after this long without a byte in either direction. */
  readonly idleMs: number;
  /** proxy_send_timeout: closed when a write waits this long for the other side to read. */
  readonly sendMs: number;
}

export interface TunnelResult {
  readonly ending: TunnelEnding;
  /** Bytes relayed from the upstream to the client (nginx's $body_bytes_sent for a 101). */
  readonly bytesToClient: number;
  readonly bytesToUpstream: number;
}

/**
 * Bytes both ways between a client and an upstream connection until both have closed: an
 * upgraded HTTP connection (WebSocket), as nginx's ngx_http_upstream_process_upgraded
 * relays it, and a stream session, as ngx_stream_proxy_process does. A side that is not
 * reading pauses the other (backpressure), so a slow reader holds the proxy to a socket
 * buffer or so. One side's FIN is passed on and the other direction goes on (half-close,
 * RFC 9293 §3.6) until that side ends too; nginx closes an upgraded connection at the
 * first end of stream, and a stream session too unless `proxy_half_close on`. Idle
 * tunnels are closed after `idleMs`, re-armed by a byte in either direction, as nginx's
 * read timer is.
 */
export class Tunnel {
  /** Settles once both connections are closed. */
  readonly ended: Promise<TunnelResult>;

  readonly #client: Socket;
  readonly #upstream: Socket;
  readonly #timeouts: TunnelTimeouts;
  readonly #idleTimer: NodeJS.Timeout;
  readonly #sendTimers = new Map<TunnelSide, NodeJS.Timeout>();
  #ending: TunnelEnding | undefined;
  #bytesToClient = 0;
  #bytesToUpstream = 0;
  #open = 2;
  /** The side whose FIN came last, once one has come. */
  #lastEnded: TunnelSide = 'client';
  #resolve!: (result: TunnelResult) => void;

  /**
   * `head`: what the client sent after its request head, before the 101 (nginx forwards
   * this preread to the upstream first).
   */
  constructor(client: Socket, upstream: Socket, head: Buffer, timeouts: TunnelTimeouts) {
    this.#client = client;
    this.#upstream = upstream;
    this.#timeouts = timeouts;
    this.ended = new Promise((resolve) => (this.#resolve = resolve));
    this.#idleTimer = setTimeout(() => this.#fail({ kind: 'idle_timeout' }), timeouts.idleMs).unref();
    // A connection from net.connect() ends its writable side as soon as it reads the
    // peer's FIN; the tunnel decides that itself (the client's listener already allows it).
    upstream.allowHalfOpen = true;
    if (head.length > 0) client.unshift(head);
    this.#watch(client, 'client');
    this.#watch(upstream, 'upstream');
    this.#relay(client, upstream, 'upstream');
    this.#relay(upstream, client, 'client');
    // A client accepted paused (the stream proxy's pauseOnConnect) reads from now on.
    client.resume();
  }

  /** Closes both connections now. */
  destroy(): void {
    this.#ending ??= { kind: 'shutdown' };
    this.#client.destroy();
    this.#upstream.destroy();
  }

  /**
   * Copies `from` into `to`: pauses `from` while `to` holds more than its buffer (and arms
   * send_timeout on that write), passes `from`'s FIN on as `to`'s.
   */
  #relay(from: Socket, to: Socket, toSide: TunnelSide): void {
    from.on('data', (chunk: Buffer) => {
      this.#idleTimer.refresh();
      if (toSide === 'client') this.#bytesToClient += chunk.length;
      else this.#bytesToUpstream += chunk.length;
      if (to.write(chunk)) return;
      from.pause();
      const timer = setTimeout(() => this.#fail({ kind: 'send_timeout', side: toSide }), this.#timeouts.sendMs).unref();
      this.#sendTimers.set(toSide, timer);
      to.once('drain', () => {
        clearTimeout(timer);
        this.#sendTimers.delete(toSide);
        from.resume();
      });
    });
    from.once('end', () => {
      this.#lastEnded = toSide === 'client' ? 'upstream' : 'client';
      to.end();
    });
  }

  #watch(socket: Socket, side: TunnelSide): void {
    socket.on('error', (error: NodeJS.ErrnoException) => this.#fail({ kind: 'error', side, error }));
    const onClose = (): void => {
      // A connection destroyed before both its directions were done (a reset, an abort)
      // leaves nothing for the other to carry on with.
      if (!(socket.readableEnded && socket.writableFinished)) this.#fail({ kind: 'closed', side });
      if (--this.#open === 0) this.#finish();
    };
    // A client that went away while its upstream was being connected has closed already.
    if (socket.closed) queueMicrotask(onClose);
    else socket.once('close', onClose);
  }

  /** The tunnel cannot go on: remember why (if it is the first cause) and close both sides. */
  #fail(ending: TunnelEnding): void {
    this.#ending ??= ending;
    this.#client.destroy();
    this.#upstream.destroy();
  }

  #finish(): void {
    clearTimeout(this.#idleTimer);
    for (const timer of this.#sendTimers.values()) clearTimeout(timer);
    const ending = this.#ending ?? { kind: 'closed', side: this.#lastEnded };
    this.#resolve({ ending, bytesToClient: this.#bytesToClient, bytesToUpstream: this.#bytesToUpstream });
  }
}
