/** The proxy (dist/proxy.js) as a real process, started the way a user starts it. */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type RunResult, type Running, runNode, spawnNode } from './node-process.js';
import { PROXY_JS } from './paths.js';
import { freePort } from './temp.js';

/** `node dist/proxy.js ...args`, run to completion. */
export function runProxy(args: readonly string[], timeoutMs?: number): Promise<RunResult> {
  return runNode(PROXY_JS, args, timeoutMs);
}

/** The proxy, started with `--config FILE`, resolved once it says where it listens. */
export async function startProxyWithConfig(configFile: string): Promise<Running> {
  const proxy = spawnNode(PROXY_JS, ['--config', configFile]);
  await proxy.waitForLog((line) => String(line.msg ?? '').includes('listening on'));
  return proxy;
}

export interface ProxyProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
  /** Access-log lines so far (stdout), parsed. */
  access(): Record<string, unknown>[];
  /** Error-log lines so far (stderr), parsed where they are JSON. */
  errors(): Record<string, unknown>[];
  /** The raw stderr text. */
  stderr(): string;
  /** Resolves when a log line (access or error log) matching `predicate` has appeared. */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Spawns `node dist/proxy.js --config FILE` as a user would, listening on a free TCP port
 * (unless the config text already has a `listen:`), and resolves once it says it listens.
 * `configBody` is YAML without the listen line; `{port}` is not needed.
 */
export async function startProxyProcess(configBody: string, dir: string): Promise<ProxyProcess> {
  const port = await freePort();
  const file = join(dir, `proxy-${port}.yaml`);
  writeFileSync(file, `listen: 127.0.0.1:${port}\n${configBody}`);
  const proxy = await startProxyWithConfig(file);
  return {
    child: proxy.child,
    port,
    url: `http://127.0.0.1:${port}`,
    access: proxy.accessLog,
    errors: proxy.errorLog,
    stderr: proxy.stderr,
    waitForLog: (predicate, timeoutMs) =>
      proxy.waitFor('a matching log line', () => [...proxy.accessLog(), ...proxy.errorLog()].find(predicate), timeoutMs),
    stop: async (signal = 'SIGTERM') => (await proxy.stop(signal)).code,
  };
}
