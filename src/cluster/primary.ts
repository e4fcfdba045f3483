/**
 * `workers: N` (nginx `worker_processes`): this process forks N workers that share the
 * listeners (node:cluster; the primary binds each address once and hands connections
 * out), starts a worker again when one dies, passes the control signals on, serves the
 * admin endpoint from every worker's answers, and exits once its workers have.
 * It serves no request itself.
 */
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import { AggregatorRegistry } from 'prom-client';
import { startAdmin, type AdminServer } from '../admin/server.js';
import { combineStatus, type ProcessStatus, type StatusDocument } from '../admin/status.js';
import { ConfigError } from '../config/errors.js';
import { formatListen } from '../config/listen.js';
import { parseConfig, readConfigSource } from '../config/load.js';
import type { Config, ListenAddress } from '../config/types.js';
import { announce } from '../observe/announce.js';
import { createErrorLog, type Logger } from '../observe/logger.js';
import { ProxyMetrics } from '../observe/metrics.js';
import { pidFilePath, removePidFile, writePidFile } from '../pid-file.js';
import { applySocketFileAccess, claimUnixPath, ListenError, OWNER_ONLY_UMASK, unlinkSocket } from '../server/listen.js';
import {
  isMessage,
  type QueryMessage,
  type ReplyMessage,
  type WorkerMetrics,
  type WorkerStartMessage,
} from './messages.js';
import { warnStartOnly } from '../lifecycle.js';
import { CONFIG_SOURCE_ENV } from './worker.js';

/** Signals passed on to every worker, which handles each as a single process does. */
const FORWARDED_SIGNALS = ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGUSR1'] as const;
const STOP_SIGNALS: ReadonlySet<NodeJS.Signals> = new Set(['SIGTERM', 'SIGINT', 'SIGQUIT']);

/** Restart backoff: the first restart after 100 ms, doubling up to 10 s; reset by a worker that lived 10 s. */
const RESTART_DELAY_MIN_MS = 100;
const RESTART_DELAY_MAX_MS = 10_000;
const STABLE_WORKER_MS = 10_000;
/** A worker that does not answer a /status or /metrics query within this is left out, and named. */
const QUERY_TIMEOUT_MS = 1_000;
/** Past the workers' own graceful-stop bound, a worker still running is killed. */
const KILL_GRACE_MS = 5_000;

export interface PrimaryOptions {
  readonly config: Config;
  /** The text the configuration was parsed from: a worker runs exactly this (see CONFIG_SOURCE_ENV). */
  readonly source: string;
  readonly version: string;
  /** How long a worker's graceful stop may take; the primary kills it KILL_GRACE_MS later. */
  readonly stopTimeoutMs: number;
}

/** A worker and what the primary knows of it. */
interface WorkerState {
  readonly worker: Worker;
  readonly pid: number;
  readonly startedAt: number;
  ready: boolean;
}

/** Runs the primary until its workers have stopped; resolves with the exit code (0, or 1 if the start failed). */
export async function runPrimary(options: PrimaryOptions): Promise<number> {
  const primary = new Primary(options);
  return primary.run();
}

class Primary {
  readonly #errorLog: Logger;
  readonly #version: string;
  readonly #stopTimeoutMs: number;
  readonly #startedAt = new Date();
  readonly #startConfig: Config;
  /** The configuration the workers were last told to run; `workers` and `admin` stay those of the start. */
  #config: Config;
  #source: string;
  #loadedAt = new Date();
  readonly #workerCount: number;
  readonly #metrics: ProxyMetrics | undefined;
  #admin: AdminServer | undefined;
  /** nginx's master keeps the pid file: `-s reload` and the like signal the primary, which passes them on. */
  readonly #pidFile: string | undefined;
  /** The unix listen paths claimed, to remove when the primary exits. */
  readonly #socketPaths = new Set<string>();
  /** Unix listeners with mode= or group=, given their access once a worker has bound them. */
  #accessListeners: ListenAddress[] = [];
  /** The umask the proxy was started with (the primary's own is OWNER_ONLY_UMASK while it has such listeners). */
  #umask = 0;
  readonly #workers = new Map<Worker, WorkerState>();
  #started = false;
  #stopping = false;
  /** 0 after a stop signal, 1 when a worker could not start: what the primary exits with once its workers have. */
  #exitCode = 0;
  #restartDelayMs = RESTART_DELAY_MIN_MS;
  readonly #restartTimers = new Set<NodeJS.Timeout>();
  #queryId = 0;
  readonly #pending = new Map<number, (reply: ReplyMessage, from: Worker) => void>();
  #resolveExit: (code: number) => void = () => {};

