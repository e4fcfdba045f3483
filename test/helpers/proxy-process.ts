import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './temp.js';

export const PROXY_JS = join(import.meta.dirname, '../../dist/proxy.js');

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
  /** Resolves when a log line matching `predicate` has appeared. */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function parseLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
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
  const child = spawn(process.execPath, [PROXY_JS, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const all = (): Record<string, unknown>[] => [...parseLines(out), ...parseLines(err)];
  const waitForLog = async (
    predicate: (line: Record<string, unknown>) => boolean,
    timeoutMs = 10_000,
  ): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = all().find(predicate);
      if (found) return found;
      if (child.exitCode !== null) throw new Error(`proxy exited (${child.exitCode}): ${err}`);
      if (Date.now() > deadline) throw new Error(`no matching log line within ${timeoutMs} ms; stderr:\n${err}\nstdout:\n${out}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  await waitForLog((line) => String(line.msg ?? '').includes('listening on'));
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    access: () => parseLines(out),
    errors: () => parseLines(err),
    stderr: () => err,
    waitForLog,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
