import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Peer } from '../upstream/peer.js';
import type { Phase } from './classify.js';
import type { Connection, ConnectionUser } from './connections.js';

/** What one attempt reports to the per-request loop (./exchange.ts). */
export interface AttemptListener {
  onAttemptHeaders(attempt: Attempt, status: number, headers: IncomingHttpHeaders): void;
  onAttemptData(attempt: Attempt, chunk: Buffer): void;
  onAttemptEnd(attempt: Attempt, trailers: IncomingHttpHeaders): void;
  onAttemptError(attempt: Attempt, error: Error): void;
  /**
   * The upstream switched protocols (101) on an upgrade request: `socket` is the upstream
   * connection, now the tunnel's, with any bytes that followed the 101 still unread.
   */
  onAttemptUpgrade(attempt: Attempt, headers: IncomingHttpHeaders, socket: Socket): void;
}

export interface AttemptRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
  /** A Buffer goes out with the headers; a stream as the upstream takes it. */
  readonly body: Readable | Buffer | null;
  /**
   * The client's Upgrade value, for an upgrade request: undici then sends `Connection:
   * upgrade` and `Upgrade: <value>` itself, and a 101 ends in onAttemptUpgrade.
   */
  readonly upgrade?: string;
}

/**
 * One try of one request against one server, over undici's dispatch API on one
 * connection. It tracks how far it got (nginx's "while …" phase and request_sent), holds
 * a slot in the server's active-connection count from start to settle, and then gives the
 * connection back (the response was read in full) or discards it. Callbacks after
 * `abandon()` are dropped.
 */
export class Attempt implements Dispatcher.DispatchHandler, ConnectionUser {
  readonly peer: Peer;
  readonly connection: Connection;
  /** The connection's bytesRead before this request: nothing of the response arrived while it is unchanged. */
  readonly #bytesReadAtStart: number;
  readonly startedAt = performance.now();
  phase: Phase = 'connecting';
  /** $upstream_response_time in ms: until the whole response was read, or the failure. */
  durationMs = 0;
  status: number | undefined;

  readonly #listener: AttemptListener;
  /** Whether the body is written after the headers, as the upstream takes it (nginx's "sending request" phase). */
  readonly #streamsBody: boolean;
  #controller: Dispatcher.DispatchController | undefined;
  #abandonReason: Error | undefined;
  #settled = false;
  #paused = false;
  /** The app did not say `Connection: close`: the connection may carry another request. */
  #reusable = true;
  /** The app closed the connection: from now on the response is never paused (see onUpstreamEnd). */
  #upstreamEnded = false;

  constructor(peer: Peer, request: AttemptRequest, connection: Connection, listener: AttemptListener) {
    this.peer = peer;
    this.connection = connection;
    this.#bytesReadAtStart = connection.bytesRead;
    this.#listener = listener;
    connection.user = this;
    const { body } = request;
    this.#streamsBody = body instanceof Readable;
    peer.takeSlot();
    if (body instanceof Readable) {
      body.once('end', () => {
        if (this.phase === 'sending') this.phase = 'reading_header';
      });
    }
    const options = {
      origin: undefined,
      method: request.method,
      path: request.path,
      headers: request.headers,
      body: request.body,
      upgrade: request.upgrade,
    } as Dispatcher.DispatchOptions;
    connection.client.dispatch(options, this);
  }

  /** Whether any byte of the request may have reached the upstream (nginx's request_sent). */
  get requestSent(): boolean {
    return this.phase !== 'connecting';
  }

  /** Whether this attempt failed because the app closed its reused connection as the request went out. */
  lostKeepaliveRace(error: Error, method: string): boolean {
    return this.connection.lostKeepaliveRace(error, method, this.#bytesReadAtStart);
  }

  get abandoned(): boolean {
    return this.#abandonReason !== undefined;
  }

  /** Whether the attempt is over: the response was read in full, or it failed or was abandoned. */
  get settled(): boolean {
    return this.#settled;
  }

  /** Ends the attempt from our side (client gone, retrying elsewhere, body too large). */
  abandon(reason: Error): void {
    if (this.#abandonReason !== undefined) return;
    this.#abandonReason = reason;
    this.#controller?.abort(reason);
    // Still connecting: undici has no handle to abort yet; discarding the connection ends the request.
    if (this.#controller === undefined) this.#settle(false);
  }

  /** Stops reading the upstream. After the attempt settled its connection may serve another request: no-op. */
  pause(): void {
    if (this.#settled || this.#upstreamEnded || this.#paused) return;
    this.#paused = true;
    this.#controller?.pause();
  }

  resume(): void {
    if (this.#settled || !this.#paused) return;
    this.#paused = false;
    this.#controller?.resume();
  }

  /**
   * undici 7 asserts, and the process dies, when the app's FIN arrives while the parser is
   * paused on the last bytes of a `Connection: close` response (nodejs/undici#5360, fixed
   * only in undici 8). This runs just before undici sees the FIN: let the parser take the
   * rest now (at most one socket read), and never pause again.
   */
  onUpstreamEnd(): void {
    this.#upstreamEnded = true;
    this.resume();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#abandonReason !== undefined) {
      controller.abort(this.#abandonReason);
      return;
    }
    this.phase = this.#streamsBody ? 'sending' : 'reading_header';
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    if (this.#abandonReason !== undefined || status < 200) return;
    this.phase = 'reading_body';
    this.status = status;
    this.#reusable = !/\bclose\b/i.test(String(headers.connection ?? ''));
    this.#listener.onAttemptHeaders(this, status, headers);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#abandonReason === undefined) this.#listener.onAttemptData(this, chunk);
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (!this.#settle(this.#abandonReason === undefined) || this.#abandonReason !== undefined) return;
    this.#listener.onAttemptEnd(this, trailers);
  }

  /**
   * undici's dispatch API reports a 101 here and any other answer to an upgrade request as
   * an ordinary response (its upgrade() helper would turn that into a "bad upgrade" error
   * and lose it). The connection is the tunnel's now: undici has let go of it, so the
   * attempt settles without giving it back.
   */
  onRequestUpgrade(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void {
    if (!this.#settle(false) || this.#abandonReason !== undefined) {
      socket.destroy();
      return;
    }
    this.status = statusCode;
    this.#listener.onAttemptUpgrade(this, headers, socket as Socket);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (!this.#settle(false) || this.#abandonReason !== undefined) return;
    this.#listener.onAttemptError(this, error);
  }

  /**
   * Releases the server slot and the connection once (`complete`: the response was read
   * in full, so the connection may be kept); false when it was already released.
   */
  #settle(complete: boolean): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.peer.releaseSlot();
    this.durationMs = performance.now() - this.startedAt;
    if (complete) this.connection.release(this.#reusable);
    else this.connection.discard();
    return true;
  }
}
