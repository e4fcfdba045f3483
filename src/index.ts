/** sockproxy's programmatic API: load a configuration, start the proxy on it. */
export { loadConfig, parseConfig } from './config/load.js';
export { ConfigError } from './config/errors.js';
export { ListenError } from './server/listen.js';
export { startProxy } from './run.js';
export { handleSignals, Lifecycle } from './lifecycle.js';
export type { LifecycleOptions } from './lifecycle.js';
export { createAccessLog, createErrorLog } from './observe/logger.js';
export type { ProxyInstruments, ProxyLogs, RunningProxy } from './run.js';
export { ProxyMetrics } from './observe/metrics.js';
export type { StatusDocument, UpstreamView } from './admin/status.js';
export type { StreamServer } from './stream/server.js';
export type {
  AdminConfig,
  Balance,
  Config,
  HealthCheckConfig,
  HttpConfig,
  ListenAddress,
  LogConfig,
  NextUpstreamToken,
  PidFile,
  ProxySettings,
  QueueConfig,
  ServerConfig,
  SocketAddress,
  StreamServerConfig,
  UpstreamBlock,
  UpstreamConfig,
} from './config/types.js';
export type { StatusMatch } from './config/status-match.js';
