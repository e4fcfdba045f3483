import { DEFAULTS } from '../../src/config/defaults.js';
import type { ServerConfig, UpstreamConfig } from '../../src/config/types.js';

/** A server config for unit tests: "a" becomes unix:/a with nginx's defaults. */
export function server(name: string, params: Partial<Omit<ServerConfig, 'address' | 'written'>> = {}): ServerConfig {
  return { address: { kind: 'unix', path: `/${name}` }, written: `unix:/${name}`, ...DEFAULTS.server, ...params };
}

export function upstream(servers: ServerConfig[], params: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return { ...DEFAULTS.upstream, servers, ...params };
}

/** A clock the test moves by hand, in whole seconds as nginx's ngx_time(). */
export function manualClock(start = 1_000): { now: () => number; advance: (seconds: number) => void } {
  let now = start;
  return { now: () => now, advance: (seconds) => (now += seconds) };
}
