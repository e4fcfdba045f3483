import http from 'node:http';
import net from 'node:net';
import { balancerFor } from './balancer/index.js';
import { formatListen } from './config/listen.js';
import type { ClientLimits, Config, HttpConfig, ProxySettings } from './config/types.js';
import { UpstreamConnections } from './forward/connections.js';
import { Exchange, type ForwardContext } from './forward/exchange.js';
import { compileRequestRules } from './forward/headers.js';
import { HealthChecks, healthCheckHost } from './forward/health-checks.js';
import { TunnelRegistry } from './forward/tunnels.js';
import type { UpstreamView } from './admin/status.js';
import type { Logger } from './observe/logger.js';
import type { RequestObserver, SessionObserver } from './observe/metrics.js';
import { applyClientLimits, createHttpServer } from './server/http-server.js';
import { type Listener, Listeners, type WantedListener } from './server/listeners.js';
import { listenerName, StreamServer } from './stream/server.js';
import { type HealthEvent, UpstreamGroup } from './upstream/group.js';
import type { Peer } from './upstream/peer.js';
import { RequestQueue } from './upstream/queue.js';
import { ServerStates } from './upstream/states.js';

export interface ProxyLogs {
  readonly errorLog: Logger;
  readonly accessLog: Logger | undefined;
}

/** What the proxy reports to, besides its logs. */
export interface ProxyInstruments {
  /**
   * Counts requests, stream sessions, failures, response times and relayed bytes for the
   * metrics and /status; none when the admin endpoint is off.
   */
  readonly observer?: (RequestObserver & SessionObserver) | undefined;
}

export interface RunningProxy {
  /** The HTTP listen addresses in force, as nginx prints them ("*:8080", "unix:/run/sockproxy.sock"); empty without HTTP. */
  readonly addresses: readonly string[];
  /** The stream servers in force, in configuration order. */
  readonly streams: readonly StreamServer[];
  /**
   * The upstream groups in use now, HTTP first, then each stream server's: /status reads
   * them through this at every request, as a reload may replace them.
   */
  upstreams(): readonly UpstreamView[];
  /** Open client connections to the HTTP listeners (those a reload removed included). */
  clientConnections(): Promise<number>;
  /** Open WebSocket tunnels (and upgrade requests waiting for their 101). */
  tunnels(): number;
  /**
   * Puts a new configuration in force, atomically: new listen addresses are bound first
   * (if one cannot be, a ListenError is thrown and nothing changed), then new requests and
   * sessions go to the new configuration, removed addresses stop accepting, and servers
   * kept by address keep their connections and health state (README, "Reload"). Requests,
   * tunnels and sessions under way finish on the configuration they started with.
   */
  reload(config: Config): Promise<void>;
  /**
   * A graceful stop: stops accepting and the health checks, refuses new upgrades, closes
   * client keep-alive connections as they go idle, and resolves once every request in
   * flight, WebSocket tunnel and stream session has ended by itself.
   */
  close(): Promise<void>;
  /**
   * Ends everything still open now: what a stop does when shutdown_timeout is reached.
   * Resolves once the tunnels and stream sessions it closed have ended and been logged.
   */
  destroy(): Promise<void>;
}

/**
 * The composition root: a resolved configuration becomes listeners, upstream groups and
 * their upstream connections, for the HTTP proxy and each stream server. Rejects with a
 * ListenError when an address cannot be bound (nothing is left listening then).
 */
export async function startProxy(config: Config, logs: ProxyLogs, instruments: ProxyInstruments = {}): Promise<RunningProxy> {
  const proxy = new Proxy(logs, instruments);
  try {
    await proxy.reload(config);
  } catch (err) {
    await proxy.close();
    throw err;
  }
  return proxy;
}

/**
 * What the HTTP side keeps across reloads: its servers' state, its upstream connections,
 * the queue and the tunnel registry; and the configuration in force (`current`), which
 * every new request takes when it starts and keeps to its end.
 */
interface HttpSide {
  readonly states: ServerStates;
  readonly tunnels: TunnelRegistry;
  queue: RequestQueue | undefined;
  connections: UpstreamConnections | undefined;
  healthChecks: HealthChecks | undefined;
  current: ForwardContext | undefined;
  /** Servers a reload removed, with requests still in flight on them once it happened ("draining" in /status). */
  readonly draining: Set<Peer>;
}

/** A configuration built but not yet in force. */
interface Generation {
  readonly config: Config;
  readonly http: ForwardContext | undefined;
  /** Each stream server of the configuration, by each of its listen addresses (as printed). */
  readonly streamRoutes: ReadonlyMap<string, StreamServer>;
  readonly streams: readonly StreamServer[];
  /** The state of each stream server's upstream, by the stream server's first listen address. */
  readonly streamStates: ReadonlyMap<string, ServerStates>;
}

