import type net from 'node:net';

export type Side = 'client' | 'upstream';

/** How a relay ended. */
export type RelayEnd =
  /** Both directions were closed in order (each side's FIN passed on); `last` is the side that closed second. */
  | { readonly kind: 'closed'; readonly last: Side }
  /** proxy_timeout: nothing was read or written, on either connection, for that long. */
  | { readonly kind: 'idle' }
  /** A read or write on `side`'s connection failed (a reset, a broken pipe). */
  | { readonly kind: 'error'; readonly side: Side; readonly error: NodeJS.ErrnoException };

/**
 * Relays bytes unchanged between a client and an upstream connection, both opened with
 * allowHalfOpen, until both directions are done, and calls `done` once:
 *
 * - Backpressure both ways: pipe() stops reading one side while the other has more than
 *   its high-water mark (16 KiB) unwritten, so a slow reader holds the proxy to a few
 *   buffers, as nginx's proxy_buffer_size does, and the kernel's socket buffers push back
 *   on the sender.
 * - Half-close: one side's FIN is passed on as shutdown(SHUT_WR) on the other (pipe's
 *   end()), and the opposite direction keeps flowing until its own FIN: a client that
 *   sends a request and shuts down its write side still gets the whole reply. (nginx does
 *   this only with `proxy_half_close on`; by default it closes both connections at the
 *   first FIN, and the reply is lost.)
 * - `idleTimeoutMs` (proxy_timeout) is re-armed by every read and every drained write on
 *   either connection, as nginx re-arms its timer after each read or write event.
 * - An error on either connection ends both at once: what is left cannot be delivered.
 */
export function relay(client: net.Socket, upstream: net.Socket, idleTimeoutMs: number, done: (end: RelayEnd) => void): void {
  let ended = false;
  let open = 2;
  const timer = setTimeout(() => finish({ kind: 'idle' }), idleTimeoutMs);
  const activity = (): void => {
    timer.refresh();
  };

  function finish(end: RelayEnd): void {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.destroy();
    upstream.destroy();
    done(end);
  }

  for (const [socket, side] of [
    [client, 'client'],
    [upstream, 'upstream'],
  ] as const) {
    socket.on('data', activity);
    socket.on('drain', activity);
    socket.on('error', (error: NodeJS.ErrnoException) => finish({ kind: 'error', side, error }));
    // With allowHalfOpen a socket closes once it has both received and sent its FIN.
    socket.once('close', () => {
      if (--open === 0) finish({ kind: 'closed', last: side });
    });
  }
  client.pipe(upstream);
  upstream.pipe(client);
}
