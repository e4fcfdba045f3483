import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

/**
 * How much of a request body is kept in memory so that it can be sent again to the next
 * server after a failure once it was sent (nginx always can: it buffers the whole body,
 * to disk if need be). A streamed body past this is not replayed; its request is then
 * not retried once the body started going out, like nginx's `proxy_request_buffering off`.
 */
export const REPLAY_LIMIT_BYTES = 64 * 1024;

/** nginx lingering_time: the longest an unwanted body is read and dropped before closing. */
const LINGERING_TIME_MS = 30_000;
/** nginx lingering_timeout: the longest wait for more of an unwanted body. */
const LINGERING_TIMEOUT_MS = 5_000;

export type BodyEvent = { kind: 'too_large'; bytes: number } | { kind: 'send_timeout' };

/**
 * The client's request body, read on demand by one upstream attempt at a time: bytes flow
 * from the client only as fast as the upstream takes them (backpressure both ways), and
 * `client_max_body_size` is enforced as they arrive, for bodies without Content-Length.
 */
export class RequestBody {
  readonly #req: IncomingMessage;
  readonly #maxBytes: number;
  readonly #sendTimeoutMs: number;
  readonly #onEvent: (event: BodyEvent) => void;
  /** Every chunk read so far, while they fit in REPLAY_LIMIT_BYTES; undefined once they don't. */
  #replay: Buffer[] | undefined = [];
  #replayBytes = 0;
  #received = 0;
  #ended = false;
  #current: Readable | undefined;
  #sendTimer: NodeJS.Timeout | undefined;

  constructor(
    req: IncomingMessage,
    limits: { maxBytes: number; sendTimeoutMs: number },
    onEvent: (event: BodyEvent) => void,
  ) {
    this.#req = req;
    this.#maxBytes = limits.maxBytes;
    this.#sendTimeoutMs = limits.sendTimeoutMs;
    this.#onEvent = onEvent;
    req.on('data', this.#onData);
    req.on('end', this.#onEnd);
    // Attaching 'data' switches to flowing mode; stay paused until an attempt reads.
    req.pause();
  }

  /** True while a new attempt can be given the whole body from its first byte. */
  get replayable(): boolean {
    return this.#received === 0 || this.#replay !== undefined;
  }

  /** A fresh stream of the body for one attempt; the previous attempt's stream is let go. */
  open(): Readable {
    this.release();
    const stream = new Readable({
      read: () => {
        this.#clearSendTimer();
        if (this.#current === stream && !this.#ended) this.#req.resume();
      },
    });
    for (const chunk of this.#replay ?? []) stream.push(chunk);
    if (this.#ended) stream.push(null);
    this.#current = stream;
    return stream;
  }

  /** Whether the client has sent the whole body. */
  get complete(): boolean {
    return this.#ended;
  }

  /**
   * The response is decided while the client is still sending (an early answer from the
   * app, a 413, an error): read and drop the rest, so that the client can finish writing
   * and read the answer. Closing with its data unread would make the kernel send a reset,
   * and the client could lose the answer. Bounded as nginx's lingering close is: the
   * connection is closed after LINGERING_TIME_MS in all, or LINGERING_TIMEOUT_MS without data.
   */
  discard(): void {
    this.release();
    const req = this.#req;
    req.off('data', this.#onData);
    if (this.#ended || req.destroyed) return;
    const giveUp = (): void => {
      req.socket.destroy();
    };
    const overall = setTimeout(giveUp, LINGERING_TIME_MS).unref();
    const idle = setTimeout(giveUp, LINGERING_TIMEOUT_MS).unref();
    req.on('data', () => {
      idle.refresh();
    });
    const stop = (): void => {
      clearTimeout(overall);
      clearTimeout(idle);
    };
    req.once('end', stop);
    req.once('close', stop);
    req.resume();
  }

  /** Stops feeding the current attempt (it failed or finished); the client is paused. */
  release(): void {
    this.#clearSendTimer();
    this.#current = undefined;
    this.#req.pause();
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#received += chunk.length;
    if (this.#maxBytes > 0 && this.#received > this.#maxBytes) {
      this.#req.pause();
      this.#onEvent({ kind: 'too_large', bytes: this.#received });
      return;
    }
    if (this.#replay !== undefined) {
      this.#replayBytes += chunk.length;
      if (this.#replayBytes <= REPLAY_LIMIT_BYTES) this.#replay.push(chunk);
      else this.#replay = undefined;
    }
    const stream = this.#current;
    if (stream === undefined) {
      this.#req.pause();
    } else if (!stream.push(chunk)) {
      this.#req.pause();
      this.#armSendTimer();
    }
  };

  /**
   * proxy_send_timeout: the upstream has stopped taking the body. Measured between two
   * successive writes, not over the whole transfer, as nginx does.
   */
  #armSendTimer(): void {
    if (this.#sendTimeoutMs === 0 || this.#sendTimer !== undefined) return;
    this.#sendTimer = setTimeout(() => {
      this.#sendTimer = undefined;
      this.#onEvent({ kind: 'send_timeout' });
    }, this.#sendTimeoutMs);
    this.#sendTimer.unref();
  }

  #clearSendTimer(): void {
    if (this.#sendTimer === undefined) return;
    clearTimeout(this.#sendTimer);
    this.#sendTimer = undefined;
  }

  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#current?.push(null);
  };
}
