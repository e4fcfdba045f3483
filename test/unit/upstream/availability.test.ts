import { describe, expect, it } from 'vitest';
import { roundRobin } from '../../../src/balancer/round-robin.js';
import { UpstreamGroup } from '../../../src/upstream/group.js';
import { manualClock, server, upstream } from '../helpers.js';

const pick = (candidates: Parameters<typeof roundRobin>[0], eligible: Parameters<typeof roundRobin>[1]) =>
  roundRobin(candidates, eligible, { clientAddress: '', variable: () => '', state: {} });

function groupOf(servers: Parameters<typeof upstream>[0]) {
  const clock = manualClock();
  let slotsFreed = 0;
  const group = new UpstreamGroup(upstream(servers), { nowSec: clock.now, onSlotFreed: () => slotsFreed++ });
  const peer = (name: string) => [...group.primary, ...group.backup].find((p) => p.name === `unix:/${name}`)!;
  return { group, peer, slotsFreed: () => slotsFreed };
}

describe('active health in selection: Peer.healthy', () => {
  it('an unhealthy server is skipped, as a down one', () => {
    const { group, peer } = groupOf([server('a'), server('b')]);
    peer('a').healthy = false;
    const picks = [0, 1, 2].map(() => group.select(group.newRequest(), pick)?.name);
    expect(picks).toEqual(['unix:/b', 'unix:/b', 'unix:/b']);
  });

  it('even a single server: health checks, unlike max_fails, apply to it (no live upstreams)', () => {
    const { group, peer } = groupOf([server('a')]);
    peer('a').healthy = false;
    expect(group.select(group.newRequest(), pick)).toBeUndefined();
  });

  it('an unhealthy primary sends requests to the backup', () => {
    const { group, peer } = groupOf([server('a'), server('z', { backup: true })]);
    peer('a').healthy = false;
    expect(group.select(group.newRequest(), pick)?.name).toBe('unix:/z');
  });
});

describe('canSelect and waitsForSlot: when a request may wait in the queue', () => {
  it('all servers at max_conns: it waits; a slot frees: it can go on', () => {
    const { group, peer } = groupOf([server('a', { maxConns: 1 }), server('b', { maxConns: 1 })]);
    peer('a').active = 1;
    peer('b').active = 1;
    const request = group.newRequest();
    expect(group.select(request, pick)).toBeUndefined();
    expect([group.canSelect(request), group.waitsForSlot(request)]).toEqual([false, true]);
    peer('b').active = 0;
    expect([group.canSelect(request), group.waitsForSlot(request)]).toEqual([true, true]);
    expect(group.select(request, pick)?.name).toBe('unix:/b');
  });

  it('servers out for other reasons are not waited for: down, unhealthy, in fail_timeout, already tried', () => {
    const { group, peer } = groupOf([
      server('a', { maxConns: 1, down: true }),
      server('b', { maxConns: 1 }),
      server('c', { maxConns: 1 }),
      server('d', { maxConns: 1 }),
    ]);
    for (const name of ['a', 'b', 'c', 'd']) peer(name).active = 1;
    peer('b').healthy = false;
    group.recordFailure(peer('c'));
    const request = group.newRequest();
    expect(group.waitsForSlot(request)).toBe(true); // for d
    request.tried.add(peer('d'));
    expect(group.waitsForSlot(request)).toBe(false);
  });

  it('a single server at max_conns is waited for; once tried, not', () => {
    const { group, peer } = groupOf([server('a', { maxConns: 1 })]);
    const request = group.newRequest();
    expect(group.select(request, pick)?.name).toBe('unix:/a');
    peer('a').active = 1;
    const second = group.newRequest();
    expect(group.waitsForSlot(second)).toBe(true);
    expect(group.waitsForSlot(request)).toBe(false);
  });

  it('a free backup is taken rather than waiting for a full primary', () => {
    const { group, peer } = groupOf([server('a', { maxConns: 1 }), server('z', { backup: true })]);
    peer('a').active = 1;
    expect(group.select(group.newRequest(), pick)?.name).toBe('unix:/z');
  });

  it('a request that found primaries and backups full is not moved to the backups: it may still get a primary', () => {
    const { group, peer } = groupOf([server('a', { maxConns: 1 }), server('z', { backup: true, maxConns: 1 })]);
    peer('a').active = 1;
    peer('z').active = 1;
    const request = group.newRequest();
    expect(group.select(request, pick)).toBeUndefined();
    expect(request.usingBackup).toBe(false);
    peer('a').active = 0;
    expect(group.select(request, pick)?.name).toBe('unix:/a');
  });

  it('canSelect and waitsForSlot change nothing: the balancer state and the probe window stay as they were', () => {
    const { group, peer } = groupOf([server('a'), server('b')]);
    const before = [peer('a').currentWeight, peer('b').currentWeight, peer('a').checkedSec];
    const request = group.newRequest();
    group.canSelect(request);
    group.waitsForSlot(request);
    expect([peer('a').currentWeight, peer('b').currentWeight, peer('a').checkedSec]).toEqual(before);
    expect(request.tried.size).toBe(0);
  });
});

describe('slots', () => {
  it('takeSlot and releaseSlot count requests in flight; a release is reported', () => {
    const { peer, slotsFreed } = groupOf([server('a', { maxConns: 2 })]);
    peer('a').takeSlot();
    peer('a').takeSlot();
    expect(peer('a').active).toBe(2);
    peer('a').releaseSlot();
    expect([peer('a').active, slotsFreed()]).toEqual([1, 1]);
  });
});
