/** Starts test/bench/upstream.ts (compiled) on the server CPU, with its stats channel. */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { pinned, ROOT } from './util.js';

export interface Upstream {
  readonly child: ChildProcess;
  readonly port: number;
  stats(): Promise<{ connections: number; requests: number }>;
}

export async function startUpstream(socketPath: string, cpus: string | undefined): Promise<Upstream> {
  const [command, argv] = pinned(cpus, process.execPath, [join(ROOT, 'dist-bench/upstream.js'), socketPath]);
  const child = spawn(command, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the upstream exited (${code}) at start`)));
    child.on('message', (message: { ready?: { port: number } }) => {
      if (message.ready !== undefined) resolve(message.ready.port);
    });
  });
  return {
    child,
    port,
    stats: () =>
      new Promise((resolve) => {
        const onMessage = (message: { stats?: { connections: number; requests: number } }): void => {
          if (message.stats === undefined) return;
          child.off('message', onMessage);
          resolve(message.stats);
        };
        child.on('message', onMessage);
        child.send('stats');
      }),
  };
}
