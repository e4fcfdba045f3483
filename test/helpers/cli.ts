import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

export const PROXY_JS = join(import.meta.dirname, '../../dist/proxy.js');
export const APP_JS = join(import.meta.dirname, '../../dist/app.js');
export const PACKAGE_VERSION = (
  JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string }
).version;

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface CliResult extends Exit {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `node SCRIPT ...args` to completion, as a user would from a shell. A process still
 * running after `timeoutMs` is SIGKILLed (the result then has signal "SIGKILL").
 */
export async function runNode(script: string, args: readonly string[], timeoutMs = 15_000): Promise<CliResult> {
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // 'close' rather than 'exit': both pipes have been read to the end.
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  });
  return { code, signal, stdout, stderr };
}

/** `node dist/proxy.js ...args`, run to completion. */
export function runProxy(args: readonly string[], timeoutMs?: number): Promise<CliResult> {
  return runNode(PROXY_JS, args, timeoutMs);
}

/** A long-running child process (the proxy or the sample app) with its output collected. */
export interface Running {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** The JSON lines of stderr (the proxy's error log), parsed; other lines are skipped. */
  errorLog(): Record<string, unknown>[];
  /** Resolves with the stderr text once it matches `pattern`; rejects on exit or after `timeoutMs`. */
  waitForStderr(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /** Resolves with the first parsed error-log line satisfying `predicate`. */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the first parsed stdout line (the proxy's access log) satisfying `predicate`. */
  waitForAccess(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves when the process has exited; rejects after `timeoutMs` if it has not. */
  waitForExit(timeoutMs?: number): Promise<Exit>;
  /** True until the process has exited. */
  alive(): boolean;
}

const running = new Set<Running>();

function parseJsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function pollUntil<T>(
  what: string,
  check: () => T | undefined,
  timeoutMs: number,
  proc?: { alive(): boolean; describe(): string },
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (proc && !proc.alive()) {
      // One last look: the output may have arrived with the exit.
      const last = check();
      if (last !== undefined) return last;
      throw new Error(`process exited while waiting for ${what}\n${proc.describe()}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${proc ? `\n${proc.describe()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Spawns `node SCRIPT ...args` and leaves it running; killAll() (in afterEach) ends it. */
export function spawnNode(script: string, args: readonly string[]): Running {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    }),
  );
  const proc = {
    alive: () => exit === undefined,
    describe: () => `exit: ${JSON.stringify(exit)}\nstderr:\n${err}\nstdout:\n${out}`,
  };
  const handle: Running = {
    child,
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    errorLog: () => parseJsonLines(err),
    waitForStderr: (pattern, timeoutMs = 10_000) =>
      pollUntil(
        `stderr to match ${String(pattern)}`,
        () => ((typeof pattern === 'string' ? err.includes(pattern) : pattern.test(err)) ? err : undefined),
        timeoutMs,
        proc,
      ),
    waitForLog: (predicate, timeoutMs = 10_000) =>
      pollUntil(`a matching error-log line`, () => parseJsonLines(err).find(predicate), timeoutMs, proc),
    waitForAccess: (predicate, timeoutMs = 10_000) =>
      pollUntil(`a matching access-log line`, () => parseJsonLines(out).find(predicate), timeoutMs, proc),
    waitForExit: async (timeoutMs = 10_000) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms\n${proc.describe()}`)), timeoutMs);
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    alive: proc.alive,
  };
  running.add(handle);
  void exited.then(() => running.delete(handle));
  return handle;
}

/** SIGKILLs every process spawnNode started that is still running, and waits for them. */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...running].map(async (proc) => {
      if (proc.alive()) proc.child.kill('SIGKILL');
      await proc.waitForExit(5_000);
    }),
  );
}

/** The proxy, started with `--config FILE`, resolved once it says where it listens. */
export async function startProxyWithConfig(configFile: string): Promise<Running> {
  const proxy = spawnNode(PROXY_JS, ['--config', configFile]);
  await proxy.waitForLog((line) => String(line.msg ?? '').includes('listening on'));
  return proxy;
}

/** The sample app on `bind` (e.g. "unix:/tmp/x/app.sock"), resolved once it says it listens. */
export async function startApp(bind: string, extraArgs: readonly string[] = []): Promise<Running> {
  const app = spawnNode(APP_JS, ['--bind', bind, ...extraArgs]);
  await app.waitForStderr(`[app] listening at ${bind}`);
  return app;
}

/** Lines of a stack trace ("    at fn (file:1:2)") in `text`. */
export function stackLines(text: string): string[] {
  return text.split('\n').filter((line) => /^\s+at /.test(line));
}

/** Polls until a TCP connect to 127.0.0.1:port is refused (the listener is closed). */
export async function waitForRefused(port: number, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    if (result === 'ECONNREFUSED') return;
    if (Date.now() > deadline) throw new Error(`127.0.0.1:${port} still accepts connections after ${timeoutMs} ms (${result})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
