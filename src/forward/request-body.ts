import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

/**
 * A request body as the upstream attempts see it: a copy from its first byte for each
 * attempt. Buffered (./buffered-body.ts, proxy_request_buffering on) or streamed from the
 * client (StreamedBody below, off).
 */
export interface UpstreamBody {
  /** The body for one attempt; the previous attempt's copy is let go. */
  open(): Readable | Buffer;
  /** Whether `open()` can still give the whole body. */
  readonly replayable: boolean;
  /** The Content-Length to send: known for a buffered body; undefined keeps the client's framing. */
  readonly length: number | undefined;
  /** The attempt reading the body is over. */
  release(): void;
  /** The request is over: memory and temp file are freed. */
  dispose(): void;
}

/** nginx lingering_time: the longest an unwanted body is read and dropped before closing. */
const LINGERING_TIME_MS = 30_000;
/** nginx lingering_timeout: the longest wait for more of an unwanted body. */
const LINGERING_TIMEOUT_MS = 5_000;

/**
 * proxy_send_timeout: undici pauses a body stream while the upstream's socket does not
 * take more; a pause longer than the timeout is the upstream's failure. Measured between
 * two successive writes, not over the whole transfer, as nginx does.
 */
export function watchSendTimeout(stream: Readable, timeoutMs: number, onTimeout: () => void): void {
  let timer: NodeJS.Timeout | undefined;
  const stop = (): void => {
    clearTimeout(timer);
    timer = undefined;
  };
  stream.on('pause', () => {
    if (timer === undefined) timer = setTimeout(onTimeout, timeoutMs).unref();
  });
  stream.on('resume', stop);
  stream.once('end', stop);
  stream.once('close', stop);
}

/**
 * The answer was decided while the client is still sending its body (a 413, an early
 * answer from the app, an error): read and drop the rest, so that the client can finish
 * writing and read the answer. Closing with its data unread would make the kernel send a
 * reset, and the client could lose the answer. Bounded as nginx's lingering close is: the
 * connection is closed after LINGERING_TIME_MS in all, or LINGERING_TIMEOUT_MS without data.
 */
export function discardRestOfBody(req: IncomingMessage): void {
  req.removeAllListeners('data');
  if (req.complete || req.destroyed) return;
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

export interface TooLarge {
  readonly kind: 'too_large';
  readonly bytes: number;
}

export interface BodyTimedOut {
  readonly kind: 'timeout';
}

/**
 * proxy_request_buffering off: the body flows from the client only as fast as the
 * upstream takes it (backpressure both ways), and client_max_body_size is enforced as
 * bytes arrive, for bodies without Content-Length. As in nginx, a request whose body
 * started going out is not sent to another server.
 *
 * client_body_timeout runs while the upstream waits for more of the body and the client
 * sends none, as nginx's timer on the client's read (ngx_http_do_read_non_buffered_client_request_body);
 * not while the upstream is not taking the body (that is proxy_send_timeout's), nor
 * before an attempt reads it. Without it a client that stops half-way holds the app's
 * request for as long as it keeps its connection (proxy_read_timeout starts only once the
 * request is sent).
 */
export class StreamedBody implements UpstreamBody {
  readonly length = undefined;
  readonly #req: IncomingMessage;
  readonly #maxBytes: number;
  readonly #timeoutMs: number;
  readonly #onFailed: (event: TooLarge | BodyTimedOut) => void;
  #received = 0;
  #ended = false;
  #current: Readable | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(req: IncomingMessage, limits: { maxBytes: number; timeoutMs: number }, onFailed: (event: TooLarge | BodyTimedOut) => void) {
    this.#req = req;
    this.#maxBytes = limits.maxBytes;
    this.#timeoutMs = limits.timeoutMs;
    this.#onFailed = onFailed;
    req.on('data', this.#onData);
    req.on('end', this.#onEnd);
    // Attaching 'data' switches to flowing mode; stay paused until an attempt reads.
    req.pause();
  }

  /** Until the first byte is read from the client, there is nothing another attempt would miss. */
  get replayable(): boolean {
    return this.#received === 0;
  }

  open(): Readable {
    this.release();
    const stream = new Readable({
      read: () => {
        if (this.#current !== stream || this.#ended) return;
        this.#waitForClient();
        this.#req.resume();
      },
    });
    if (this.#ended) stream.push(null);
    this.#current = stream;
    return stream;
  }

  release(): void {
    this.#current = undefined;
    this.#stopWaiting();
    this.#req.pause();
  }

  dispose(): void {
    this.release();
  }

  #waitForClient(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#req.pause();
      this.#onFailed({ kind: 'timeout' });
    }, this.#timeoutMs).unref();
  }

  #stopWaiting(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#received += chunk.length;
    if (this.#maxBytes > 0 && this.#received > this.#maxBytes) {
      this.#stopWaiting();
      this.#req.pause();
      this.#onFailed({ kind: 'too_large', bytes: this.#received });
      return;
    }
    const stream = this.#current;
    if (stream === undefined || !stream.push(chunk)) {
      this.#stopWaiting();
      this.#req.pause();
    } else if (this.#timer !== undefined) {
      // The upstream still wants more: the wait for the client's next bytes starts again
      // (the running timer re-armed, rather than a new one made for every chunk).
      this.#timer.refresh();
    } else {
      this.#waitForClient();
    }
  };

  readonly #onEnd = (): void => {
    this.#stopWaiting();
    this.#ended = true;
    this.#current?.push(null);
  };
}
