#!/usr/bin/env node
/**
 * The Unix-domain-socket echo server of the demo (README: "The echo demo"): a SOCK_STREAM
 * server that accepts connections in a loop and sends every chunk back as it arrives.
 * Socket-file handling is Gunicorn's, through server/listen.ts: a live server on the path
 * is an error, a stale file is replaced, and the file is removed on SIGINT/SIGTERM.
 *
 *   node dist/echo-server.js --bind unix:/tmp/echo.sock
 */
import net from 'node:net';
import { parseArgs } from 'node:util';
import { formatListen, parseListen } from './config/listen.js';
import type { ListenAddress } from './config/types.js';
import { describeErrno } from './server/errno.js';
import { listen, ListenError, unlinkSocket } from './server/listen.js';

const EXIT_START_FAILED = 1;
const EXIT_USAGE = 2;
/** A received chunk is printed when it is this short; longer ones by their size only. */
const PRINTABLE_CHUNK_BYTES = 64;

const USAGE = `usage: node dist/echo-server.js --bind ADDRESS

An echo server: every connection gets back each chunk it sends, until it closes.

  -b, --bind ADDRESS   unix:PATH (a SOCK_STREAM Unix domain socket), HOST:PORT, [IPv6]:PORT or PORT
  -h, --help           show this help

A server already listening on the path is an error (exit 1); a stale socket file left
by a dead process is replaced; a file that is not a socket is never deleted.
SIGINT or SIGTERM removes the socket file, closes the connections and exits 0.`;

function log(line: string): void {
  process.stderr.write(`[echo-server] ${line}\n`);
}

/** The address to bind, or 'help'; throws with a message for a bad command line. */
function parseOptions(argv: readonly string[]): ListenAddress | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: { bind: { type: 'string', short: 'b' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) return 'help';
  if (values.bind === undefined) throw new Error('--bind ADDRESS is required, e.g. --bind unix:/tmp/echo.sock');
  const address = parseListen(values.bind);
  if ('error' in address) throw new Error(`--bind: ${address.error}`);
  return address;
}

/** Echoes one connection: what it sends comes back, in order, with backpressure; its FIN is answered with ours. */
function echo(socket: net.Socket, id: number): void {
  const from = socket.remoteAddress === undefined ? 'a local process' : `${socket.remoteAddress}:${socket.remotePort}`;
  log(`#${id} connection from ${from}`);
  socket.on('data', (chunk: Buffer) => {
    const shown = chunk.length <= PRINTABLE_CHUNK_BYTES ? `: ${JSON.stringify(chunk.toString('latin1'))}` : '';
    log(`#${id} received ${chunk.length} bytes${shown}, sending them back`);
  });
  socket.on('error', (err: NodeJS.ErrnoException) => log(`#${id} ${describeErrno(err)}`));
  socket.once('close', () => log(`#${id} closed, ${socket.bytesWritten} bytes echoed`));
  socket.pipe(socket);
}

async function main(): Promise<number> {
  let address: ListenAddress | 'help';
  try {
    address = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`[echo-server] error: ${(err as Error).message}\n${USAGE.split('\n')[0]}\n`);
    return EXIT_USAGE;
  }
  if (address === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }

  let connections = 0;
  const open = new Set<net.Socket>();
  // allowHalfOpen: a client that shuts down its write side still gets the rest of its echo.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    echo(socket, ++connections);
  });
  try {
    await listen(server, address);
  } catch (err) {
    if (!(err instanceof ListenError)) throw err;
    log(`error: ${err.message}`);
    return EXIT_START_FAILED;
  }
  // Handlers first: whoever reads the listening line may signal at once, and until a
  // handler exists SIGTERM kills the process without removing the socket file.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  log(`listening on ${formatListen(address)} (pid ${process.pid})`);

  const signal = await stopSignal;
  // The socket file goes first, as Gunicorn's does: a new client gets "No such file or
  // directory" at once rather than a connection nobody will serve.
  if (address.kind === 'unix') unlinkSocket(address.path);
  log(`${signal} received, ${address.kind === 'unix' ? `removed ${address.path}, ` : ''}closing ${open.size} connection(s)`);
  for (const socket of open) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return 0;
}

process.exitCode = await main();
