#!/usr/bin/env node
/**
 * The sample app server: a stand-in for Gunicorn, with Gunicorn's flags and socket
 * behaviour (gunicorn/sock.py, arbiter.py) so that sockproxy can be tested and demoed
 * against what it meets in production. Endpoints are in ./app/handlers.ts.
 *
 *   node dist/app.js --bind unix:/tmp/app.sock --workers 2
 */
import cluster, { type Worker } from 'node:cluster';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createHandler } from './app/handlers.js';
import { createUpgradeEndpoints, type UpgradeEndpoints } from './app/websocket.js';
import { formatListen, parseListen } from './config/listen.js';
import type { ListenAddress } from './config/types.js';
import { claimUnixPath, listen, ListenError, unlinkSocket } from './server/listen.js';

const USAGE = `usage: node dist/app.js [options]

  -b, --bind ADDRESS           HOST:PORT, [IPv6]:PORT, PORT or unix:PATH; repeatable
                               (default 127.0.0.1:8000)
  -w, --workers N              worker processes sharing the listeners (default 1)
      --keep-alive SECONDS     idle keep-alive connections are closed after this long;
                               0 closes every connection after its response (default 2)
      --umask MASK             file-mode mask while the socket file is created: 0o007, 007
                               (octal), 0x1f (hex), 7 (decimal, as Python's int(x, 0));
                               default 0, so the socket is 0777
      --graceful-timeout SECONDS
                               on SIGTERM, time for in-flight requests to finish (default 30)
  -h, --help                   show this help

SIGTERM: stop accepting, remove the socket file, finish in-flight requests, exit 0.
SIGINT: the same, without waiting for in-flight requests.`;

interface AppOptions {
  readonly binds: readonly ListenAddress[];
  readonly workers: number;
  readonly keepAliveSec: number;
  readonly umask: number;
  readonly gracefulTimeoutSec: number;
}

/** What a cluster worker tells the primary about its listeners. */
type WorkerMessage = { readonly type: 'ready' } | { readonly type: 'failed'; readonly message: string };

function parseOptions(argv: readonly string[]): AppOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      bind: { type: 'string', short: 'b', multiple: true },
      workers: { type: 'string', short: 'w' },
      'keep-alive': { type: 'string' },
      umask: { type: 'string' },
      'graceful-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  // Gunicorn's defaults: bind 127.0.0.1:8000, 1 worker, keepalive 2, umask 0, graceful_timeout 30.
  const binds = (values.bind ?? ['127.0.0.1:8000']).map((text) => {
    const parsed = parseListen(text);
    if ('error' in parsed) throw new Error(`--bind: ${parsed.error}`);
    return parsed;
  });
  const workers = parseNumber('--workers', values.workers, 1);
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`--workers must be an integer >= 1, got "${values.workers}"`);
  return {
    binds,
    workers,
    keepAliveSec: parseNumber('--keep-alive', values['keep-alive'], 2),
    umask: parseUmask(values.umask),
    gracefulTimeoutSec: parseNumber('--graceful-timeout', values['graceful-timeout'], 30),
  };
}

/** A non-negative number of seconds (or a count); fractions are allowed for fast tests. */
function parseNumber(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+(\.\d+)?$/.test(text)) throw new Error(`${flag} must be a non-negative number, got "${text}"`);
  return Number(text);
}

/** Python's int(x, 0), which Gunicorn uses for --umask, plus a leading 0 meaning octal as in chmod/umask(1). */
function parseUmask(text: string | undefined): number {
  if (text === undefined) return 0;
  let mask: number | undefined;
  if (/^0o[0-7]+$/i.test(text)) mask = parseInt(text.slice(2), 8);
  else if (/^0x[0-9a-f]+$/i.test(text)) mask = parseInt(text.slice(2), 16);
  else if (/^0[0-7]*$/.test(text)) mask = parseInt(text, 8);
  else if (/^[1-9]\d*$/.test(text)) mask = parseInt(text, 10);
  if (mask === undefined || mask > 0o777) throw new Error(`--umask must be a mask 0..0o777 (0o007, 007, 0x7 or 7), got "${text}"`);
  return mask;
}

/** The listeners of one process, and the WebSockets they upgraded (no longer theirs to close). */
interface AppServers {
  readonly servers: http.Server[];
  readonly upgrades: UpgradeEndpoints;
}

/** One http server per --bind, all answering with the same handler (and request counter). */
async function startServers(options: AppOptions): Promise<AppServers> {
  const handle = createHandler();
  const upgrades = createUpgradeEndpoints(handle);
  const servers: http.Server[] = [];
  try {
    for (const address of options.binds) {
      const server = http.createServer((req, res) => {
        // Gunicorn's keepalive <= 0 means no keep-alive at all; node's 0 would mean "forever".
        if (options.keepAliveSec === 0) res.shouldKeepAlive = false;
        // During a graceful stop, a connection whose response just ended is idle and must be
        // closed now, not after keepAliveTimeout, or shutdown waits for every idle client.
        res.on('finish', () => {
          if (!server.listening) setImmediate(() => server.closeIdleConnections());
        });
        handle(req, res);
      });
      server.on('upgrade', upgrades.handle);
      server.keepAliveTimeout = options.keepAliveSec * 1000;
      servers.push(server);
      await listen(server, address, { umask: options.umask });
    }
  } catch (err) {
    // Close what did bind, which also removes the socket files we created.
    for (const server of servers) server.close();
    throw err;
  }
  return { servers, upgrades };
}