  constructor(options: PrimaryOptions) {
    this.#startConfig = options.config;
    this.#config = options.config;
    this.#source = options.source;
    this.#version = options.version;
    this.#stopTimeoutMs = options.stopTimeoutMs;
    this.#workerCount = options.config.workers;
    this.#pidFile = pidFilePath(options.config.file, options.config.pid);
    this.#errorLog = createErrorLog(options.config.log.level);
    this.#metrics = options.config.admin === undefined ? undefined : new ProxyMetrics();
  }

  async run(): Promise<number> {
    const exited = new Promise<number>((resolve) => (this.#resolveExit = resolve));
    try {
      // node's cluster binds in this process when the first worker listens, so Gunicorn's
      // stale-socket rules belong here, once, before any fork (see server/listen.ts).
      await this.#claimUnixPaths(this.#config);
      if (this.#config.admin !== undefined) {
        this.#admin = await startAdmin(this.#config.admin.listen, this.#adminSource(), this.#errorLog);
      }
      if (this.#pidFile !== undefined) writePidFile(this.#pidFile);
    } catch (err) {
      if (!(err instanceof ListenError) && (err as { code?: string }).code !== 'SOCKPROXY_PID_FILE') throw err;
      process.stderr.write(`sockproxy: [emerg] ${(err as Error).message}\n`);
      await this.#admin?.close();
      this.#removeSocketFiles();
      return 1;
    }
    this.#accessListeners = listenAddresses(this.#config).filter(
      (address) => address.kind === 'unix' && (address.mode !== undefined || address.group !== undefined),
    );
    // The primary creates the socket files: owner-only until a worker reports its
    // listeners up and their mode= and group= are applied (never wider than asked).
    if (this.#accessListeners.length > 0) this.#umask = process.umask(OWNER_ONLY_UMASK);

    cluster.on('exit', (worker, code, signal) => this.#onExit(worker, code, signal));
    cluster.on('message', (worker, message: unknown) => this.#onMessage(worker, message));
    for (const signal of FORWARDED_SIGNALS) process.on(signal, () => this.#onSignal(signal));
    for (let i = 0; i < this.#workerCount; i++) this.#fork();
    return exited;
  }

  #fork(): void {
    // The configuration text the primary accepted, not the file as it is now: a worker
    // started again after an unchecked edit runs what the others run, as nginx's do.
    const worker = cluster.fork({ [CONFIG_SOURCE_ENV]: this.#source });
    const pid = worker.process.pid!;
    this.#workers.set(worker, { worker, pid, startedAt: Date.now(), ready: false });
    this.#errorLog.info({ worker_pid: pid, nginx_level: 'notice' }, `start worker process ${pid}`);
  }

  #onMessage(worker: Worker, message: unknown): void {
    const state = this.#workers.get(worker);
    if (isMessage<ReplyMessage>(message, 'sockproxy:reply')) {
      this.#pending.get(message.id)?.(message, worker);
      return;
    }
    if (state === undefined) return;
    if (isMessage<WorkerStartMessage, 'sockproxy:failed'>(message, 'sockproxy:failed')) {
      if (!this.#started) {
        this.#abort(message.message);
        return;
      }
      this.#errorLog.error({ worker_pid: state.pid, nginx_level: 'emerg' }, message.message);
    } else if (isMessage<WorkerStartMessage, 'sockproxy:ready'>(message, 'sockproxy:ready')) {
      state.ready = true;
      this.#applySocketFileAccess();
      if (!this.#started && [...this.#workers.values()].every((s) => s.ready)) this.#announce();
    }
  }

  #applySocketFileAccess(): void {
    for (const address of this.#accessListeners) {
      try {
        // A mode= left out is 0777 less the umask the proxy was started with.
        applySocketFileAccess(address, this.#umask);
      } catch (err) {
        this.#errorLog.error({ nginx_level: 'emerg' }, (err as Error).message);
      }
    }
  }

  #announce(): void {
    this.#started = true;
    const config = this.#config;
    if (config.http !== undefined) {
      announce(this.#errorLog, this.#version, '', config.http.listen.map(formatListen), config.http.upstream);
    }
    for (const stream of config.stream) announce(this.#errorLog, this.#version, 'stream ', stream.listen.map(formatListen), stream.upstream);
    const pids = [...this.#workers.values()].map((s) => s.pid);
    this.#errorLog.info(
      { workers: pids, ...(this.#admin === undefined ? {} : { admin: this.#admin.address }) },
      `${pids.length} worker processes started${this.#admin === undefined ? '' : `, admin on ${this.#admin.address}`}`,
    );
  }

  /** A worker could not start before the proxy was up: stop everything, as a single process would. */
  #abort(message: string): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#exitCode = 1;
    process.stderr.write(`sockproxy: [emerg] ${message}\n`);
    for (const { worker } of this.#workers.values()) worker.process.kill('SIGKILL');
    this.#exitWhenDone();
  }

  #onExit(worker: Worker, code: number | null, signal: string | null): void {
    const state = this.#workers.get(worker);
    this.#workers.delete(worker);
    if (state === undefined) return;
    if (this.#stopping) {
      this.#exitWhenDone();
      return;
    }
    // nginx: "[alert] worker process 1234 exited on signal 9", "… exited with code 1".
    const how = signal === null ? `with code ${code}` : `on signal ${os.constants.signals[signal as NodeJS.Signals] ?? signal}`;
    this.#errorLog.error(
      { worker_pid: state.pid, code, signal, nginx_level: 'alert' },
      `worker process ${state.pid} exited ${how}`,
    );
    if (!this.#started) {
      this.#abort(`worker process ${state.pid} exited ${how} while starting`);
      return;
    }
    // A worker that served for a while died of something rare: start the next one at once.
    // One that dies as it starts would otherwise be restarted in a tight loop.
    if (Date.now() - state.startedAt >= STABLE_WORKER_MS) this.#restartDelayMs = RESTART_DELAY_MIN_MS;
    const delay = this.#restartDelayMs;
    this.#restartDelayMs = Math.min(this.#restartDelayMs * 2, RESTART_DELAY_MAX_MS);
    const timer = setTimeout(() => {
      this.#restartTimers.delete(timer);
      if (this.#stopping) return;
      this.#metrics?.workerRestarted();
      this.#fork();
    }, delay);
    this.#restartTimers.add(timer);
  }

  #onSignal(signal: (typeof FORWARDED_SIGNALS)[number]): void {
    if (STOP_SIGNALS.has(signal)) {
      if (!this.#stopping) this.#startStopping(signal);
      // A second stop signal is passed on too: the workers stop at once.
      this.#forward(signal);
      return;
    }
    if (this.#stopping) return;
    if (signal === 'SIGHUP') {
      void this.#reload();
      return;
    }
    this.#forward(signal);
  }

  #startStopping(signal: NodeJS.Signals): void {
    this.#stopping = true;
    this.#errorLog.info({ signal }, `${signal} received, gracefully shutting down`);
    for (const timer of this.#restartTimers) clearTimeout(timer);
    this.#restartTimers.clear();
    void this.#admin?.close();
    // Each worker bounds its own graceful stop; one stuck past that is killed.
    setTimeout(() => {
      for (const { worker } of this.#workers.values()) worker.process.kill('SIGKILL');
    }, this.#stopTimeoutMs + KILL_GRACE_MS).unref();
    this.#exitWhenDone();
  }

  /**
   * SIGINT reaches the workers as SIGTERM: a terminal's Ctrl-C signals the whole process
   * group, and the workers ignore SIGINT (src/lifecycle.ts, handleSignals), so that one
   * Ctrl-C is one graceful stop, not two signals and a stop at once.
   */
  #forward(signal: NodeJS.Signals): void {
    const passed = signal === 'SIGINT' ? 'SIGTERM' : signal;
    for (const { worker } of this.#workers.values()) worker.process.kill(passed);
  }

  #exitWhenDone(): void {
    if (this.#workers.size > 0) return;
    void this.#admin?.close();
    this.#removeSocketFiles();
    if (this.#pidFile !== undefined) removePidFile(this.#pidFile);
    this.#resolveExit(this.#exitCode);
  }

  /**
   * SIGHUP: the file is read and checked here first, so that a broken edit is reported
   * once (not by every worker) and reaches no worker; the old configuration goes on.
   */
  async #reload(): Promise<void> {
    const file = this.#config.file;
    let source: string;
    let config: Config;
    try {
      source = await readConfigSource(file);
      config = parseConfig(source, file);
      // New unix listen addresses: a live server on one must fail the reload here.
      await this.#claimUnixPaths(config);
    } catch (err) {
      if (!(err instanceof ConfigError || err instanceof ListenError)) throw err;
      // nginx -s reload with a broken file: "[emerg] …", and the old configuration goes on.
      this.#errorLog.error({ nginx_level: 'emerg', signal: 'SIGHUP' }, `${err.message}; the configuration is not reloaded`);
      this.#metrics?.reloaded('failed');
      return;
    }
    warnStartOnly(this.#errorLog, this.#startConfig, config);
    // `workers` and `admin` are what runs; the rest is what the workers reload.
    this.#config = { ...config, workers: this.#config.workers, admin: this.#config.admin };
    this.#source = source;
    this.#loadedAt = new Date();
    this.#metrics?.reloaded('ok');
    this.#errorLog.info({ signal: 'SIGHUP' }, 'SIGHUP received, reconfiguring: the workers reload');
    this.#forward('SIGHUP');
  }

  async #claimUnixPaths(config: Config): Promise<void> {
    for (const address of listenAddresses(config)) {
      if (address.kind !== 'unix' || this.#socketPaths.has(address.path)) continue;
      await claimUnixPath(address.path);
      this.#socketPaths.add(address.path);
    }
  }

  /** The socket files belong to the primary: workers never remove them (their listeners are its handles). */
  #removeSocketFiles(): void {
    for (const path of this.#socketPaths) {
      try {
        unlinkSocket(path);
      } catch (err) {
        this.#errorLog.error({ path }, `unlink() "${path}" failed: ${(err as Error).message}`);
      }
    }
  }

  // --- the admin endpoint ---------------------------------------------------------------

  #adminSource(): { status(): Promise<StatusDocument>; metrics(): Promise<{ contentType: string; text: string }> } {
    return {
      status: async () => {
        const { answers, missing } = await this.#query('status');
        const parts = answers.map((reply) => (reply.what === 'status' ? reply.status : undefined)).filter(isDefined);
        return combineStatus(
          {
            version: this.#version,
            pid: process.pid,
            startedAt: this.#startedAt,
            config: { file: this.#config.file, loadedAt: this.#loadedAt },
            reloads: this.#metrics?.totals().reloads,
          },
          sortByPid(parts),
          missing,
        );
      },
      metrics: async () => {
        const { answers } = await this.#query('metrics');
        const fromWorkers = answers.map((reply) => (reply.what === 'metrics' ? reply.metrics : undefined)).filter(isDefined);
        const own = ((await this.#metrics?.registry.getMetricsAsJSON()) ?? []) as WorkerMetrics;
        // prom-client's cluster aggregation: counters and histograms summed, each default metric by its own rule.
        const registry = AggregatorRegistry.aggregate([...fromWorkers, own]);
        return { contentType: registry.contentType, text: await registry.metrics() };
      },
    };
  }

  /** Asks every ready worker; resolves with the answers that came within QUERY_TIMEOUT_MS and the pids that did not answer. */
  #query(what: QueryMessage['what']): Promise<{ answers: ReplyMessage[]; missing: number[] }> {
    const asked = [...this.#workers.values()].filter((state) => state.ready && state.worker.isConnected());
    const id = ++this.#queryId;
    const answers = new Map<number, ReplyMessage>();
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve({ answers: [...answers.values()], missing: asked.map((s) => s.pid).filter((pid) => !answers.has(pid)) });
      };
      const timer = setTimeout(finish, QUERY_TIMEOUT_MS);
      this.#pending.set(id, (reply, from) => {
        const state = this.#workers.get(from);
        if (state !== undefined) answers.set(state.pid, reply);
        if (answers.size === asked.length) finish();
      });
      const query: QueryMessage = { type: 'sockproxy:query', id, what };
      for (const state of asked) {
        try {
          state.worker.send(query);
        } catch {
          // The channel closed as the worker died; it is reported as not answering.
        }
      }
      if (asked.length === 0) finish();
    });
  }
}

function listenAddresses(config: Config): ListenAddress[] {
  return [...(config.http?.listen ?? []), ...config.stream.flatMap((stream) => stream.listen)];
}

function isDefined<T>(value: T | undefined): value is T {
  return value !== undefined;
}

function sortByPid(parts: ProcessStatus[]): ProcessStatus[] {
  return [...parts].sort((a, b) => a.pid - b.pid);
}