class Proxy implements RunningProxy {
  readonly #logs: ProxyLogs;
  readonly #instruments: ProxyInstruments;
  readonly #listeners: Listeners;
  readonly #http: HttpSide;
  /** The configuration in force, and the one being put in force while its addresses are bound. */
  #current: Generation | undefined;
  #pending: Generation | undefined;
  /** Stream servers with sessions still open, of any configuration. */
  readonly #liveStreams = new Set<StreamServer>();
  #closing = false;

  constructor(logs: ProxyLogs, instruments: ProxyInstruments) {
    this.#logs = logs;
    this.#instruments = instruments;
    this.#listeners = new Listeners((wanted, listener) => this.#createServer(wanted, listener));
    const http: HttpSide = {
      states: new ServerStates(() => http.queue?.wake()),
      tunnels: new TunnelRegistry(0),
      queue: undefined,
      connections: undefined,
      healthChecks: undefined,
      current: undefined,
      draining: new Set(),
    };
    this.#http = http;
  }

  get addresses(): readonly string[] {
    return this.#current?.config.http?.listen.map(formatListen) ?? [];
  }

  get streams(): readonly StreamServer[] {
    return this.#current?.streams ?? [];
  }

  upstreams(): readonly UpstreamView[] {
    const { current, connections, draining } = this.#http;
    for (const peer of draining) if (peer.active === 0) draining.delete(peer);
    const http: UpstreamView[] =
      current === undefined || this.#current?.config.http === undefined
        ? []
        : [{ kind: 'http', group: current.group, connections, draining: [...draining] }];
    return [...http, ...this.streams.map((stream): UpstreamView => ({ kind: 'stream', group: stream.group }))];
  }

  clientConnections(): Promise<number> {
    return this.#listeners.connections('http');
  }

  tunnels(): number {
    return this.#http.tunnels.size;
  }

