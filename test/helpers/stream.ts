/**
 * The stream (L4) proxy's test kit: a proxy process started on a `stream:` configuration,
 * byte-level upstreams on temp Unix sockets that record what each connection carried, and
 * a binary client. Everything here is real sockets; upstreams are closed by their close().
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { type Running, spawnNode } from './node-process.js';
import { ECHO_SERVER_JS, PROXY_JS } from './paths.js';
import { freePort, type TempDir } from './temp.js';
import { pollUntil } from './wait.js';

/** One connection an upstream accepted, and what came over it. */
export interface UpstreamConnection {
  readonly socket: net.Socket;
  /** Bytes received so far. */
  received(): Buffer;
  /** The client side's FIN arrived (the proxy shut down its write side). */
  ended(): boolean;
}

export interface StreamUpstream {
  readonly path: string;
  /** The server line: "unix:/tmp/…/a.sock". */
  readonly address: string;
  readonly connections: UpstreamConnection[];
  close(): Promise<void>;
}

/**
 * A `net` server on `path` (half-open capable, as an app may be) that records each
 * connection and hands it to `handle`.
 */
export async function streamUpstream(path: string, handle: (connection: UpstreamConnection) => void): Promise<StreamUpstream> {
  const connections: UpstreamConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // The proxy may reset a connection on purpose (a timeout): not this server's concern.
    socket.on('error', () => {});
    const chunks: Buffer[] = [];
    let ended = false;
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => (ended = true));
    const connection: UpstreamConnection = { socket, received: () => Buffer.concat(chunks), ended: () => ended };
    connections.push(connection);
    handle(connection);
  });
  server.listen(path);
  await once(server, 'listening');
  return {
    path,
    address: `unix:${path}`,
    connections,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Echoes every byte back, and ends its side once the other side has ended (a well-behaved echo). */
export function echoUpstream(path: string): Promise<StreamUpstream> {
  return streamUpstream(path, ({ socket }) => socket.pipe(socket));
}

/** A client connection to the proxy, collecting every byte it receives. */
export interface StreamClient {
  readonly socket: net.Socket;
  received(): Buffer;
  /** The proxy sent its FIN. */
  ended(): boolean;
  /** The connection is fully closed (or was reset). */
  closed(): boolean;
  /** Resolves once `predicate` holds, or rejects after `timeoutMs` naming `what`. */
  waitFor(what: string, predicate: () => boolean, timeoutMs?: number): Promise<void>;
}

/** Connects to a TCP port on 127.0.0.1, or to a Unix socket path. */
export async function streamClient(target: number | string): Promise<StreamClient> {
  const socket =
    typeof target === 'number'
      ? net.connect({ port: target, host: '127.0.0.1', allowHalfOpen: true })
      : net.connect({ path: target, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  let ended = false;
  let closed = false;
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.once('end', () => (ended = true));
  socket.once('close', () => (closed = true));
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return {
    socket,
    received: () => Buffer.concat(chunks),
    ended: () => ended,
    closed: () => closed,
    waitFor: (what, predicate, timeoutMs = 5_000) => pollUntil(what, () => (predicate() ? true : undefined), timeoutMs).then(() => {}),
  };
}

/** The proxy started on a stream configuration, and where its first stream server listens. */
export interface StreamProxy {
  readonly process: Running;
  /** The first stream server's TCP port. */
  readonly port: number;
  /** Its stream access-log lines (stdout), parsed. */
  sessions(): Record<string, unknown>[];
  /** Resolves with the first error-log line whose message contains `text`. */
  waitForError(text: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves once `count` sessions have been logged, with their lines. */
  waitForSessions(count: number, timeoutMs?: number): Promise<Record<string, unknown>[]>;
}

/**
 * Starts `node dist/proxy.js` on a configuration with one stream server listening on a
 * free TCP port on 127.0.0.1 (or on `listen`, when given), in front of `servers` (nginx
 * server lines), with `settings` (YAML lines of the stream server).
 */
export async function startStreamProxy(
  tmp: TempDir,
  servers: readonly string[],
  { settings = '', listen }: { settings?: string; listen?: string } = {},
): Promise<StreamProxy> {
  const port = await freePort();
  const settingLines = settings
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => `    ${line}\n`)
    .join('');
  const yaml =
    `stream:\n  - listen: ${JSON.stringify(listen ?? `127.0.0.1:${port}`)}\n` +
    `    upstream:\n      servers:\n${servers.map((s) => `        - ${s}\n`).join('')}${settingLines}`;
  const file = tmp.path(`stream-${port}.yaml`);
  writeFileSync(file, yaml);
  const proxy = spawnNode(PROXY_JS, ['--config', file]);
  await proxy.waitForLog((line) => String(line.msg ?? '').includes('listening on'));
  const sessions = (): Record<string, unknown>[] => proxy.accessLog().filter((line) => 'session_time' in line);
  return {
    process: proxy,
    port,
    sessions,
    waitForError: (text, timeoutMs) => proxy.waitForLog((line) => String(line.msg ?? '').includes(text), timeoutMs),
    waitForSessions: (count, timeoutMs) =>
      proxy.waitFor(`${count} stream access-log lines`, () => (sessions().length >= count ? sessions() : undefined), timeoutMs),
  };
}

/** `node dist/echo-server.js --bind ADDRESS`, resolved once it says it listens. */
export async function startEchoServer(bind: string): Promise<Running> {
  const server = spawnNode(ECHO_SERVER_JS, ['--bind', bind]);
  await server.waitForStderr(/listening on /);
  return server;
}
