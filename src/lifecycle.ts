import { readFileSync } from 'node:fs';
import { loadConfig } from './config/load.js';
import type { Config } from './config/types.js';
import { announce as announceProxy } from './observe/announce.js';
import type { Logger } from './observe/logger.js';
import { reopenLogFile } from './observe/logger.js';
import { pidFilePath, removePidFile, writePidFile } from './pid-file.js';
import type { RunningProxy } from './run.js';

/** The signals a proxy process answers, as nginx's master does (nginx -s reload|stop|quit|reopen). */
export const SIGNALS = {
  reload: 'SIGHUP',
  stop: 'SIGTERM',
  quit: 'SIGQUIT',
  reopen: 'SIGUSR1',
} as const satisfies Record<string, NodeJS.Signals>;

/** How long the end of a stop waits for the connections it closed to be logged. */
const DESTROY_LOG_GRACE_MS = 200;

/**
 * The configuration keys a reload cannot change, with how to read each: the access log is
 * opened once, at start (requests under way still write to it); the number of workers and
 * the admin endpoint are the primary's, set up before the workers start.
 */
const START_ONLY_KEYS: ReadonlyArray<readonly [string, (config: Config) => unknown]> = [
  ['log.access', (config) => config.log.access],
  ['workers', (config) => config.workers],
  ['admin', (config) => config.admin],
];

/**
 * Keys read at start only: a reload that changes one names it in a warning, rather than
 * ignore it silently. Compared with the configuration the process started with, which is
 * what runs, however many reloads came since. With workers, the primary warns (once) and
 * the workers do not.
 */
export function warnStartOnly(errorLog: Logger, started: Config, next: Config): void {
  for (const [key, read] of START_ONLY_KEYS) {
    if (JSON.stringify(read(next)) === JSON.stringify(read(started))) continue;
    errorLog.warn({ key }, `${key} cannot change on reload: the new value takes effect at restart`);
  }
}

/** The signals that stop the proxy gracefully: docker stop's SIGTERM, Ctrl-C's SIGINT and nginx's SIGQUIT. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGQUIT'];

export interface LifecycleOptions {
  readonly proxy: RunningProxy;
  /** The configuration the proxy was started with; a reload reads `config.file` again. */
  readonly config: Config;
  readonly errorLog: Logger;
  readonly accessLog: Logger | undefined;
  /**
   * A cluster worker (`workers: N`): the primary keeps the pid file, counts reloads and
   * prints the start lines; this process keeps none of them. Otherwise this process keeps
   * the pid file (written by the caller at start, rewritten when a reload moves it, removed
   * at exit), as nginx's master does.
   */
  readonly worker: boolean;
  /** Told how each reload went (the reloads metric); a worker's are counted by its primary. */
  readonly onReloaded?: (result: 'ok' | 'failed') => void;
}

/**
 * What a running proxy process does when told to reload, reopen its logs or stop: the
 * handlers of SIGHUP, SIGUSR1 and SIGTERM/SIGINT/SIGQUIT, as plain methods, so that a
 * process that learns of them another way (a cluster worker told by its primary) does
 * exactly what a single process does.
 */
export class Lifecycle {
  /** Resolves once the proxy has stopped and the logs are flushed: the process may exit 0. */
  readonly stopped: Promise<void>;

  readonly #proxy: RunningProxy;
  readonly #errorLog: Logger;
  readonly #accessLog: Logger | undefined;
  readonly #worker: boolean;
  readonly #onReloaded: (result: 'ok' | 'failed') => void;
  readonly #startConfig: Config;
  #config: Config;
  #loadedAt = new Date();
  #reloading: Promise<void> | undefined;
  #reloadAgain = false;
  #stopping = false;
  #finished = false;
  #deadline: NodeJS.Timeout | undefined;
  #resolveStopped!: () => void;

