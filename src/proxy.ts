#!/usr/bin/env node
/**
 * The command line: `sockproxy --config FILE [-t | -s reload|reopen|quit|stop]`. The only
 * place that chooses an exit code: 0 for success, 2 for a bad command line or
 * configuration (nginx -t style), 1 for a failure at start-up such as an address already
 * in use, or a signal that could not be sent.
 */
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { localAdmin, localStatusSource } from './admin/local.js';
import { type AdminServer, startAdmin } from './admin/server.js';
import { runPrimary } from './cluster/primary.js';
import { answerQueries, configFromPrimary, reportStart } from './cluster/worker.js';
import { parseConfig, readConfigSource } from './config/load.js';
import type { Config } from './config/types.js';
import { announce, handleSignals, Lifecycle, SIGNALS, version } from './lifecycle.js';
import { createAccessLog, createErrorLog } from './observe/logger.js';
import { ProxyMetrics } from './observe/metrics.js';
import { pidFilePath, signalPidFile, writePidFile } from './pid-file.js';
import { startProxy, type RunningProxy } from './run.js';
import { describeErrno } from './server/errno.js';

const EXIT_FAILED = 1;
const EXIT_BAD_CONFIG = 2;

const USAGE = `Usage: sockproxy --config FILE [options]

An nginx-style reverse proxy for app servers on Unix domain sockets (and TCP).

Options:
  -c, --config FILE   the YAML configuration (see README: "Configuration")
  -t, --test          check the configuration and exit: 0 if valid, 2 if not (like nginx -t)
  -s, --signal SIG    send SIG to the proxy running with this configuration (its pid file), like nginx -s:
                        reload  re-read the configuration (SIGHUP)
                        reopen  reopen the access log file (SIGUSR1)
                        quit    stop gracefully (SIGQUIT)
                        stop    stop gracefully (SIGTERM)
      --reload        the same as -s reload
  -h, --help          show this help
  -v, --version       print the version

Signals: SIGHUP reloads the configuration; SIGUSR1 reopens the access log; SIGTERM, SIGINT
or SIGQUIT stop accepting connections, let requests in flight finish and exit within
shutdown_timeout (a second one exits at once). With \`workers: N\`, signal the primary
(the process started, whose pid is in the pid file): it passes them on. See README: "Operations".
`;

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        test: { type: 'boolean', short: 't' },
        signal: { type: 'string', short: 's' },
        reload: { type: 'boolean' },
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
  const signalName = args.reload ? 'reload' : args.signal;
  if (signalName !== undefined && !Object.hasOwn(SIGNALS, signalName)) {
    // nginx: invalid option: "-s restart"
    process.stderr.write(`sockproxy: invalid option: "-s ${signalName}" (reload, reopen, quit or stop)\n\n${USAGE}`);
    return EXIT_BAD_CONFIG;
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
      source = await readConfigSource(args.config);
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
  if (signalName !== undefined) return sendSignal(config, SIGNALS[signalName as keyof typeof SIGNALS]);
  return run(config, source);
}

/**
 * nginx -s: the running proxy is found through the pid file of this configuration (which is
 * read, and must be valid, as nginx's is); nothing is printed when the signal was sent.
 */
function sendSignal(config: Config, signal: NodeJS.Signals): number {
  const pidFile = pidFilePath(config.file, config.pid);
  if (pidFile === undefined) {
    process.stderr.write(`sockproxy: [error] ${config.file} has "pid: off": there is no pid file to find the proxy by\n`);
    return EXIT_FAILED;
  }
  try {
    signalPidFile(pidFile, signal);
  } catch (err) {
    if ((err as { code?: string }).code !== 'SOCKPROXY_PID_FILE') throw err;
    process.stderr.write(`sockproxy: [error] ${(err as Error).message}\n`);
    return EXIT_FAILED;
  }
  return 0;
}

async function run(config: Config, source: string): Promise<number> {
  // workers: N > 1: this process is the primary, the workers run the code below.
  if (cluster.isPrimary && config.workers > 1) {
    return runPrimary({ config, source, version: version(), stopTimeoutMs: config.shutdownTimeoutMs });
  }
  const worker = cluster.isWorker;
  const errorLog = createErrorLog(config.log.level);
  const accessLog = createAccessLog(config.log.access, (err) =>
    errorLog.error({ nginx_level: 'alert' }, `open() or write() of access log "${err.path ?? ''}" failed (${describeErrno(err)})`),
  );
  // Counted only when someone can read the counts: the admin endpoint is on.
  const metrics = config.admin === undefined ? undefined : new ProxyMetrics();
  let proxy: RunningProxy;
  try {
    proxy = await startProxy(config, { errorLog, accessLog }, { observer: metrics });
  } catch (err) {
    if ((err as { code?: string }).code !== 'SOCKPROXY_LISTEN_FAILED') throw err;
    if (worker) await reportStart({ type: 'sockproxy:failed', message: (err as Error).message });
    else process.stderr.write(`sockproxy: [emerg] ${(err as Error).message}\n`);
    return EXIT_FAILED;
  }
  // The handlers before the pid file and the start lines: whoever waits for those may
  // signal at once, and without a handler SIGTERM would kill the process without its
  // graceful stop (and SIGHUP would kill it outright).
  const lifecycle = new Lifecycle({
    proxy,
    config,
    errorLog,
    accessLog,
    worker,
    // A worker's reloads are counted once, by its primary.
    onReloaded: worker ? undefined : (result) => metrics?.reloaded(result),
  });
  handleSignals(lifecycle, { worker });
  const statusSource = metrics && localStatusSource(metrics, proxy, () => lifecycle.loaded());

  if (worker) {
    // The primary keeps the pid file, serves the admin endpoint and says where the proxy
    // listens, for all workers.
    if (statusSource !== undefined) answerQueries(statusSource);
    await reportStart({ type: 'sockproxy:ready' });
    await lifecycle.stopped;
    return 0;
  }

  let admin: AdminServer | undefined;
  const pidFile = pidFilePath(config.file, config.pid);
  try {
    if (config.admin !== undefined && statusSource !== undefined) {
      admin = await startAdmin(config.admin.listen, localAdmin(statusSource, version()), errorLog);
    }
    if (pidFile !== undefined) writePidFile(pidFile);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'SOCKPROXY_LISTEN_FAILED' && code !== 'SOCKPROXY_PID_FILE') throw err;
    process.stderr.write(`sockproxy: [emerg] ${(err as Error).message}\n`);
    await admin?.close();
    await proxy.destroy();
    await proxy.close();
    return EXIT_FAILED;
  }
  announce(errorLog, proxy, config);
  if (admin !== undefined) errorLog.info({ admin: admin.address }, `admin on ${admin.address}`);
  await lifecycle.stopped;
  await admin?.close();
  return 0;
}

main(process.argv.slice(2)).then(
  // Exit explicitly: a client connection still open past the deadline must not keep us alive.
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`sockproxy: [alert] unexpected failure: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
