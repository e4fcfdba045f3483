import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export const APP_JS = join(import.meta.dirname, '../../dist/app.js');

export interface SampleApp {
  readonly child: ChildProcess;
  /** The server line for the config: "unix:/tmp/…/app.sock". */
  readonly address: string;
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * Spawns the sample app (`node dist/app.js --bind unix:PATH`, the Gunicorn stand-in) and
 * resolves once it says it listens.
 */
export async function startSampleApp(socketPath: string, args: string[] = []): Promise<SampleApp> {
  const child = spawn(process.execPath, [APP_JS, '--bind', `unix:${socketPath}`, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sample app did not start within 10 s: ${err}`)), 10_000);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
      if (err.includes('[app] listening at')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sample app exited (${code}) during start: ${err}`));
    });
  });
  return {
    child,
    address: `unix:${socketPath}`,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
