import type { Socket } from 'node:net';
import { buildConnector, Client } from 'undici';
import type { ProxySettings, ServerConfig, SocketAddress, UpstreamConfig } from '../config/types.js';
import { formatAddress } from '../upstream/address.js';
import type { Peer } from '../upstream/peer.js';

/**
 * undici subtracts this from a server's `Keep-Alive: timeout=N` hint. Its default (2 s)
 * would turn Node's and the sample app's `timeout=2` hint into "never reuse".
 */
const KEEPALIVE_HINT_MARGIN_MS = 500;

/** RFC 9110 §9.2.2. */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** What a connection tells the attempt using it. */
export interface ConnectionUser {
  /** The app closed the connection (FIN), maybe with the end of the response still unparsed. */
  onUpstreamEnd(): void;
}

/**
 * One connection to an upstream server: an undici Client carrying one request at a time.
 * Each ends in `release` (the response was read in full) or `discard` (anything else).
 */
export class Connection {
  readonly client: Client;
  /** The attempt using it now. */
  user: ConnectionUser | undefined;
  /** Responses carried to the end: a connection with any is a reused one. */
  #served = 0;
  #socket: Socket | undefined;
  #closed = false;
  readonly #server: ServerConnections;

  constructor(server: ServerConnections, createClient: (connection: Connection) => Client) {
    this.#server = server;
    this.client = createClient(this);
    // Only an idle connection is closed when its socket goes. While an attempt holds it,
    // a socket failure is the attempt's to report (undici fails the request, and the
    // attempt discards the connection); and the 'disconnect' may be the previous socket's,
    // closed by undici's keep-alive timer in the event-loop turn before this request was
    // handed the connection: undici then connects again for the request, which destroying
    // the client here would fail ("The client is destroyed", a 502).
    this.client.on('disconnect', () => {
      if (this.user === undefined) this.#close();
    });
  }

  /** Called by the connector with the new socket, before undici adds its own listeners. */
  attach(socket: Socket): void {
    this.#socket = socket;
    socket.on('end', () => this.user?.onUpstreamEnd());
  }

  /** socket.bytesRead, to tell later whether any of a response arrived (0 before connecting). */
  get bytesRead(): number {
    return this.#socket?.bytesRead ?? 0;
  }

  get reused(): boolean {
    return this.#served > 0;
  }

  /**
   * The response ended and the connection may carry another (`reusable`: the app did not
   * say `Connection: close`). nginx's `keepalive N` keeps at most N idle connections per
   * server (ngx_http_upstream_free_keepalive_peer); past that, this one is closed.
   */
  release(reusable: boolean): void {
    this.#served++;
    this.user = undefined;
    // At keepalive_requests undici closes the socket itself, just after this returns.
    if (reusable && !this.#closed && this.#served < this.#server.maxRequests && this.#server.keep(this)) return;
    this.#closed = true;
    this.#server.forget(this);
    void this.client.close();
  }

  /** The attempt failed or was abandoned: the connection is never used again. */
  discard(): void {
    this.user = undefined;
    this.#close();
  }

  /**
   * The keep-alive race (README, "Keep-alive to the app"): the app closed an idle
   * connection as the proxy wrote the next request into it. It applies to a reused
   * connection that failed before any byte of the response. ECONNRESET (closed with our
   * request unread) and EPIPE (written into a closed socket) mean the app never read the
   * request, so any method can go again; undici's "other side closed" (a FIN) looks the
   * same as an app that read the request and died, so, as Go's net/http does, only an
   * idempotent one.
   */
  lostKeepaliveRace(error: Error, method: string, bytesReadAtStart: number): boolean {
    if (!this.reused || this.bytesRead !== bytesReadAtStart) return false;
    const { code } = error as NodeJS.ErrnoException;
    return code === 'ECONNRESET' || code === 'EPIPE' || (code === 'UND_ERR_SOCKET' && IDEMPOTENT_METHODS.has(method));
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.forget(this);
    // destroy(), not close(): after an aborted request, undici 7 would otherwise open a
    // connection for nothing (nodejs/undici#5845).
    this.client.destroy().catch(() => {
      // Already destroyed.
    });
  }
}

/** One server's connections: the idle ones, most recently used last, and all of them. */
class ServerConnections {
  readonly idle: Connection[] = [];
  readonly all = new Set<Connection>();
  readonly #keepalive: number;
  /** keepalive_requests: responses one connection carries at most. */
  readonly maxRequests: number;
  /** Opens a socket to the server (undici's connector, built once per server). */
  readonly connect: buildConnector.connector;
  readonly origin: string;
  #retired = false;

