import type { ServerConfig, UpstreamConfig } from '../../src/config/types.js';

/** A server config for unit tests: "a" becomes unix:/a with nginx's defaults. */
export function server(name: string, params: Partial<Omit<ServerConfig, 'address'>> = {}): ServerConfig {
  return {
    address: { kind: 'unix', path: `/${name}` },
    weight: 1,
    maxFails: 1,
    failTimeoutSec: 10,
    maxConns: 0,
    backup: false,
    down: false,
    ...params,
  };
}

export function upstream(servers: ServerConfig[], params: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return { name: 'backend', balance: 'round_robin', keepalive: 32, servers, ...params };
}

/** A clock the test moves by hand, in whole seconds as nginx's ngx_time(). */
export function manualClock(start = 1_000): { now: () => number; advance: (seconds: number) => void } {
  let now = start;
  return { now: () => now, advance: (seconds) => (now += seconds) };
}
