/**
 * Runs the sample app (dist/app.js, built by `npm test`) as a real process. Every process
 * started here is SIGKILLed by stopAllApps() (call it in afterEach); cluster workers exit
 * by themselves when their primary's IPC channel goes away.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export const APP_JS = fileURLToPath(new URL('../../dist/app.js', import.meta.url));

const LISTENING_LINE = /^\[app\] listening at /m;

export interface AppExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface AppProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything written to stderr so far. */
  stderr(): string;
  stdout(): string;
  /** Settles when the process has exited. */
  readonly exited: Promise<AppExit>;
}

const running = new Set<AppProcess>();

/** Spawns `node dist/app.js ...args` without waiting for anything. */
export function spawnApp(args: readonly string[]): AppProcess {
  const child = spawn(process.execPath, [APP_JS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  const exited = new Promise<AppExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const app: AppProcess = { child, pid: child.pid!, stderr: () => stderr, stdout: () => stdout, exited };
  running.add(app);
  void exited.then(() => running.delete(app));
  return app;
}

/** Spawns the app and resolves once it has printed its "listening at" line. */
export async function startApp(args: readonly string[]): Promise<AppProcess> {
  const app = spawnApp(args);
  await new Promise<void>((resolve, reject) => {
    const onData = (): void => {
      if (!LISTENING_LINE.test(app.stderr())) return;
      app.child.stderr!.off('data', onData);
      resolve();
    };
    app.child.stderr!.on('data', onData);
    void app.exited.then(({ code, signal }) =>
      reject(new Error(`app exited before listening (code ${code}, signal ${signal}): ${app.stderr()}`)),
    );
  });
  return app;
}

/** Runs the app to completion (for start-up failures), with a deadline so a test cannot hang. */
export async function runAppToExit(args: readonly string[], timeoutMs = 10_000): Promise<AppExit & { stderr: string; stdout: string }> {
  const app = spawnApp(args);
  const timer = setTimeout(() => app.child.kill('SIGKILL'), timeoutMs);
  const exit = await app.exited;
  clearTimeout(timer);
  return { ...exit, stderr: app.stderr(), stdout: app.stdout() };
}

export async function stopAllApps(): Promise<void> {
  const apps = [...running];
  for (const app of apps) app.child.kill('SIGKILL');
  await Promise.all(apps.map((app) => app.exited));
}

/** Peak resident memory of a process in bytes (Linux VmHWM), to prove a body was streamed, not held. */
export async function peakRssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}
