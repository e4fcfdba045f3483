/**
 * `node SCRIPT ...args` as a real child process, the way a user runs the proxy or the
 * sample app: run to completion (runNode), or left running with its output collected
 * (spawnNode). Every process spawnNode starts is SIGKILLed by killAll() (call it in
 * afterEach or afterAll); the sample app's cluster workers exit by themselves when their
 * primary's IPC channel goes away.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil } from './wait.js';

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface RunResult extends Exit {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `node SCRIPT ...args` to completion, as a user would from a shell. A process still
 * running after `timeoutMs` is SIGKILLed (the result then has signal "SIGKILL").
 */
export async function runNode(script: string, args: readonly string[], timeoutMs = 15_000): Promise<RunResult> {
  const proc = spawnNode(script, args);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  const exit = await proc.exited;
  clearTimeout(timer);
  return { ...exit, stdout: proc.stdout(), stderr: proc.stderr() };
}

/** A long-running child process (the proxy or the sample app) with its output collected. */
export interface Running {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** The JSON lines of stderr (the proxy's error log), parsed; other lines are skipped. */
  errorLog(): Record<string, unknown>[];
  /** The JSON lines of stdout (the proxy's access log, by default), parsed. */
  accessLog(): Record<string, unknown>[];
  /**
   * Polls `check` until it gives a value, and resolves with it; rejects, showing the output,
   * once the process has exited or after `timeoutMs`.
   */
  waitFor<T>(what: string, check: () => T | undefined, timeoutMs?: number): Promise<T>;
  /** Resolves with the stderr text once it matches `pattern`; rejects on exit or after `timeoutMs`. */
  waitForStderr(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /** Resolves with the first parsed error-log line satisfying `predicate`. */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the first parsed stdout line (the proxy's access log) satisfying `predicate`. */
  waitForAccess(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Settles when the process has exited and its output has been read to the end. */
  readonly exited: Promise<Exit>;
  /** Resolves when the process has exited; rejects after `timeoutMs` if it has not. */
  waitForExit(timeoutMs?: number): Promise<Exit>;
  /** Sends `signal` unless the process has exited, and resolves once it has. */
  stop(signal: NodeJS.Signals): Promise<Exit>;
  /** True until the process has exited. */
  alive(): boolean;
}

const running = new Set<Running>();

export function parseJsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Spawns `node SCRIPT ...args` and leaves it running; killAll() (in afterEach) ends it. */
export function spawnNode(script: string, args: readonly string[]): Running {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  let exit: Exit | undefined;
  // 'close' rather than 'exit': both pipes have been read to the end.
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
  const waitFor = <T>(what: string, check: () => T | undefined, timeoutMs = 10_000): Promise<T> =>
    pollUntil(what, check, timeoutMs, proc);
  const handle: Running = {
    child,
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    errorLog: () => parseJsonLines(err),
    accessLog: () => parseJsonLines(out),
    waitFor,
    waitForStderr: (pattern, timeoutMs) =>
      waitFor(
        `stderr to match ${String(pattern)}`,
        () => ((typeof pattern === 'string' ? err.includes(pattern) : pattern.test(err)) ? err : undefined),
        timeoutMs,
      ),
    waitForLog: (predicate, timeoutMs) => waitFor(`a matching error-log line`, () => parseJsonLines(err).find(predicate), timeoutMs),
    waitForAccess: (predicate, timeoutMs) => waitFor(`a matching access-log line`, () => parseJsonLines(out).find(predicate), timeoutMs),
    exited,
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
    stop: (signal) => {
      if (proc.alive()) child.kill(signal);
      return exited;
    },
    alive: proc.alive,
  };
  running.add(handle);
  void exited.then(() => running.delete(handle));
  return handle;
}

/**
 * SIGKILLs every process spawnNode started that is still running, and waits for them. A
 * proxy killed so leaves its pid file behind (it removes it only when it stops on its
 * own), so the default ones (sockproxy-*.pid in the temp directory) naming a killed
 * process are removed, as a test would otherwise leave one per proxy in /tmp.
 */
export async function killAll(): Promise<void> {
  const killed = new Set<string>();
  await Promise.all(
    [...running].map(async (proc) => {
      if (proc.alive()) {
        killed.add(String(proc.pid));
        proc.child.kill('SIGKILL');
      }
      await proc.waitForExit(5_000);
    }),
  );
  if (killed.size > 0) removePidFilesOf(killed);
}

function removePidFilesOf(pids: ReadonlySet<string>): void {
  for (const name of readdirSync(tmpdir())) {
    if (!/^sockproxy-.*\.pid$/.test(name)) continue;
    const path = join(tmpdir(), name);
    try {
      if (pids.has(readFileSync(path, 'utf8').trim())) unlinkSync(path);
    } catch {
      // Removed meanwhile.
    }
  }
}