  constructor(upstream: UpstreamConfig, address: SocketAddress, connectTimeoutMs: number) {
    this.#keepalive = upstream.keepalive;
    this.maxRequests = upstream.keepaliveRequests;
    this.connect = buildConnector({
      timeout: connectTimeoutMs,
      ...(address.kind === 'unix' ? { socketPath: address.path } : {}),
    });
    this.origin =
      address.kind === 'unix'
        ? 'http://localhost'
        : `http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
  }

  /**
   * The server left the configuration: its idle connections close now, and those carrying
   * a request close when it ends (a removed server's pool drains, then closes).
   */
  retire(): void {
    this.#retired = true;
    for (const connection of this.idle.splice(0)) connection.release(false);
  }

  keep(connection: Connection): boolean {
    if (this.#retired || this.idle.length >= this.#keepalive) return false;
    this.idle.push(connection);
    return true;
  }

  forget(connection: Connection): void {
    this.all.delete(connection);
    const index = this.idle.indexOf(connection);
    if (index !== -1) this.idle.splice(index, 1);
  }
}

/**
 * The connections to every upstream server. An idle connection is reused most recently
 * used first, as nginx's keepalive cache does; a new one is opened only when none is idle.
 * (undici's Pool hands a request to the first client in its list that is not busy,
 * connected or not, which reconnects a client whose connection was closed while other
 * connections sit idle.) Everything that talks to an upstream goes through here.
 */
export class UpstreamConnections {
  /** By server address ("unix:/run/app.sock"): the servers of the configuration in force. */
  readonly #servers = new Map<string, ServerConnections>();
  /** Their addresses: a request still running on an older configuration may use others. */
  #current: ReadonlySet<string>;
  readonly #upstream: UpstreamConfig;
  readonly #proxy: ProxySettings;

  constructor(upstream: UpstreamConfig, proxy: ProxySettings) {
    this.#upstream = upstream;
    this.#proxy = proxy;
    this.#current = new Set(upstream.servers.map((server) => formatAddress(server.address)));
  }

  /**
   * Whether a new configuration can use these connections: every setting baked into them
   * (keep-alive, timeouts, the header size limit) is the same. If not, it gets new ones and
   * these are retired.
   */
  fits(upstream: UpstreamConfig, proxy: ProxySettings): boolean {
    const [a, b] = [this.#upstream, upstream];
    return (
      a.keepalive === b.keepalive &&
      a.keepaliveTimeoutMs === b.keepaliveTimeoutMs &&
      a.keepaliveRequests === b.keepaliveRequests &&
      this.#proxy.connectTimeoutMs === proxy.connectTimeoutMs &&
      this.#proxy.readTimeoutMs === proxy.readTimeoutMs &&
      this.#proxy.bufferSizeBytes === proxy.bufferSizeBytes
    );
  }

  /**
   * A reload kept these connections: the servers still listed keep theirs, idle ones
   * included; a removed server's pool drains and closes (ServerConnections.retire).
   */
  retain(servers: readonly ServerConfig[]): void {
    this.#current = new Set(servers.map((server) => formatAddress(server.address)));
    for (const [name, server] of this.#servers) {
      if (this.#current.has(name)) continue;
      server.retire();
      this.#servers.delete(name);
    }
  }

  /** A reload replaced these connections: every pool drains and closes. */
  retire(): void {
    this.retain([]);
  }

  /** Closes every connection now (the end of a stop that ran out of time). */
  destroy(): void {
    for (const server of this.#servers.values()) for (const connection of [...server.all]) connection.discard();
    this.#servers.clear();
  }

  /**
   * A connection for one request to `peer`: the most recently used idle one, or a new one.
   * `fresh` forces a new one, for a request that lost the keep-alive race.
   */
  acquire(peer: Peer, fresh = false): Connection {
    const server = this.#server(peer);
    const idle = fresh ? undefined : server.idle.pop();
    if (idle !== undefined) return idle;
    const connection = new Connection(server, (owner) => this.#client(server, owner));
    server.all.add(connection);
    return connection;
  }

  /** The connections to `peer` now, idle (kept alive) and carrying a request; for /status. */
  count(peer: Peer): { idle: number; active: number } {
    const server = this.#servers.get(peer.name);
    if (server === undefined) return { idle: 0, active: 0 };
    return { idle: server.idle.length, active: server.all.size - server.idle.length };
  }

  async close(): Promise<void> {
    const clients = [...this.#servers.values()].flatMap((server) => [...server.all].map((connection) => connection.client));
    await Promise.all(clients.map((client) => client.close()));
    this.#servers.clear();
  }

  #server(peer: Peer): ServerConnections {
    let server = this.#servers.get(peer.name);
    if (server === undefined) {
      server = new ServerConnections(this.#upstream, peer.config.address, this.#proxy.connectTimeoutMs);
      // A retry of a request that began before a reload, to a server the reload removed:
      // its connection closes after it.
      if (this.#current.has(peer.name)) this.#servers.set(peer.name, server);
      else server.retire();
    }
    return server;
  }

  #client(server: ServerConnections, connection: Connection): Client {
    const { keepalive, keepaliveRequests } = this.#upstream;
    return new Client(server.origin, {
      connect: (options, callback) => {
        server.connect(options, (...result) => {
          if (result[0] === null) connection.attach(result[1] as Socket);
          callback(...result);
        });
      },
      // undici's pipelining 0 means "no keep-alive": nginx's `keepalive 0`, or one request per connection.
      pipelining: keepalive === 0 || keepaliveRequests === 1 ? 0 : 1,
      // keepalive_timeout, also as the ceiling on the app's own Keep-Alive hint.
      keepAliveTimeout: this.#upstream.keepaliveTimeoutMs,
      keepAliveMaxTimeout: this.#upstream.keepaliveTimeoutMs,
      keepAliveTimeoutThreshold: KEEPALIVE_HINT_MARGIN_MS,
      // undici closes a connection on the request after the limit (its counter is checked
      // before it is incremented), so N - 1 makes N requests per connection, as nginx's.
      maxRequestsPerClient: keepaliveRequests - 1,
      // proxy_buffer_size: a larger header block is "upstream sent too big header" (invalid_header).
      maxHeaderSize: this.#proxy.bufferSizeBytes,
      // proxy_read_timeout: the time between two reads, before and after the headers.
      headersTimeout: this.#proxy.readTimeoutMs,
      bodyTimeout: this.#proxy.readTimeoutMs,
    });
  }
}
