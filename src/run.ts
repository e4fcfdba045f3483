import type { Server } from 'node:http';
import { balancerFor } from './balancer/index.js';
import { formatListen } from './config/listen.js';
import type { Config, HttpConfig, ProxySettings } from './config/types.js';
import { Exchange, type ForwardContext } from './forward/exchange.js';
import { compileRequestRules } from './forward/headers.js';
import { UpstreamConnections } from './forward/connections.js';
import { HealthChecks, healthCheckHost } from './forward/health-checks.js';
import { TunnelRegistry } from './forward/tunnels.js';
import type { UpstreamView } from './admin/status.js';
import type { Logger } from './observe/logger.js';
import type { RequestObserver } from './observe/metrics.js';
import { createHttpServer } from './server/http-server.js';
import { listen } from './server/listen.js';
import { StreamServer } from './stream/server.js';
import { type HealthEvent, UpstreamGroup } from './upstream/group.js';
import { RequestQueue } from './upstream/queue.js';

/** How often a stopping proxy closes the client connections that have gone idle. */
const IDLE_SWEEP_MS = 50;

export interface ProxyLogs {
  readonly errorLog: Logger;
  readonly accessLog: Logger | undefined;
}

/** What the proxy reports to, besides its logs. */
export interface ProxyInstruments {
  /** Counts requests, failures and response times for the metrics and /status; none when the admin endpoint is off. */
  readonly observer?: RequestObserver | undefined;
}

export interface RunningProxy {
  /** The HTTP listen addresses, as nginx prints them ("*:8080", "unix:/run/sockproxy.sock"); empty without HTTP. */
  readonly addresses: readonly string[];
  /** The stream servers, in configuration order. */
  readonly streams: readonly StreamServer[];
  /**
   * The upstream groups in use now, HTTP first, then each stream server's: /status reads
   * them through this at every request, as a reload may replace them.
   */
  upstreams(): readonly UpstreamView[];
  /** Open client connections to the HTTP listeners. */
  clientConnections(): Promise<number>;
  /** Open WebSocket tunnels (and upgrade requests waiting for their 101). */
  tunnels(): number;
  /**
   * Stops the health checks and accepting, lets in-flight requests finish, closes upgraded connections (WebSocket
   * tunnels: FIN to both sides) and upstream connections, and lets open stream sessions run
   * to their end.
   */
  close(): Promise<void>;
}

/** The HTTP side: its listeners and upstream connections. */
interface HttpProxy {
  readonly upstream: UpstreamView;
  readonly tunnels: TunnelRegistry;
  clientConnections(): Promise<number>;
  /** Binds every listen address; rejects with a ListenError. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The composition root: a resolved configuration becomes listeners, upstream groups and
 * their upstream connections, for the HTTP proxy and each stream server. Rejects with a
 * ListenError when an address cannot be bound (nothing is left listening then).
 */
export async function startProxy(config: Config, logs: ProxyLogs, instruments: ProxyInstruments = {}): Promise<RunningProxy> {
  const { errorLog, accessLog } = logs;
  const onHealthEvent = (event: HealthEvent): void =>
    errorLog.warn({ upstream_addr: event.peer.name }, `upstream server temporarily disabled, upstream: "${event.peer.name}"`);

  const streams = config.stream.map((stream) => new StreamServer(stream, { errorLog, accessLog, onHealthEvent }));
  const http =
    config.http === undefined ? undefined : httpProxy(config.http, config.proxy, logs, onHealthEvent, instruments.observer);
  const close = async (): Promise<void> => {
    await Promise.all([http?.close(), ...streams.map((stream) => stream.close())]);
  };

  try {
    await http?.start();
    for (const stream of streams) await stream.start();
  } catch (err) {
    await close();
    throw err;
  }
  const upstreams = (): UpstreamView[] => [
    ...(http === undefined ? [] : [http.upstream]),
    ...streams.map((stream): UpstreamView => ({ kind: 'stream', group: stream.group })),
  ];
  return {
    addresses: config.http?.listen.map(formatListen) ?? [],
    streams,
    upstreams,
    clientConnections: async () => (http === undefined ? 0 : http.clientConnections()),
    tunnels: () => http?.tunnels.size ?? 0,
    close,
  };
}

function httpProxy(
  config: HttpConfig,
  proxy: ProxySettings,
  { errorLog, accessLog }: ProxyLogs,
  onHealthEvent: (event: HealthEvent) => void,
  observer: RequestObserver | undefined,
): HttpProxy {
  const queue = config.upstream.queue === undefined ? undefined : new RequestQueue(config.upstream.queue);
  const group = new UpstreamGroup(config.upstream, { onHealthEvent, onSlotFreed: () => queue?.wake() });
  const healthChecks =
    config.upstream.healthCheck === undefined
      ? undefined
      : new HealthChecks(group, config.upstream.healthCheck, {
          host: healthCheckHost(config.upstream.name, proxy.setHeader),
          errorLog,
          onChange: () => queue?.wake(),
        });
  const connections = new UpstreamConnections(config.upstream, proxy);
  const tunnels = new TunnelRegistry(proxy.maxUpgraded);
  const forward: ForwardContext = {
    group,
    connections,
    tunnels,
    queue,
    proxy,
    requestRules: compileRequestRules(proxy.setHeader),
    errorLog,
    accessLog,
    balancer: balancerFor(config.upstream.balance),
    observer,
  };

  let closing = false;
  const servers: Server[] = [];
  const start = async (): Promise<void> => {
    for (const address of config.listen) {
      const server = createHttpServer(
        (req, res, expectsContinue) => {
          if (closing) res.shouldKeepAlive = false;
          new Exchange(forward, req, res).start(expectsContinue);
        },
        (req, res, upgrade) => new Exchange(forward, req, res, upgrade).start(),
      );
      await listen(server, address);
      servers.push(server);
    }
    healthChecks?.start();
  };
  const close = async (): Promise<void> => {
    closing = true;
    await healthChecks?.close();
    // While stopping, a connection is closed as soon as its response is done, as nginx's
    // graceful stop does, instead of lingering until the keep-alive timeout: responses now
    // say Connection: close, and those already under way are swept once they go idle.
    const sweep = setInterval(() => {
      for (const server of servers) server.closeIdleConnections();
    }, IDLE_SWEEP_MS);
    const serversClosed = Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    // A tunnel lasts as long as its two ends want: unlike a request, it is not waited for.
    // (nginx keeps them until worker_shutdown_timeout; closing them is what lets a stop finish.)
    await tunnels.close();
    await serversClosed;
    clearInterval(sweep);
    await connections.close();
  };
  const clientConnections = async (): Promise<number> => {
    const counts = await Promise.all(
      servers.map((server) => new Promise<number>((resolve) => server.getConnections((err, count) => resolve(err ? 0 : count)))),
    );
    return counts.reduce((sum, count) => sum + count, 0);
  };
  return { upstream: { kind: 'http', group, connections }, tunnels, clientConnections, start, close };
}
