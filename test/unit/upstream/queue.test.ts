import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type QueuedRequest, RequestQueue } from '../../../src/upstream/queue.js';

/** A queued request whose readiness the test sets, recording what happened to it. */
function waiter(name: string, log: string[]): QueuedRequest & { ready: boolean } {
  const request = {
    ready: false,
    canProceed: () => request.ready,
    proceed: () => log.push(`${name} proceeds`),
    timedOut: () => log.push(`${name} timed out`),
  };
  return request;
}

/** Lets the queue's deferred wake run. */
const settle = () => Promise.resolve();

describe('RequestQueue (nginx Plus queue N timeout=T)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('holds at most size requests', () => {
    const queue = new RequestQueue({ size: 2, timeoutMs: 1_000 });
    const log: string[] = [];
    expect([queue.enter(waiter('a', log)), queue.enter(waiter('b', log)), queue.enter(waiter('c', log))]).toEqual([true, true, false]);
    expect(queue.length).toBe(2);
  });

  it('dispatches the oldest first', async () => {
    const queue = new RequestQueue({ size: 10, timeoutMs: 1_000 });
    const log: string[] = [];
    const requests = ['a', 'b', 'c'].map((name) => waiter(name, log));
    for (const request of requests) queue.enter(request);
    for (const request of requests) request.ready = true;
    queue.wake();
    await settle();
    expect(log).toEqual(['a proceeds', 'b proceeds', 'c proceeds']);
    expect(queue.length).toBe(0);
  });

  it('a request that cannot use the free slot keeps its place; a younger one that can goes', async () => {
    const queue = new RequestQueue({ size: 10, timeoutMs: 1_000 });
    const log: string[] = [];
    const [a, b, c] = ['a', 'b', 'c'].map((name) => waiter(name, log));
    queue.enter(a!);
    queue.enter(b!);
    queue.enter(c!);
    b!.ready = true;
    queue.wake();
    await settle();
    expect(log).toEqual(['b proceeds']);
    a!.ready = true;
    c!.ready = true;
    queue.wake();
    await settle();
    expect(log).toEqual(['b proceeds', 'a proceeds', 'c proceeds']);
  });

  it('wakes after the code that freed the slot has run, once for several wakes', async () => {
    const queue = new RequestQueue({ size: 10, timeoutMs: 1_000 });
    const log: string[] = [];
    let checks = 0;
    const request = waiter('a', log);
    queue.enter({ ...request, canProceed: () => (checks++, false) });
    queue.wake();
    queue.wake();
    expect(checks).toBe(0);
    await settle();
    expect(checks).toBe(1);
  });

  it('a request that waits the whole timeout leaves the queue and is told so', () => {
    const queue = new RequestQueue({ size: 10, timeoutMs: 1_000 });
    const log: string[] = [];
    queue.enter(waiter('a', log));
    vi.advanceTimersByTime(500);
    queue.enter(waiter('b', log));
    vi.advanceTimersByTime(500);
    expect(log).toEqual(['a timed out']);
    expect(queue.length).toBe(1);
    vi.advanceTimersByTime(500);
    expect(log).toEqual(['a timed out', 'b timed out']);
  });

  it('leave() removes a request at once (its client went away): no timeout, no dispatch, its place freed', async () => {
    const queue = new RequestQueue({ size: 1, timeoutMs: 1_000 });
    const log: string[] = [];
    const a = waiter('a', log);
    queue.enter(a);
    queue.leave(a);
    expect(queue.length).toBe(0);
    a.ready = true;
    queue.wake();
    await settle();
    vi.advanceTimersByTime(2_000);
    expect(log).toEqual([]);
    expect(queue.enter(waiter('b', log))).toBe(true);
  });

  it('a dispatched request is not timed out later', async () => {
    const queue = new RequestQueue({ size: 10, timeoutMs: 1_000 });
    const log: string[] = [];
    const a = waiter('a', log);
    queue.enter(a);
    a.ready = true;
    queue.wake();
    await settle();
    vi.advanceTimersByTime(2_000);
    expect(log).toEqual(['a proceeds']);
  });
});
