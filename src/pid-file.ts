import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { PidFile } from './config/types.js';
import { describeErrno } from './server/errno.js';

/** A pid file could not be written or read, or its process signalled; the message is nginx's. */
export class PidFileError extends Error {
  readonly code = 'SOCKPROXY_PID_FILE';
  override readonly name = 'PidFileError';
}

/**
 * The pid file of a configuration (nginx `pid`), or undefined for `pid: off`. The default
 * is named after the configuration file's real path, in the OS temp directory
 * (`/tmp/sockproxy-proxy.yaml-3f2a9c1b7d0e.pid`): a proxy and `sockproxy --reload -c FILE`
 * find the same file from the same configuration, whatever the current directory, and two
 * proxies with different configurations never share one.
 */
export function pidFilePath(configFile: string, setting: PidFile): string | undefined {
  switch (setting.kind) {
    case 'off':
      return undefined;
    case 'file':
      return setting.path;
    case 'default': {
      let real: string;
      try {
        real = realpathSync(configFile);
      } catch {
        real = resolve(configFile);
      }
      const hash = createHash('sha256').update(real).digest('hex').slice(0, 12);
      return join(tmpdir(), `sockproxy-${basename(real).replace(/[^\w.-]/g, '_')}-${hash}.pid`);
    }
  }
}

/** Writes this process's id, as nginx does once it listens; nginx's `open() "…" failed (13: Permission denied)` if it cannot. */
export function writePidFile(path: string): void {
  try {
    writeFileSync(path, `${process.pid}\n`);
  } catch (err) {
    throw new PidFileError(`open() "${path}" failed (${describeErrno(err as NodeJS.ErrnoException)})`);
  }
}

/** Removes the pid file at exit, unless another process has written its own id there since. */
export function removePidFile(path: string): void {
  try {
    if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
  } catch {
    // Already gone: nothing to remove.
  }
}

/**
 * Sends `signal` to the process a pid file names (nginx -s): nginx's messages when the
 * file is missing (`open() "…" failed (2: No such file or directory)`), holds no pid
 * (`invalid PID number "…" in "…"`) or names a process that is gone
 * (`kill(1234, SIGHUP) failed (3: No such process)`). Returns the pid signalled.
 */
export function signalPidFile(path: string, signal: NodeJS.Signals): number {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PidFileError(`open() "${path}" failed (${describeErrno(err as NodeJS.ErrnoException)})`);
  }
  const pid = /^\s*(\d+)\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(pid) || pid < 1) throw new PidFileError(`invalid PID number "${text.trim()}" in "${path}"`);
  // A pid file left by a proxy that was killed (SIGKILL, a crash) may name a pid the
  // kernel has since given to another program, which SIGHUP or SIGTERM would kill: nginx
  // signals it anyway; sockproxy refuses (where /proc tells).
  const command = commandLine(pid);
  if (command !== undefined && !/sockproxy|proxy\.js/.test(command)) {
    throw new PidFileError(`process ${pid} named in "${path}" is not sockproxy ("${command}"): the pid file is stale`);
  }
  try {
    process.kill(pid, signal);
  } catch (err) {
    throw new PidFileError(`kill(${pid}, ${signal}) failed (${describeErrno(err as NodeJS.ErrnoException)})`);
  }
  return pid;
}

/** A process's command line from /proc (Linux), or undefined where it cannot be read (no such process, no /proc). */
function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return undefined;
  }
}
