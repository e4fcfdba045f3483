#!/usr/bin/env node
/**
 * The command line: `sockproxy --config FILE [-t]`. The only place that chooses an exit
 * code: 0 for success, 2 for a bad command line or configuration (nginx -t style),
 * 1 for a failure at start-up such as an address already in use.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.js';
import type { Config, UpstreamBlock } from './config/types.js';
import { createAccessLog, createErrorLog, type Logger } from './observe/logger.js';
import { startProxy, type RunningProxy } from './run.js';
import { describeServer } from './upstream/address.js';

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
  try {
    config = await loadConfig(args.config);
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

  const errorLog = createErrorLog(config.log.level);
  const accessLog = createAccessLog(config.log.access);
  let proxy: RunningProxy;
  try {
    proxy = await startProxy(config, { errorLog, accessLog });
  } catch (err) {
    if ((err as { code?: string }).code !== 'SOCKPROXY_LISTEN_FAILED') throw err;
    process.stderr.write(`sockproxy: [emerg] ${(err as Error).message}\n`);
    return EXIT_START_FAILED;
  }
  // The handlers before the start lines: whoever waits for those may signal at once, and
  // without a handler SIGTERM would kill the process without its graceful stop.
  const stopped = stopSignal(errorLog);
  // One line per proxy: where it listens and which servers it fronts.
  if (config.http !== undefined) announce(errorLog, '', proxy.addresses, config.http.upstream);
  for (const stream of proxy.streams) announce(errorLog, 'stream ', stream.addresses, stream.config.upstream);

  await stopped;
  // A bounded graceful stop: requests in flight finish, unless they outlast the deadline.
  const deadline = new Promise<void>((resolve) => setTimeout(resolve, SHUTDOWN_TIMEOUT_MS).unref());
  await Promise.race([proxy.close(), deadline, stopSignal(errorLog)]);
  if (accessLog !== undefined) await new Promise<void>((resolve) => accessLog.flush(() => resolve()));
  return 0;
}

function announce(errorLog: Logger, kind: '' | 'stream ', addresses: readonly string[], upstream: UpstreamBlock): void {
  const servers = upstream.servers.map(describeServer).join(', ');
  errorLog.info(
    { listen: addresses, upstream: upstream.name, ...(kind === '' ? {} : { stream: true }) },
    `sockproxy ${version()} ${kind}listening on ${addresses.join(', ')}, upstream "${upstream.name}": ${servers}`,
  );
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
