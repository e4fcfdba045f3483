import { describe, expect, it } from 'vitest';
import { roundRobin } from '../../../src/balancer/round-robin.js';
import { UpstreamGroup } from '../../../src/upstream/group.js';
import { HealthCounter } from '../../../src/upstream/health.js';
import { ServerStates } from '../../../src/upstream/states.js';
import { manualClock, server, upstream } from '../helpers.js';

const pick = (candidates: Parameters<typeof roundRobin>[0], eligible: Parameters<typeof roundRobin>[1]) =>
  roundRobin(candidates, eligible, { clientAddress: '', variable: () => '', state: {} });

describe('ServerStates: a server\'s state across reloads, by address', () => {
  it('a kept address gets the same state whatever else of its line changed; a new one a fresh state', () => {
    const states = new ServerStates();
    const [a1, b1] = states.assign([server('a'), server('b')]);
    a1!.fails = 3;
    const [a2, c2] = states.assign([server('a', { weight: 5, backup: true }), server('c')]);
    expect(a2).toBe(a1);
    expect(a2!.fails).toBe(3);
    expect(c2).not.toBe(b1);
    expect(c2!.fails).toBe(0);
  });

  it('retain() forgets the addresses a configuration no longer lists', () => {
    const states = new ServerStates();
    const [a1] = states.assign([server('a'), server('b')]);
    states.retain([server('b')]);
    const [a2] = states.assign([server('a')]);
    expect(a2).not.toBe(a1);
  });

  it('an address listed twice keeps one state per line, as nginx makes two peers', () => {
    const states = new ServerStates();
    const [first, second] = states.assign([server('a'), server('a')]);
    expect(first).not.toBe(second);
    const [again1, again2] = states.assign([server('a'), server('a', { weight: 2 })]);
    expect([again1, again2]).toEqual([first, second]);
    expect(again1).toBe(first);
    expect(again2).toBe(second);
  });

  it('a new group on the same states keeps a server out for the rest of fail_timeout, and counts its requests in flight', () => {
    const clock = manualClock();
    const states = new ServerStates();
    const before = new UpstreamGroup(upstream([server('a', { failTimeoutSec: 30 }), server('b')]), { nowSec: clock.now, states });
    const a = before.primary[0]!;
    before.recordFailure(a);
    a.takeSlot();
    clock.advance(5);
    const after = new UpstreamGroup(upstream([server('a', { failTimeoutSec: 30, weight: 9 }), server('b')]), { nowSec: clock.now, states });
    expect(after.primary[0]!.active).toBe(1);
    const chosen = Array.from({ length: 6 }, () => after.select(after.newRequest(), pick)?.name);
    expect(chosen).toEqual(Array(6).fill('unix:/b'));
    // The request that started before the reload ends on its own peer: the slot is freed for both.
    a.releaseSlot();
    expect(after.primary[0]!.active).toBe(0);
  });

  it('HealthCounter goes on from a carried state: an unhealthy server still needs `passes` passed checks', () => {
    const counter = new HealthCounter({ fails: 1, passes: 2, mandatory: true }, 'unhealthy');
    expect(counter.state).toBe('unhealthy');
    expect(counter.record(true)).toBeUndefined();
    expect(counter.record(true)).toBe('healthy');
  });
});