/**
 * Stops serving: listeners close at once (node removes the socket file it created), idle
 * connections are closed, WebSockets are told the server is going away, and in-flight
 * requests get gracefulTimeoutSec unless `quick`.
 */
function stopServers({ servers, upgrades }: AppServers, options: AppOptions, quick: boolean): void {
  upgrades.close();
  const closed = servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
  for (const server of servers) {
    if (quick) server.closeAllConnections();
    else server.closeIdleConnections();
  }
  void Promise.all(closed).then(() => process.exit(0));
  setTimeout(() => process.exit(0), quick ? 0 : options.gracefulTimeoutSec * 1000).unref();
}

function unlinkSockets(options: AppOptions): void {
  for (const address of options.binds) if (address.kind === 'unix') unlinkSocket(address.path);
}

function announce(options: AppOptions): void {
  const lines = options.binds.map(
    (address) => `[app] listening at ${formatListen(address)} (pid ${process.pid}, workers ${options.workers})\n`,
  );
  // One write, so a reader that waits for the first line has all of them (pipe writes up to
  // PIPE_BUF are atomic).
  process.stderr.write(lines.join(''));
}

/** Gunicorn's signals: TERM is a graceful stop, INT a quick one; a second signal hurries the first. */
function onStopSignals(stop: (quick: boolean) => void): void {
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      const quick = stopping || signal === 'SIGINT';
      stopping = true;
      stop(quick);
    });
  }
}

function fail(message: string): never {
  process.stderr.write(`[app] error: ${message}\n`);
  process.exit(1);
}

async function runSingle(options: AppOptions): Promise<void> {
  const servers = await startServers(options);
  // Handlers first: whoever reads the listening line may signal at once, and until a
  // handler exists SIGTERM kills the process without unlinking the socket.
  onStopSignals((quick) => {
    // Gunicorn unlinks its listeners first (arbiter.stop → close_sockets(unlink=True)), so a
    // proxy gets an immediate ENOENT instead of queueing on a server that is going away.
    unlinkSockets(options);
    stopServers(servers, options, quick);
  });
  announce(options);
}

async function runPrimary(options: AppOptions): Promise<void> {
  // node's cluster binds in this process when the first worker listens (RoundRobinHandle),
  // so Gunicorn's stale-socket check and the umask belong here, once, before any fork.
  for (const address of options.binds) if (address.kind === 'unix') await claimUnixPath(address.path);
  const previousUmask = process.umask(options.umask);

  const workers = new Set<Worker>();
  let readyCount = 0;
  let stopping = false;

  const fork = (): void => {
    const worker = cluster.fork();
    workers.add(worker);
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'failed') abort(message.message);
      readyCount += 1;
      if (readyCount === 1) process.umask(previousUmask);
      if (readyCount === options.workers) announce(options);
    });
  };
  const stopWorkers = (signal: NodeJS.Signals): void => {
    stopping = true;
    for (const worker of workers) worker.process.kill(signal);
  };
  // A start that fails after some listener was bound: the socket files are ours (claimed
  // above), and nobody else would remove them.
  const abort = (message: string): never => {
    stopWorkers('SIGKILL');
    unlinkSockets(options);
    return fail(message);
  };

  cluster.on('exit', (worker, code, signal) => {
    workers.delete(worker);
    if (stopping) {
      if (workers.size === 0) process.exit(0);
    } else if (readyCount < options.workers) {
      abort(`worker ${worker.process.pid} exited during start (${signal ?? `code ${code}`})`);
    } else {
      // Like Gunicorn's arbiter, keep the configured number of workers alive.
      fork();
    }
  });

  onStopSignals((quick) => {
    unlinkSockets(options);
    stopWorkers(quick ? 'SIGINT' : 'SIGTERM');
    // A worker stuck past its own graceful timeout is killed, as Gunicorn's arbiter does.
    setTimeout(() => stopWorkers('SIGKILL'), options.gracefulTimeoutSec * 1000 + 1000).unref();
  });

  for (let i = 0; i < options.workers; i += 1) fork();
}

async function runWorker(options: AppOptions): Promise<void> {
  const send = (message: WorkerMessage, then?: () => void): void => {
    process.send?.(message, undefined, undefined, then);
  };
  let servers: AppServers;
  try {
    servers = await startServers(options);
  } catch (err) {
    if (!(err instanceof ListenError)) throw err;
    send({ type: 'failed', message: err.message }, () => process.exit(1));
    return;
  }
  // The primary unlinks the socket files; a worker only stops serving.
  onStopSignals((quick) => stopServers(servers, options, quick));
  send({ type: 'ready' });
}

async function main(): Promise<void> {
  let options: AppOptions | 'help';
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    // Unknown flags and bad values: argparse's (and so Gunicorn's) usage error, exit 2.
    process.stderr.write(`[app] error: ${(err as Error).message}\n${USAGE.split('\n')[0]}\n`);
    process.exit(2);
  }
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  try {
    if (cluster.isWorker) await runWorker(options);
    else if (options.workers === 1) await runSingle(options);
    else await runPrimary(options);
  } catch (err) {
    // A socket in use or a file in the way is an operator's problem: one line, no stack.
    if (err instanceof ListenError) fail(err.message);
    throw err;
  }
}

await main();
