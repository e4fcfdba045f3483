import type { Server } from 'node:http';
import { balancerFor } from './balancer/index.js';
import { formatListen } from './config/listen.js';
import type { Config } from './config/types.js';
import { Exchange, type ForwardContext } from './forward/exchange.js';
import { compileRequestRules } from './forward/headers.js';
import { UpstreamConnections } from './forward/connections.js';
import { HealthChecks, healthCheckHost } from './forward/health-checks.js';
import type { Logger } from './observe/logger.js';
import { createHttpServer } from './server/http-server.js';
import { listen } from './server/listen.js';
import { UpstreamGroup } from './upstream/group.js';
import { RequestQueue } from './upstream/queue.js';

/** How often a stopping proxy closes the client connections that have gone idle. */
const IDLE_SWEEP_MS = 50;

export interface ProxyLogs {
  readonly errorLog: Logger;
  readonly accessLog: Logger | undefined;
}

export interface RunningProxy {
  /** The listen addresses, as nginx prints them ("*:8080", "unix:/run/sockproxy.sock"). */
  readonly addresses: readonly string[];
  /** Stops the health checks and accepting, lets in-flight requests finish, closes upstream connections. */
  close(): Promise<void>;
}

/**
 * The composition root: a resolved configuration becomes listeners, an upstream group
 * and its upstream connections. Rejects with a ListenError when an address cannot be bound
 * (nothing is left listening then).
 */
export async function startProxy(config: Config, logs: ProxyLogs): Promise<RunningProxy> {
  const { errorLog, accessLog } = logs;
  const queue = config.upstream.queue === undefined ? undefined : new RequestQueue(config.upstream.queue);
  const group = new UpstreamGroup(config.upstream, {
    onHealthEvent: (event) =>
      errorLog.warn({ upstream_addr: event.peer.name }, `upstream server temporarily disabled, upstream: "${event.peer.name}"`),
    onSlotFreed: () => queue?.wake(),
  });
  const healthChecks =
    config.upstream.healthCheck === undefined
      ? undefined
      : new HealthChecks(group, config.upstream.healthCheck, {
          host: healthCheckHost(config.upstream.name, config.proxy.setHeader),
          errorLog,
          onChange: () => queue?.wake(),
        });
  const connections = new UpstreamConnections(config.upstream, config.proxy);
  const forward: ForwardContext = {
    group,
    connections,
    queue,
    proxy: config.proxy,
    requestRules: compileRequestRules(config.proxy.setHeader),
    errorLog,
    accessLog,
    balancer: balancerFor(config.upstream.balance),
  };

  const servers: Server[] = [];
  let closing = false;
  const close = async (): Promise<void> => {
    closing = true;
    await healthChecks?.close();
    // While stopping, a connection is closed as soon as its response is done, as nginx's
    // graceful stop does, instead of lingering until the keep-alive timeout: responses now
    // say Connection: close, and those already under way are swept once they go idle.
    const sweep = setInterval(() => {
      for (const server of servers) server.closeIdleConnections();
    }, IDLE_SWEEP_MS);
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    clearInterval(sweep);
    await connections.close();
  };

  try {
    for (const address of config.listen) {
      const server = createHttpServer((req, res, expectsContinue) => {
        if (closing) res.shouldKeepAlive = false;
        new Exchange(forward, req, res).start(expectsContinue);
      });
      await listen(server, address);
      servers.push(server);
    }
  } catch (err) {
    await close();
    throw err;
  }
  healthChecks?.start();
  return { addresses: config.listen.map(formatListen), close };
}