  constructor(options: LifecycleOptions) {
    this.#proxy = options.proxy;
    this.#startConfig = options.config;
    this.#config = options.config;
    this.#errorLog = options.errorLog;
    this.#accessLog = options.accessLog;
    this.#worker = options.worker;
    this.#onReloaded = options.onReloaded ?? (() => {});
    this.stopped = new Promise((resolve) => (this.#resolveStopped = resolve));
  }

  /**
   * SIGHUP: reads the configuration file again and puts it in force (RunningProxy.reload).
   * An invalid file, or an address that cannot be bound, is logged in the words `-t` and
   * the start use, and the running configuration stays as it was. A SIGHUP during a reload
   * reloads once more after it, so the file's last version always wins.
   */
  async reload(): Promise<void> {
    if (this.#stopping) return;
    if (this.#reloading !== undefined) {
      this.#reloadAgain = true;
      return this.#reloading;
    }
    this.#reloading = this.#reloadOnce();
    try {
      await this.#reloading;
    } finally {
      this.#reloading = undefined;
    }
    if (this.#reloadAgain) {
      this.#reloadAgain = false;
      await this.reload();
    }
  }

  /** The configuration file in force and when it was loaded (for /status). */
  loaded(): { file: string; loadedAt: Date } {
    return { file: this.#config.file, loadedAt: this.#loadedAt };
  }

  /** SIGUSR1: an access log file is reopened by its path (logrotate), as nginx -s reopen does. */
  reopenLogs(): void {
    this.#errorLog.info({ signal: 'SIGUSR1' }, 'SIGUSR1 received, reopening logs');
    reopenLogFile(this.#accessLog);
  }

  /**
   * SIGTERM, SIGINT or SIGQUIT: a graceful stop. Listeners stop accepting (unix: socket
   * files are removed), requests in flight are answered, client keep-alive connections are
   * closed as they go idle, WebSocket tunnels and stream sessions run on; whatever is still
   * open after shutdown_timeout is closed. Then the logs are flushed and `stopped`
   * resolves. A second signal closes everything at once.
   */
  shutdown(signal: NodeJS.Signals): void {
    if (this.#stopping) {
      this.#errorLog.warn({ signal }, `${signal} received again, exiting now`);
      void this.#finish();
      return;
    }
    this.#stopping = true;
    this.#errorLog.info({ signal }, `${signal} received, gracefully shutting down`);
    const timeoutMs = this.#config.shutdownTimeoutMs;
    this.#deadline = setTimeout(() => {
      this.#errorLog.warn(
        { shutdown_timeout_ms: timeoutMs },
        `shutdown_timeout (${timeoutMs} ms) reached: closing the connections still open`,
      );
      void this.#finish();
    }, timeoutMs);
    void this.#proxy.close().then(() => this.#finish());
  }

  async #reloadOnce(): Promise<void> {
    const file = this.#config.file;
    this.#errorLog.info({ signal: 'SIGHUP', config: file }, 'SIGHUP received, reconfiguring');
    let config: Config;
    try {
      config = await loadConfig(file);
      if (!this.#worker) warnStartOnly(this.#errorLog, this.#startConfig, config);
      await this.#proxy.reload(config);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'SOCKPROXY_CONFIG_INVALID' || code === 'SOCKPROXY_LISTEN_FAILED') {
        // The line `-t` (or a start) prints, at error level: the file, line and column and the offending value.
        this.#errorLog.error({ nginx_level: 'emerg', config: file }, `[emerg] ${(err as Error).message}`);
      } else {
        // A fault of ours: the proxy goes on serving rather than die on a reload.
        this.#errorLog.error({ nginx_level: 'alert', err }, `[alert] unexpected failure while reconfiguring: ${(err as Error).message}`);
      }
      this.#errorLog.warn({ config: file }, 'reconfiguring failed: the running configuration is kept');
      this.#onReloaded('failed');
      return;
    }
    // A stop that began meanwhile wins: the proxy did not take the new configuration.
    if (this.#stopping) return;
    const previous = this.#config;
    this.#config = config;
    this.#loadedAt = new Date();
    this.#errorLog.level = config.log.level;
    this.#onReloaded('ok');
    if (!this.#worker) {
      this.#movePidFile(previous, config);
      announce(this.#errorLog, this.#proxy, config);
    }
    this.#errorLog.info({ config: file }, `reconfigured: ${file} is in force`);
  }


  /** nginx writes the new pid file and removes the old one when a reload changes `pid`. */
  #movePidFile(previous: Config, config: Config): void {
    const before = pidFilePath(previous.file, previous.pid);
    const after = pidFilePath(config.file, config.pid);
    if (before === after) return;
    try {
      if (after !== undefined) writePidFile(after);
      if (before !== undefined) removePidFile(before);
    } catch (err) {
      this.#errorLog.error({ nginx_level: 'emerg' }, (err as Error).message);
    }
  }

  async #finish(): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#deadline);
    // What was cut is logged as it ends; a moment for that, not a wait for anything stuck.
    await Promise.race([this.#proxy.destroy(), new Promise((resolve) => setTimeout(resolve, DESTROY_LOG_GRACE_MS))]);
    if (!this.#worker) {
      const pidFile = pidFilePath(this.#config.file, this.#config.pid);
      if (pidFile !== undefined) removePidFile(pidFile);
    }
    const accessLog = this.#accessLog;
    if (accessLog !== undefined) await new Promise<void>((resolve) => accessLog.flush(() => resolve()));
    this.#resolveStopped();
  }
}

/**
 * Makes this process answer the lifecycle signals: SIGHUP reloads, SIGUSR1 reopens the
 * logs, SIGTERM, SIGINT and SIGQUIT stop gracefully (a second one stops at once). A
 * cluster worker ignores SIGINT: a terminal's Ctrl-C reaches the whole process group, and
 * the primary passes it on as SIGTERM, so one Ctrl-C is one graceful stop.
 */
export function handleSignals(lifecycle: Lifecycle, options: { worker: boolean }): void {
  process.on('SIGHUP', () => void lifecycle.reload());
  process.on('SIGUSR1', () => lifecycle.reopenLogs());
  for (const signal of STOP_SIGNALS) {
    if (signal === 'SIGINT' && options.worker) process.on(signal, () => {});
    else process.on(signal, () => lifecycle.shutdown(signal));
  }
}

/** One line per proxy: where it listens and which servers it fronts (at start and after each reload). */
export function announce(errorLog: Logger, proxy: RunningProxy, config: Config): void {
  if (config.http !== undefined) announceProxy(errorLog, version(), '', proxy.addresses, config.http.upstream);
  for (const stream of proxy.streams) announceProxy(errorLog, version(), 'stream ', stream.addresses, stream.config.upstream);
}

/** package.json's version. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
