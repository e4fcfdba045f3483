import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is compiled to dist-bench/lib/util.js). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

export function which(command: string, extraDirs: readonly string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...extraDirs];
  for (const dir of dirs) {
    try {
      accessSync(`${dir}/${command}`, constants.X_OK);
      return `${dir}/${command}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * CPU pinning: with taskset and at least two cores, the servers (upstream and proxy)
 * share core 0 and the load generator gets core 1, so the two sides never compete.
 */
export interface Pinning {
  readonly server: string | undefined;
  readonly load: string | undefined;
}

export function detectPinning(): Pinning {
  const taskset = which('taskset');
  if (taskset === undefined || os.availableParallelism() < 2) return { server: undefined, load: undefined };
  return { server: '0', load: '1' };
}

/**
 * Descriptors a server or wrk needs for the 1,000-client scenario (clients, upstream
 * connections, temp files). Where the soft limit is lower (often 1024), children are
 * started under prlimit, which raises it up to the hard limit and execs.
 */
const NOFILE = 16_384;
let nofile: { soft: number; hard: number } | undefined | null = null;

function nofileRaise(): { soft: number; hard: number } | undefined {
  if (nofile === null) {
    nofile = undefined;
    try {
      const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
      const parse = (v: string | undefined): number => (v === undefined || v === 'unlimited' ? Infinity : Number(v));
      const soft = parse(match?.[1]);
      const hard = parse(match?.[2]);
      const target = Math.min(NOFILE, hard);
      if (soft < target && which('prlimit') !== undefined) nofile = { soft: target, hard };
    } catch {
      // not Linux: leave it
    }
  }
  return nofile;
}

/** The descriptors children may open: a warning for the 1,000-client scenario if too few. */
export function openFileLimit(): number {
  const raised = nofileRaise();
  if (raised !== undefined) return raised.soft;
  const match = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return match === null || match[1] === 'unlimited' ? Infinity : Number(match[1]);
}

/** `command args` run on `cpus` (taskset and prlimit exec it, so the pid is the command's own). */
export function pinned(cpus: string | undefined, command: string, args: readonly string[]): [string, string[]] {
  const argv: string[] = cpus === undefined ? [command, ...args] : ['taskset', '-c', cpus, command, ...args];
  const raise = nofileRaise();
  if (raise !== undefined) argv.unshift('prlimit', `--nofile=${raise.soft}:${Number.isFinite(raise.hard) ? raise.hard : 'unlimited'}`);
  return [argv[0]!, argv.slice(1)];
}

export function spawnPinned(
  cpus: string | undefined,
  command: string,
  args: readonly string[],
  options: SpawnOptions,
): ChildProcess {
  const [cmd, argv] = pinned(cpus, command, args);
  return spawn(cmd, argv, options);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}

export interface Reply {
  readonly status: number;
  readonly body: Buffer;
}

/** One request on a connection of its own. */
export function request(port: number, method: string, path: string, body?: Buffer, timeoutMs = 5000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: body === undefined ? {} : { 'content-type': 'application/octet-stream', 'content-length': body.length },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Waits until `GET /` on the port answers 200, or the child exits, or time runs out. */
export async function waitReady(port: number, child: ChildProcess, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before it answered`);
    }
    try {
      const reply = await request(port, 'GET', '/', undefined, 1000);
      if (reply.status === 200) return;
      lastError = `status ${reply.status}`;
    } catch (err) {
      lastError = (err as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`${what} did not answer on port ${port} within ${timeoutMs} ms (${lastError})`);
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
