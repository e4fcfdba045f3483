/**
 * Runs the sample app (dist/app.js, the Gunicorn stand-in, built by `npm test`) as a real
 * process. Every process started here is SIGKILLed by killAll() from node-process.ts (call
 * it in afterEach); cluster workers exit by themselves when their primary's IPC channel
 * goes away.
 */
import { type RunResult, type Running, runNode, spawnNode } from './node-process.js';
import { APP_JS } from './paths.js';

/**
 * The app writes one line per --bind, all in one write, once every listener is up: the
 * first line means all of them are there.
 */
const LISTENING_LINE = /^\[app\] listening at /m;

export type AppProcess = Running;

/** Spawns `node dist/app.js ...args` and resolves once it has printed its "listening at" line. */
export async function startApp(args: readonly string[]): Promise<AppProcess> {
  const app = spawnNode(APP_JS, args);
  await app.waitForStderr(LISTENING_LINE);
  return app;
}

/** Runs the app to completion (for start-up failures), with a deadline so a test cannot hang. */
export function runAppToExit(args: readonly string[], timeoutMs = 10_000): Promise<RunResult> {
  return runNode(APP_JS, args, timeoutMs);
}
