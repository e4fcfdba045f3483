#!/usr/bin/env node
/**
 * The command line: `sockproxy --config FILE [-t]`. The only place that chooses an exit
 * code: 0 for success, 2 for a bad command line or configuration (nginx -t style),
 * 1 for a failure at start-up such as an address already in use.
 */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { type AdminServer, startAdmin } from './admin/server.js';
import { localAdmin, localStatusSource } from './admin/local.js';
import { runPrimary } from './cluster/primary.js';
import { answerQueries, configFromPrimary, reportStart } from './cluster/worker.js';
import { ConfigError } from './config/errors.js';
import { parseConfig } from './config/load.js';
import type { Config } from './config/types.js';
import { announce } from './observe/announce.js';
import { createAccessLog, createErrorLog, type Logger } from './observe/logger.js';
import { ProxyMetrics } from './observe/metrics.js';
import { startProxy, type RunningProxy } from './run.js';

const EXIT_START_FAILED = 1;
const EXIT_BAD_CONFIG = 2;
/** nginx worker_shutdown_timeout-like bound on a graceful stop. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

const USAGE = `Usage: sockproxy --config FILE [options]

An nginx-style reverse proxy for app servers on Unix domain sockets (and TCP).

Options:
  -c, --config FILE   the YAML configuration (see README: "Configuration")
  -t, --test          check the configuration and exit: 0 if valid, 2 if not (like nginx -t)
  -h, --help          show this help
  -v, --version       print the version

Signals: SIGTERM or SIGINT stop accepting connections and let requests in flight finish.
With \`workers: N\`, signal the primary (the process started): it passes them on.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        test: { type: 'boolean', short: 't' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`sockproxy: ${(err as Error).message}\n\n${USAGE}`);
    return EXIT_BAD_CONFIG;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`sockproxy ${version()}\n`);
    return 0;
  }
  if (args.config === undefined) {
    process.stderr.write(`sockproxy: no configuration file: pass --config FILE\n\n${USAGE}`);
    return EXIT_BAD_CONFIG;
  }

  let config: Config;
  let source = '';
  try {
    if (cluster.isWorker) {
      config = configFromPrimary(args.config);
    } else {
      source = await readConfigFile(args.config);
      config = parseConfig(source, args.config);
    }
  } catch (err) {
    if ((err as { code?: string }).code !== 'SOCKPROXY_CONFIG_INVALID') throw err;
    process.stderr.write(`sockproxy: [emerg] ${(err as Error).message}\n`);
    if (args.test) process.stderr.write(`sockproxy: configuration file ${args.config} test failed\n`);
    return EXIT_BAD_CONFIG;
  }
  if (args.test) {
    process.stderr.write(
      `sockproxy: the configuration file ${args.config} syntax is ok\n` +
        `sockproxy: configuration file ${args.config} test is successful\n`,
    );
    return 0;
  }

  // workers: N > 1: this process is the primary, the workers run the code below.
  if (cluster.isPrimary && config.workers > 1) {
    return runPrimary({ config, source, version: version(), stopTimeoutMs: SHUTDOWN_TIMEOUT_MS });
  }

  const errorLog = createErrorLog(config.log.level);
  const accessLog = createAccessLog(config.log.access);
  // Counted only when someone can read the counts: the admin endpoint is on.
  const metrics = config.admin === undefined ? undefined : new ProxyMetrics();
  let proxy: RunningProxy;
  let admin: AdminServer | undefined;
  try {
    proxy = await startProxy(config, { errorLog, accessLog }, { observer: metrics });
  } catch (err) {
    if ((err as { code?: string }).code !== 'SOCKPROXY_LISTEN_FAILED') throw err;
    if (cluster.isWorker) await reportStart({ type: 'sockproxy:failed', message: (err as Error).message });
    else process.stderr.write(`sockproxy: [emerg] ${(err as Error).message}\n`);
    return EXIT_START_FAILED;
  }
  const loadedAt = new Date();
  const statusSource = metrics && localStatusSource(metrics, proxy, () => ({ file: config.file, loadedAt }));
  // The handlers before the start lines: whoever waits for those may signal at once, and
  // without a handler SIGTERM would kill the process without its graceful stop.
  const stopped = stopSignal(errorLog);
  if (cluster.isWorker) {
    // The primary serves the admin endpoint and says where the proxy listens, for all workers.
    if (statusSource !== undefined) answerQueries(statusSource);
    await reportStart({ type: 'sockproxy:ready' });
  } else {
    if (config.admin !== undefined && statusSource !== undefined) {
      try {
        admin = await startAdmin(config.admin.listen, localAdmin(statusSource, version()), errorLog);
      } catch (err) {
        if ((err as { code?: string }).code !== 'SOCKPROXY_LISTEN_FAILED') throw err;
        process.stderr.write(`sockproxy: [emerg] ${(err as Error).message}\n`);
        await proxy.close();
        return EXIT_START_FAILED;
      }
    }
    // One line per proxy: where it listens and which servers it fronts.
    if (config.http !== undefined) announce(errorLog, version(), '', proxy.addresses, config.http.upstream);
    for (const stream of proxy.streams) announce(errorLog, version(), 'stream ', stream.addresses, stream.config.upstream);
    if (admin !== undefined) errorLog.info({ admin: admin.address }, `admin on ${admin.address}`);
  }

  await stopped;
  void admin?.close();
  // A bounded graceful stop: requests in flight finish, unless they outlast the deadline.
  const deadline = new Promise<void>((resolve) => setTimeout(resolve, SHUTDOWN_TIMEOUT_MS).unref());
  await Promise.race([proxy.close(), deadline, stopSignal(errorLog)]);
  if (accessLog !== undefined) await new Promise<void>((resolve) => accessLog.flush(() => resolve()));
  return 0;
}

async function readConfigFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    throw ConfigError.unreadable(file, cause);
  }
}

/** Resolves on the next SIGTERM or SIGINT (docker stop, Ctrl-C); a second one cuts the graceful stop short. */
function stopSignal(errorLog: Logger): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      errorLog.info({ signal }, `${signal} received, shutting down`);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

main(process.argv.slice(2)).then(
  // Exit explicitly: a client connection still open past the deadline must not keep us alive.
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`sockproxy: [alert] unexpected failure: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
