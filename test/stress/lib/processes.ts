/**
 * The processes of a fault run, as a user runs them: the sample app (dist/app.js, the
 * Gunicorn stand-in) on Unix sockets, killed and started again, and the proxy
 * (dist/proxy.js) whose logs and open descriptors the run watches. Used both by the
 * `npm run stress` script (compiled to dist-stress/) and by the vitest suite.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../helpers/temp.js';

/**
 * The repository root: the nearest directory above this file with a package.json (this
 * file runs as test/stress/lib/processes.ts under vitest, as dist-stress/stress/lib/processes.js
 * from `npm run stress`).
 */
function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

export const ROOT = repositoryRoot();
export const APP_JS = join(ROOT, 'dist/app.js');
export const PROXY_JS = join(ROOT, 'dist/proxy.js');

/** Resolves once `child` has exited; at once if it already has. */
function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Resolves with the first stderr line matching `pattern`; rejects if the process exits first or after `timeoutMs`. */
function waitForLine(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const lines = createInterface({ input: child.stderr! });
    const timer = setTimeout(() => finish(new Error(`${what}: no "${pattern.source}" within ${timeoutMs} ms; stderr:\n${seen}`)), timeoutMs);
    const onExit = (): void => finish(new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before "${pattern.source}"; stderr:\n${seen}`));
    const onLine = (line: string): void => {
      seen += `${line}\n`;
      if (pattern.test(line)) finish(undefined, line);
    };
    function finish(error: Error | undefined, line?: string): void {
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.off('line', onLine);
      lines.close();
      // Keep draining stderr, or a chatty child would block on a full pipe.
      child.stderr!.resume();
      if (error === undefined) resolve(line!);
      else reject(error);
    }
    lines.on('line', onLine);
    child.once('exit', onExit);
  });
}

/**
 * One sample-app server on a Unix socket. stop('SIGKILL') leaves the socket file behind, as
 * a killed Gunicorn does; stop('SIGTERM') is Gunicorn's graceful stop (the file is unlinked
 * first, requests in flight finish). start() must cope with either (the app replaces a
 * stale socket file, as Gunicorn does).
 */
export class AppServer {
  readonly path: string;
  readonly address: string;
  #child: ChildProcess | undefined;
  /** Starts that found the socket file a SIGKILLed process left behind. */
  staleSocketsReplaced = 0;

  constructor(path: string) {
    this.path = path;
    this.address = `unix:${path}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  async start(): Promise<void> {
    if (existsSync(this.path)) this.staleSocketsReplaced++;
    // A short graceful timeout: a SIGTERMed app must not linger for Gunicorn's 30 s.
    const child = spawn(process.execPath, [APP_JS, '--bind', this.address, '--graceful-timeout', '2'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.#child = child;
    await waitForLine(child, /^\[app\] listening at /, `the app on ${this.address}`);
  }

  /** SIGKILL: waits until the process is gone. SIGTERM: returns once it has unlinked its socket and stopped accepting. */
  async stop(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    const exited = exitOf(child);
    child.kill(signal);
    if (signal === 'SIGKILL') {
      await exited;
      return;
    }
    // The app unlinks the file before it closes its listener: once it is gone, a new
    // process may bind the path while this one finishes what it has in flight.
    const deadline = Date.now() + 5_000;
    while (existsSync(this.path) && child.exitCode === null && Date.now() < deadline) await sleep(5);
  }

  /** Ends the process for good (the end of a run). */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined) return;
    child.kill('SIGKILL');
    await exitOf(child);
  }
}

/** What the proxy's logs said over a run, counted as the lines go by (20,000 requests make a lot of text). */
export interface LogCounts {
  /** Access-log lines by status. */
  readonly statuses: Map<number, number>;
  /** Error-log lines at pino level error (50) or above, by message (the part before ", client:"). */
  readonly errors: Map<string, number>;
  /** Error-log lines saying a client went away ("client prematurely closed connection"). */
  clientClosed: number;
  /** Reloads put in force ("reconfigured: …") and refused ("reconfiguring failed …"). */
  reconfigured: number;
  reloadsFailed: number;
}

/** The proxy as a user runs it, with its logs counted. */
export class ProxyUnderTest {
  readonly child: ChildProcess;
  readonly port: number;
  readonly logs: LogCounts = { statuses: new Map(), errors: new Map(), clientClosed: 0, reconfigured: 0, reloadsFailed: 0 };
  /** Non-JSON stderr (a crash's stack trace would be here). */
  readonly otherOutput: string[] = [];
  readonly #configFile: string;
  #onListening: (() => void) | undefined;
  #onReload: (() => void) | undefined;

  private constructor(child: ChildProcess, port: number, configFile: string) {
    this.child = child;
    this.port = port;
    this.#configFile = configFile;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = parseJson(line);
      if (typeof entry?.status === 'number') increment(this.logs.statuses, entry.status);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      const entry = parseJson(line);
      if (String(entry?.msg ?? '').includes('listening on')) this.#onListening?.();
      if (entry === undefined) {
        if (this.otherOutput.length < 50) this.otherOutput.push(line);
        return;
      }
      const msg = String(entry.msg ?? '');
      if (msg.startsWith('client prematurely closed connection')) this.logs.clientClosed++;
      if (msg.startsWith('reconfigured: ')) this.logs.reconfigured++;
      if (msg.startsWith('reconfiguring failed')) this.logs.reloadsFailed++;
      if (msg.startsWith('reconfigur')) this.#onReload?.();
      if (Number(entry.level) >= 50) increment(this.logs.errors, msg.split(', client: ')[0]!.replace(/\/[^\s)"]*\.sock/g, '<sock>'));
    });
  }

  /** Writes `config` (YAML, without `listen:`) to `dir`, starts the proxy on a free port, and waits until it listens. */
  static async start(dir: string, config: string): Promise<ProxyUnderTest> {
    const port = await freePort();
    const file = join(dir, 'proxy.yaml');
    writeFileSync(file, `listen: 127.0.0.1:${port}\n${config}`);
    const child = spawn(process.execPath, [PROXY_JS, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const proxy = new ProxyUnderTest(child, port, file);
    await new Promise<void>((resolve, reject) => {
      proxy.#onListening = resolve;
      child.once('exit', () => reject(new Error(`the proxy exited during start:\n${proxy.otherOutput.join('\n')}`)));
    });
    return proxy;
  }

  /**
   * Rewrites the configuration file with `config` (YAML, without `listen:`; the port stays),
   * sends SIGHUP as an operator would, and resolves once the proxy says the reload is in
   * force; rejects if it says the reload failed, or says nothing within 15 s.
   */
  async reload(config: string): Promise<void> {
    const { reconfigured, reloadsFailed } = this.logs;
    writeFileSync(this.#configFile, `listen: 127.0.0.1:${this.port}\n${config}`);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error('the proxy did not report the reload within 15 s')), 15_000);
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        this.#onReload = undefined;
        if (error === undefined) resolve();
        else reject(error);
      };
      this.#onReload = () => {
        if (this.logs.reloadsFailed > reloadsFailed) finish(new Error('the proxy refused the reload ("reconfiguring failed")'));
        else if (this.logs.reconfigured > reconfigured) finish();
      };
      this.child.kill('SIGHUP');
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The proxy's open file descriptors, each as /proc/PID/fd shows its target ("socket:[123]", a path, "anon_inode:[eventpoll]"). */
  openDescriptors(): string[] {
    const pid = this.child.pid!;
    return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
      try {
        return [readlinkSync(`/proc/${pid}/fd/${fd}`)];
      } catch {
        // Closed between the listing and the read.
        return [];
      }
    });
  }

  /**
   * The proxy's descriptors once it is idle. Idle keep-alive connections to the apps close
   * after keepalive_timeout (1.5 s by default), and the clients' connections once their
   * close reaches the proxy, so this polls for up to 10 s until the count is back to
   * `target`'s (or, for a first count, stops changing) and returns the list then.
   */
  async settledDescriptors(target: readonly string[] | undefined): Promise<string[]> {
    const deadline = Date.now() + 10_000;
    let previous = this.openDescriptors();
    for (;;) {
      await sleep(target === undefined ? 2_000 : 250);
      const now = this.openDescriptors();
      const settled = target === undefined ? now.length === previous.length : now.length <= target.length;
      if (settled || Date.now() > deadline) return now;
      previous = now;
    }
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    const exited = exitOf(this.child);
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * How two descriptor lists differ: what `after` holds that `before` did not (left over)
 * and the reverse (gone). Socket inodes change with every connection, so "socket:[123]"
 * is compared as "socket": what matters is how many sockets and files the proxy holds,
 * not which.
 */
export function descriptorDifference(before: readonly string[], after: readonly string[]): { leftOver: string[]; appeared: string[] } {
  const kinds = (targets: readonly string[]): string[] => targets.map((target) => target.replace(/^socket:\[\d+\]$/, 'socket')).sort();
  const extra = (more: readonly string[], less: readonly string[]): string[] => {
    const left = [...less];
    return more.filter((target) => {
      const index = left.indexOf(target);
      if (index === -1) return true;
      left.splice(index, 1);
      return false;
    });
  };
  return { leftOver: extra(kinds(after), kinds(before)), appeared: extra(kinds(before), kinds(after)) };
}

/** A JSON log line, or undefined for any other line. */
export function parseJson(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function increment<K>(map: Map<K, number>, key: K): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
