import { describe, expect, it } from 'vitest';
import { roundRobin } from '../../../src/balancer/round-robin.js';
import { type HealthEvent, UpstreamGroup } from '../../../src/upstream/group.js';
import { manualClock, server, upstream } from '../helpers.js';

const pick = (candidates: Parameters<typeof roundRobin>[0], eligible: Parameters<typeof roundRobin>[1]) =>
  roundRobin(candidates, eligible, { clientAddress: '', variable: () => '', state: {} });

function groupOf(servers: Parameters<typeof upstream>[0]) {
  const clock = manualClock();
  const events: HealthEvent[] = [];
  const group = new UpstreamGroup(upstream(servers), { nowSec: clock.now, onHealthEvent: (e) => events.push(e) });
  const next = (): string | undefined => group.select(group.newRequest(), pick)?.name;
  const peer = (name: string) => [...group.primary, ...group.backup].find((p) => p.name === `unix:/${name}`)!;
  return { group, clock, events, next, peer };
}

describe('passive health: max_fails and fail_timeout (ngx_http_upstream_free_round_robin_peer)', () => {
  it('skips a server for fail_timeout after max_fails failures, then lets one probe through', () => {
    const { group, clock, events, next, peer } = groupOf([server('a', { failTimeoutSec: 10 }), server('b')]);
    group.recordFailure(peer('a'));
    expect(events).toEqual([{ kind: 'disabled', peer: peer('a') }]);
    expect([next(), next(), next()]).toEqual(['unix:/b', 'unix:/b', 'unix:/b']);
    clock.advance(10);
    expect(next()).toBe('unix:/b'); // now - checked == fail_timeout: still inside the window
    clock.advance(1);
    const picks = [next(), next(), next(), next()];
    // Exactly one probe goes to a; the others still see it quarantined.
    expect(picks.filter((p) => p === 'unix:/a')).toHaveLength(1);
  });

  it('a successful probe clears the count; a failed one quarantines again', () => {
    const { group, clock, next, peer } = groupOf([server('a', { failTimeoutSec: 5 }), server('b')]);
    group.recordFailure(peer('a'));
    clock.advance(6);
    const probe = group.select(group.newRequest(), (c, e) => (e(peer('a')) ? peer('a') : pick(c, e)))!;
    expect(probe.name).toBe('unix:/a');
    group.recordFailure(peer('a'));
    expect([next(), next()]).toEqual(['unix:/b', 'unix:/b']);
    clock.advance(6);
    group.select(group.newRequest(), (c, e) => (e(peer('a')) ? peer('a') : pick(c, e)));
    group.recordSuccess(peer('a'));
    expect(peer('a').fails).toBe(0);
    expect([next(), next()].sort()).toEqual(['unix:/a', 'unix:/b']);
  });

  it('successes inside the window do not reset the count', () => {
    const { group, next, peer } = groupOf([server('a', { maxFails: 2 }), server('b')]);
    group.recordFailure(peer('a'));
    group.recordSuccess(peer('a'));
    group.recordFailure(peer('a'));
    expect(peer('a').fails).toBe(2);
    expect([next(), next()]).toEqual(['unix:/b', 'unix:/b']);
  });

  it('max_fails=0 disables accounting', () => {
    const { group, next, peer, events } = groupOf([server('a', { maxFails: 0 }), server('b')]);
    for (let i = 0; i < 5; i++) group.recordFailure(peer('a'));
    expect(events).toEqual([]);
    expect([next(), next()].sort()).toEqual(['unix:/a', 'unix:/b']);
  });

  it('fail_timeout=0 quarantines only for the rest of the current second', () => {
    const { group, clock, next, peer } = groupOf([server('a', { failTimeoutSec: 0 }), server('b')]);
    group.recordFailure(peer('a'));
    expect([next(), next()]).toEqual(['unix:/b', 'unix:/b']);
    clock.advance(1);
    expect([next(), next(), next()]).toContain('unix:/a');
  });

  it('a single server is never marked unavailable (peers->single)', () => {
    const { group, next, peer, events } = groupOf([server('a', { failTimeoutSec: 0 })]);
    for (let i = 0; i < 3; i++) group.recordFailure(peer('a'));
    expect(events).toEqual([]);
    expect(group.single).toBe(true);
    expect(group.tries(0)).toBe(1);
    expect(next()).toBe('unix:/a');
  });
});

describe('selection: down, backup, max_conns, tried', () => {
  it('never uses a down server and does not count it in tries', () => {
    const { group, next } = groupOf([server('a', { down: true }), server('b'), server('c')]);
    expect(group.tries(0)).toBe(2);
    expect(group.tries(1)).toBe(1);
    expect(group.tries(5)).toBe(2);
    expect([next(), next(), next()]).toEqual(['unix:/b', 'unix:/c', 'unix:/b']);
  });

  it('uses backups only when no primary is usable, and a request stays on them', () => {
    const { group, peer } = groupOf([server('a'), server('b'), server('z', { backup: true })]);
    expect(group.single).toBe(false);
    const request = group.newRequest();
    expect(group.select(request, pick)?.name).toBe('unix:/a');
    group.recordFailure(peer('a'));
    expect(group.select(request, pick)?.name).toBe('unix:/b');
    expect(group.select(request, pick)?.name).toBe('unix:/z');
    expect(request.usingBackup).toBe(true);
    expect(group.select(request, pick)).toBeUndefined();
  });

  it('skips a server at max_conns; with every server full there is no live upstream', () => {
    const { next, peer } = groupOf([server('a', { maxConns: 1 }), server('b', { maxConns: 1 })]);
    peer('a').active = 1;
    expect(next()).toBe('unix:/b');
    peer('b').active = 1;
    expect(next()).toBeUndefined();
  });

  it('one request never gets the same server twice', () => {
    const { group } = groupOf([server('a'), server('b')]);
    const request = group.newRequest();
    const first = group.select(request, pick)!.name;
    const second = group.select(request, pick)!.name;
    expect(new Set([first, second]).size).toBe(2);
    expect(group.select(request, pick)).toBeUndefined();
  });
});
