/** The admin side of one serving process: the status of its own proxy, and its own registry. */
import type { ProxyMetrics } from '../observe/metrics.js';
import type { RunningProxy } from '../run.js';
import type { AdminSource } from './server.js';
import { combineStatus, processStatus, type StatusSource } from './status.js';

/**
 * What this process reports; also starts the metrics' gauges reading the proxy.
 * `config` is a function: a reload may replace the configuration and its load time.
 */
export function localStatusSource(
  metrics: ProxyMetrics,
  proxy: RunningProxy,
  config: () => { file: string; loadedAt: Date },
): StatusSource {
  metrics.watch({ clientConnections: () => proxy.clientConnections(), tunnels: () => proxy.tunnels() });
  return {
    metrics,
    startedAt: new Date(),
    config,
    upstreams: () => proxy.upstreams(),
    clientConnections: () => proxy.clientConnections(),
    tunnels: () => proxy.tunnels(),
  };
}

/** The admin endpoint of a single process (workers: 1): the document has one worker, itself. */
export function localAdmin(source: StatusSource, version: string): AdminSource {
  return {
    status: async () =>
      combineStatus({ version, pid: process.pid, startedAt: source.startedAt, config: source.config() }, [await processStatus(source)], []),
    metrics: async () => ({ contentType: source.metrics.registry.contentType, text: await source.metrics.registry.metrics() }),
  };
}
