import { describe, expect, it } from 'vitest';
import { type RegisteredTunnel, TunnelRegistry } from '../../../src/forward/tunnels.js';

/** A tunnel that ends when the test says so, and notes whether it was destroyed. */
function tunnel(): RegisteredTunnel & { end: () => void; destroyCalls: number } {
  let end!: () => void;
  const ended = new Promise<void>((resolve) => (end = resolve));
  const t = {
    ended,
    end,
    destroyCalls: 0,
    destroy: () => {
      t.destroyCalls++;
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

  it('stopAccepting() refuses new upgrades and lets open tunnels run on; it resolves when they have ended', async () => {
    const registry = new TunnelRegistry(10);
    const tunnels = [tunnel(), tunnel()];
    for (const t of tunnels) {
      registry.reserve();
      registry.add(t);
    }
    let stopped = false;
    void registry.stopAccepting().then(() => (stopped = true));
    expect(registry.reserve()).toBe('closing');
    tunnels[0]!.end();
    await settle();
    expect([stopped, registry.size]).toEqual([false, 1]);
    tunnels[1]!.end();
    await settle();
    expect([stopped, registry.size]).toEqual([true, 0]);
    expect(tunnels.map((t) => t.destroyCalls)).toEqual([0, 0]);
  });

  it('destroy() closes every open tunnel now (a stop at shutdown_timeout)', async () => {
    const registry = new TunnelRegistry(10);
    const tunnels = [tunnel(), tunnel()];
    for (const t of tunnels) {
      registry.reserve();
      registry.add(t);
    }
    registry.destroy();
    await settle();
    expect(tunnels.map((t) => t.destroyCalls)).toEqual([1, 1]);
    expect(registry.size).toBe(0);
    expect(registry.reserve()).toBe('closing');
  });
});
