/** What the command-line tests check beyond a process's exit: the version, stack traces, a closed listener. */
import { readFileSync } from 'node:fs';
import { probeSocket } from './app-sockets.js';
import { repoPath } from './paths.js';
import { pollUntil } from './wait.js';

export const PACKAGE_VERSION = (JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { version: string }).version;

/** Lines of a stack trace ("    at fn (file:1:2)") in `text`. */
export function stackLines(text: string): string[] {
  return text.split('\n').filter((line) => /^\s+at /.test(line));
}

/** Polls until a TCP connect to 127.0.0.1:port is refused (the listener is closed). */
export async function waitForRefused(port: number, timeoutMs = 5_000): Promise<void> {
  let result: string | undefined;
  await pollUntil(
    () => `127.0.0.1:${port} to refuse connections (the last connect: ${result ?? 'connected'})`,
    async () => {
      result = await probeSocket(port);
      return result === 'ECONNREFUSED' ? true : undefined;
    },
    timeoutMs,
  );
}
