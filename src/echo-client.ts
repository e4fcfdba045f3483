#!/usr/bin/env node
/**
 * The echo demo's client (README: "The echo demo"): connects to an echo server, directly on
 * its Unix socket or through sockproxy's stream proxy, sends two messages, checks that each
 * comes back unchanged, and closes. Exit 0 when every echo matched, 1 otherwise.
 *
 *   node dist/echo-client.js --connect unix:/tmp/echo.sock
 *   node dist/echo-client.js --connect 127.0.0.1:9000
 */
import net from 'node:net';
import { parseArgs } from 'node:util';
import { parseListen } from './config/listen.js';
import type { ListenAddress } from './config/types.js';
import { connectFailure, describeErrno } from './server/errno.js';

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const MESSAGES = ['Hello, world!', 'My name is Tom!'];
const DEFAULT_TIMEOUT_SEC = 10;

const USAGE = `usage: node dist/echo-client.js --connect ADDRESS [--timeout SECONDS]

Sends ${MESSAGES.map((m) => JSON.stringify(m)).join(' and ')} to an echo server, prints each echo, and closes.

  -c, --connect ADDRESS   unix:PATH, HOST:PORT, [IPv6]:PORT, or PORT (on localhost)
      --timeout SECONDS   how long to wait for each echo and for the server to close (default ${DEFAULT_TIMEOUT_SEC})
  -h, --help              show this help

Exit status: 0 when every echo came back unchanged; 1 when one differed, the server
could not be reached, or it closed or went quiet too early; 2 for a bad command line.`;

interface Options {
  readonly address: ListenAddress;
  readonly timeoutMs: number;
}

/** A failure the client reports in one line and exits 1 for. */
class EchoFailure extends Error {}

function parseOptions(argv: readonly string[]): Options | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      connect: { type: 'string', short: 'c' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (values.connect === undefined) throw new Error('--connect ADDRESS is required, e.g. --connect unix:/tmp/echo.sock');
  const address = parseListen(values.connect);
  if ('error' in address) throw new Error(`--connect: ${address.error}`);
  const timeoutText = values.timeout ?? String(DEFAULT_TIMEOUT_SEC);
  if (!/^\d+(\.\d+)?$/.test(timeoutText) || Number(timeoutText) === 0) {
    throw new Error(`--timeout must be a number of seconds above 0, got "${timeoutText}"`);
  }
  return { address, timeoutMs: Number(timeoutText) * 1000 };
}

/** "unix:/tmp/echo.sock", "127.0.0.1:9000", "[::1]:9000", "localhost:9000". */
function describeTarget(address: ListenAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  const host = address.host ?? 'localhost';
  return host.includes(':') ? `[${host}]:${address.port}` : `${host}:${address.port}`;
}

/** The bytes a connection receives, read in exact amounts, with a deadline for each read. */
class Reader {
  #buffered = Buffer.alloc(0);
  #ended = false;
  #error: NodeJS.ErrnoException | undefined;
  #wake: (() => void) | undefined;

  constructor(socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#buffered = Buffer.concat([this.#buffered, chunk]);
      this.#wake?.();
    });
    socket.once('end', () => {
      this.#ended = true;
      this.#wake?.();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      this.#error = err;
      this.#wake?.();
    });
  }

  /** Exactly `n` bytes; fails if the connection ends, errs or stays quiet for `timeoutMs` first. */
  async read(n: number, timeoutMs: number): Promise<Buffer> {
    await this.#until(() => this.#buffered.length >= n, timeoutMs, () => `${this.#buffered.length} of ${n} bytes`);
    const bytes = this.#buffered.subarray(0, n);
    this.#buffered = this.#buffered.subarray(n);
    return bytes;
  }

  /** Waits for the server's FIN; anything received first is an echo nobody asked for. */
  async end(timeoutMs: number): Promise<void> {
    await this.#until(() => false, timeoutMs, () => 'the server to close the connection', true);
    if (this.#buffered.length > 0) {
      throw new EchoFailure(`the server sent ${this.#buffered.length} bytes more than it was sent: ${JSON.stringify(this.#buffered.toString('latin1'))}`);
    }
  }

  async #until(done: () => boolean, timeoutMs: number, progress: () => string, endIsDone = false): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new EchoFailure(`no answer within ${timeoutMs / 1000} s (waiting for ${progress()})`)), timeoutMs);
    });
    try {
      while (!done()) {
        if (this.#error !== undefined) {
          const call = this.#error.syscall === 'read' ? 'recv()' : 'send()';
          throw new EchoFailure(`${call} failed (${describeErrno(this.#error)}) after ${progress()}`);
        }
        if (this.#ended) {
          if (endIsDone) return;
          throw new EchoFailure(`the server closed the connection after ${progress()}`);
        }
        await Promise.race([new Promise<void>((resolve) => (this.#wake = resolve)), timedOut]);
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

async function connect(address: ListenAddress, target: string, timeoutMs: number): Promise<net.Socket> {
  const options = address.kind === 'unix' ? { path: address.path } : { host: address.host ?? 'localhost', port: address.port };
  // allowHalfOpen: closing is our shutdown(SHUT_WR) first, then the server's FIN.
  const socket = net.connect({ ...options, allowHalfOpen: true, noDelay: true, timeout: timeoutMs });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => {
      socket.setTimeout(0);
      resolve(socket);
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new EchoFailure(`connect() to ${target} timed out after ${timeoutMs / 1000} s`));
    });
    socket.once('error', (err: NodeJS.ErrnoException) => reject(new EchoFailure(connectFailure(err, target).message)));
  });
}

async function run({ address, timeoutMs }: Options): Promise<void> {
  const target = describeTarget(address);
  process.stdout.write(`connecting to ${target}\n`);
  const socket = await connect(address, target, timeoutMs);
  try {
    const reader = new Reader(socket);
    for (const message of MESSAGES) {
      process.stdout.write(`sending ${JSON.stringify(message)}\n`);
      socket.write(message);
      const echoed = (await reader.read(Buffer.byteLength(message), timeoutMs)).toString();
      process.stdout.write(`received ${JSON.stringify(echoed)}\n`);
      if (echoed !== message) throw new EchoFailure(`the echo differs: sent ${JSON.stringify(message)}, received ${JSON.stringify(echoed)}`);
    }
    process.stdout.write('closing\n');
    socket.end();
    await reader.end(timeoutMs);
  } finally {
    socket.destroy();
  }
}

async function main(): Promise<number> {
  let options: Options | 'help';
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`[echo-client] error: ${(err as Error).message}\n${USAGE.split('\n')[0]}\n`);
    return EXIT_USAGE;
  }
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    await run(options);
    return 0;
  } catch (err) {
    if (!(err instanceof EchoFailure)) throw err;
    process.stderr.write(`[echo-client] error: ${err.message}\n`);
    return EXIT_FAILED;
  }
}

process.exitCode = await main();
