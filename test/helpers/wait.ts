/** A process a poll watches: it stops waiting once the process has exited. */
export interface Watched {
  alive(): boolean;
  /** What to show when giving up: exit status and output so far. */
  describe(): string;
}

/**
 * Calls `check` every `intervalMs` until it gives something other than undefined, and
 * resolves with that. Rejects after `timeoutMs`, and, with `proc`, as soon as that process
 * has exited. `what` (or what it returns, read when giving up) names what is awaited.
 */
export async function pollUntil<T>(
  what: string | (() => string),
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  proc?: Watched,
  intervalMs = 20,
): Promise<T> {
  const describe = (): string => (typeof what === 'string' ? what : what());
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (proc && !proc.alive()) {
      // One last look: the output may have arrived with the exit.
      const last = await check();
      if (last !== undefined) return last;
      throw new Error(`process exited while waiting for ${describe()}\n${proc.describe()}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}${proc ? `\n${proc.describe()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Polls `predicate` every 10 ms until it holds; throws, naming `what`, after timeoutMs. */
export async function until(predicate: () => boolean, timeoutMs: number, what: string | (() => string)): Promise<void> {
  await pollUntil(what, () => (predicate() ? true : undefined), timeoutMs, undefined, 10);
}
