import { describe, expect, it } from 'vitest';
import { type RegisteredTunnel, TunnelRegistry } from '../../../src/forward/tunnels.js';

/** A tunnel that ends when the test says so, and notes whether it was asked to close. */
function tunnel(): RegisteredTunnel & { end: () => void; closeCalls: number } {
  let end!: () => void;
  const ended = new Promise<void>((resolve) => (end = resolve));
  const t = {
    ended,
    end,
    closeCalls: 0,
    close: () => {
      t.closeCalls++;
      end();
    },
  };
  return t;
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('TunnelRegistry (proxy.max_upgraded)', () => {
  it('gives at most `limit` slots, counting requests still waiting for their 101', () => {
    const registry = new TunnelRegistry(2);
    expect(registry.reserve()).toBeUndefined();
    expect(registry.reserve()).toBeUndefined();
    expect(registry.reserve()).toBe('limit');
    expect(registry.size).toBe(2);
    registry.release();
    expect(registry.reserve()).toBeUndefined();
  });

  it('0 means unlimited', () => {
    const registry = new TunnelRegistry(0);
    for (let i = 0; i < 10_000; i++) expect(registry.reserve()).toBeUndefined();
    expect(registry.size).toBe(10_000);
  });

  it('a tunnel keeps its slot until it ends', async () => {
    const registry = new TunnelRegistry(1);
    registry.reserve();
    const t = tunnel();
    registry.add(t);
    expect(registry.reserve()).toBe('limit');
    t.end();
    await settle();
    expect(registry.size).toBe(0);
    expect(registry.reserve()).toBeUndefined();
  });

  it('close() closes every open tunnel, resolves when they have ended, and refuses new upgrades', async () => {
    const registry = new TunnelRegistry(10);
    const tunnels = [tunnel(), tunnel()];
    for (const t of tunnels) {
      registry.reserve();
      registry.add(t);
    }
    await registry.close();
    expect(tunnels.map((t) => t.closeCalls)).toEqual([1, 1]);
    expect(registry.size).toBe(0);
    expect(registry.reserve()).toBe('closing');
  });

  it('a tunnel that opens while closing (its 101 was on the way) is closed at once', async () => {
    const registry = new TunnelRegistry(10);
    registry.reserve();
    await registry.close();
    const late = tunnel();
    registry.add(late);
    expect(late.closeCalls).toBe(1);
  });
});
