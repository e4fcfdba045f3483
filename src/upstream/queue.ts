import type { QueueConfig } from '../config/types.js';

/** A request waiting for a server (the per-request loop, src/forward/exchange.ts). */
export interface QueuedRequest {
  /** Whether it can go on now: a server it may use has a free slot, or none is left to wait for. */
  canProceed(): boolean;
  /** Goes through server selection again (it left the queue just before). */
  proceed(): void;
  /** It waited the whole queue timeout (it left the queue just before). */
  timedOut(): void;
}

/**
 * nginx Plus's `queue N timeout=T` for one upstream group: requests that found every
 * server they may use at max_conns wait here, oldest first, instead of failing; a slot
 * freed on a server goes to the oldest request that can use it. HAProxy's server queue
 * with `timeout queue` does the same.
 */
export class RequestQueue {
  /** Insertion-ordered: the oldest first. Each with its timeout. */
  readonly #waiting = new Map<QueuedRequest, NodeJS.Timeout>();
  #config: QueueConfig;
  #wakeScheduled = false;

  constructor(config: QueueConfig) {
    this.#config = config;
  }

  /**
   * A reload: requests that enter from now on get the new size and timeout; those waiting
   * keep their timeout, and are served as before (the queue outlives reloads, since a slot
   * freed by a request of any configuration may be the one they wait for).
   */
  configure(config: QueueConfig): void {
    this.#config = config;
  }

  get length(): number {
    return this.#waiting.size;
  }

  /** Adds a request at the end; false when the queue is full (it did not enter). */
  enter(request: QueuedRequest): boolean {
    if (this.#waiting.size >= this.#config.size) return false;
    const timer = setTimeout(() => {
      this.#waiting.delete(request);
      request.timedOut();
    }, this.#config.timeoutMs);
    // A waiting request is held by its client connection, not by this timer.
    timer.unref();
    this.#waiting.set(request, timer);
    return true;
  }

  /** Removes a request that no longer waits (its client went away); a no-op if it is not queued. */
  leave(request: QueuedRequest): void {
    clearTimeout(this.#waiting.get(request));
    this.#waiting.delete(request);
  }

  /**
   * A slot may have freed, or a server changed health: the waiting requests that can go on
   * now do, oldest first. Deferred to a microtask, after the code that freed the slot has
   * run to its end: a request going on at once on the same server (a retry on a new
   * connection after the keep-alive race) keeps its slot, rather than see a queued request
   * take it and the server go past max_conns.
   */
  wake(): void {
    if (this.#wakeScheduled || this.#waiting.size === 0) return;
    this.#wakeScheduled = true;
    queueMicrotask(() => {
      this.#wakeScheduled = false;
      this.#dispatch();
    });
  }

  #dispatch(): void {
    // One pass over every waiting request, not just the first: the oldest may have tried the
    // server whose slot freed, and a younger one may use it (it stays ahead for the next).
    for (const [request, timer] of this.#waiting) {
      if (!request.canProceed()) continue;
      clearTimeout(timer);
      this.#waiting.delete(request);
      request.proceed();
    }
  }
}