  async reload(config: Config): Promise<void> {
    if (this.#closing) return;
    const generation = this.#build(config);
    const wanted: WantedListener[] = [
      ...(config.http?.listen.map((address) => ({ address, kind: 'http' as const })) ?? []),
      ...config.stream.flatMap((stream) => stream.listen.map((address) => ({ address, kind: 'stream' as const }))),
    ];
    this.#warnUnchanged(wanted);
    // Until the swap below, a connection accepted on a new address goes to the
    // configuration in force, or to the new one where none has its kind (the start, the
    // first HTTP listener, a new stream server).
    this.#pending = generation;
    try {
      await this.#listeners.bind(wanted);
    } finally {
      this.#pending = undefined;
    }
    if (this.#closing) {
      // A stop began while the new addresses were being bound: they close with the rest.
      this.#listeners.unbindOthers([]);
      return;
    }
    this.#commit(generation);
    // A kept HTTP address takes the new client limits for its next connection or request.
    for (const address of config.http?.listen ?? []) {
      const server = this.#listeners.get(address)?.server;
      if (server instanceof http.Server) applyClientLimits(server, config.client);
    }
    this.#listeners.unbindOthers(wanted);
  }

  async close(): Promise<void> {
    this.#closing = true;
    const http = this.#http;
    await Promise.all([
      this.#listeners.close(),
      http.tunnels.stopAccepting(),
      http.healthChecks?.close(),
      ...[...this.#liveStreams].map((stream) => stream.drained()),
    ]);
    await http.connections?.close();
  }

  async destroy(): Promise<void> {
    this.#closing = true;
    const ended = [this.#http.tunnels.destroy(), ...[...this.#liveStreams].map((stream) => stream.destroy())];
    this.#listeners.destroy();
    this.#http.connections?.destroy();
    await Promise.all(ended);
  }

  /** The objects of a configuration, without changing anything in force. */
  #build(config: Config): Generation {
    const onHealthEvent = (event: HealthEvent): void =>
      this.#logs.errorLog.warn({ upstream_addr: event.peer.name }, `upstream server temporarily disabled, upstream: "${event.peer.name}"`);
    const streamRoutes = new Map<string, StreamServer>();
    const streamStates = new Map<string, ServerStates>();
    const streams = config.stream.map((stream) => {
      // A stream server is known across reloads by its first listen address.
      const scope = formatListen(stream.listen[0]!);
      const states = this.#current?.streamStates.get(scope) ?? new ServerStates();
      streamStates.set(scope, states);
      const server = new StreamServer(stream, { ...this.#logs, onHealthEvent, states, observer: this.#instruments.observer });
      for (const address of stream.listen) streamRoutes.set(formatListen(address), server);
      return server;
    });
    const http = config.http === undefined ? undefined : this.#forwardContext(config.http, config.proxy, config.client, onHealthEvent);
    return { config, http, streamRoutes, streams, streamStates };
  }

  #forwardContext(config: HttpConfig, proxy: ProxySettings, client: ClientLimits, onHealthEvent: (event: HealthEvent) => void): ForwardContext {
    const side = this.#http;
    const { upstream } = config;
    return {
      group: new UpstreamGroup(upstream, { onHealthEvent, states: side.states }),
      balancer: balancerFor(upstream.balance),
      // Kept when nothing baked into the connections changed; retired at commit otherwise.
      connections: side.connections?.fits(upstream, proxy) ? side.connections : new UpstreamConnections(upstream, proxy),
      tunnels: side.tunnels,
      // One queue across reloads, reconfigured at commit: a slot freed by a request of any
      // configuration may be the one a waiting request needs.
      queue: upstream.queue === undefined ? undefined : (side.queue ?? new RequestQueue(upstream.queue)),
      proxy,
      client,
      requestRules: compileRequestRules(proxy.setHeader),
      errorLog: this.#logs.errorLog,
      accessLog: this.#logs.accessLog,
      observer: this.#instruments.observer,
    };
  }

  /** Puts a built configuration in force; synchronous, so that no request sees half of it. */
  #commit(generation: Generation): void {
    const previous = this.#current;
    this.#current = generation;
    this.#commitHttp(generation.http, generation.config);
    for (const stream of generation.streams) this.#liveStreams.add(stream);
    // The previous stream servers take no new session; each is forgotten once its last one ends.
    for (const stream of previous?.streams ?? []) void stream.drained().then(() => this.#liveStreams.delete(stream));
    for (const stream of generation.config.stream) {
      generation.streamStates.get(formatListen(stream.listen[0]!))!.retain(stream.upstream.servers);
    }
  }

  #commitHttp(forward: ForwardContext | undefined, config: Config): void {
    const side = this.#http;
    const upstream = config.http?.upstream;
    // Servers of the previous configuration the new one does not keep, while requests still run on them.
    const kept = new Set(forward?.group.primary.concat(forward.group.backup).map((peer) => peer.state));
    for (const peer of [...(side.current?.group.primary ?? []), ...(side.current?.group.backup ?? [])]) {
      if (!kept.has(peer.state) && peer.active > 0) side.draining.add(peer);
    }
    side.states.retain(upstream?.servers ?? []);
    if (side.connections !== forward?.connections) side.connections?.retire();
    else side.connections?.retain(upstream!.servers);
    side.connections = forward?.connections;
    // The checks start again on the new server list, from each kept server's state.
    void side.healthChecks?.close();
    side.healthChecks = undefined;
    if (forward === undefined || upstream === undefined) return;
    if (upstream.queue !== undefined) {
      if (side.queue === undefined) side.queue = forward.queue;
      else side.queue.configure(upstream.queue);
    }
    side.tunnels.limit = config.proxy.maxUpgraded;
    if (upstream.healthCheck === undefined) {
      HealthChecks.forget(forward.group);
    } else {
      side.healthChecks = new HealthChecks(forward.group, upstream.healthCheck, {
        host: healthCheckHost(upstream.name, config.proxy.setHeader),
        errorLog: this.#logs.errorLog,
        onChange: () => side.queue?.wake(),
      });
      side.healthChecks.start();
    }
    // Without HTTP in the new configuration the last one stays here: a request arriving on
    // a connection of a listener being closed is still served.
    side.current = forward;
  }

  /** The server for a listen address; its handlers find the configuration in force when a request or session starts. */
  #createServer(wanted: WantedListener, listener: () => Listener): net.Server {
    if (wanted.kind === 'http') {
      const forward = (): ForwardContext => (this.#http.current ?? this.#pending?.http)!;
      return createHttpServer(
        (req, res, expectsContinue) => {
          if (listener().closing) res.shouldKeepAlive = false;
          const exchange = new Exchange(forward(), req, res);
          exchange.start(expectsContinue);
          return exchange;
        },
        (req, res, upgrade) => new Exchange(forward(), req, res, upgrade).start(),
        {
          limits: () => (this.#current ?? this.#pending)!.config.client,
          logs: () => this.#logs,
        },
      );
    }
    const key = formatListen(wanted.address);
    const name = listenerName(wanted.address);
    // pauseOnConnect: nothing is read from a client before its upstream connection is up.
    // noDelay: nginx's `tcp_nodelay on`, the default for both sides of a stream session.
    return net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (client) => {
      const stream = this.#current?.streamRoutes.get(key) ?? this.#pending?.streamRoutes.get(key);
      if (stream === undefined) client.destroy();
      else stream.accept(client, name);
    });
  }

  /**
   * A unix: listen address kept by a reload keeps its socket file, and with it the file's
   * mode and group: a changed `mode=` or `group=` takes effect at the next start (or by
   * removing the address in one reload and adding it back in the next).
   */
  #warnUnchanged(wanted: readonly WantedListener[]): void {
    for (const { address } of wanted) {
      const bound = this.#listeners.get(address)?.address;
      if (address.kind !== 'unix' || bound?.kind !== 'unix') continue;
      if (bound.mode === address.mode && bound.group?.gid === address.group?.gid) continue;
      this.#logs.errorLog.warn(
        { listen: formatListen(address) },
        `listen "${formatListen(address)}": a changed mode= or group= takes effect at restart, the socket file is kept`,
      );
    }
  }
}

