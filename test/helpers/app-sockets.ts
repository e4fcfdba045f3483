/**
 * Temp directories for socket files, and the socket-file states Gunicorn's start-up rules
 * are about. Everything made here is removed by cleanupSockets() (call it in afterEach).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const dirs = new Set<string>();
const servers = new Set<net.Server>();

/** A fresh directory under the OS temp dir, short enough for sun_path. */
export function makeTempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockproxy-app-'));
  dirs.add(dir);
  return dir;
}

/**
 * Leaves a socket file at `socketPath` with nobody listening, the way a SIGKILLed server
 * does. (Closing a node server in-process would unlink the file, so a child must die.)
 */
export async function makeStaleSocket(socketPath: string): Promise<void> {
  const child = spawn(
    process.execPath,
    ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.stdout.write('ready'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`stale-socket child exited early (code ${code})`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** A live server on `socketPath` in this process, closed by cleanupSockets(). */
export async function holdSocket(socketPath: string): Promise<net.Server> {
  const server = net.createServer((socket) => socket.destroy());
  servers.add(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  return server;
}

/** Resolves with undefined if something accepts on `socketPath`, else with the connect error's code. */
export function probeSocket(socketPath: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code));
  });
}

/** The permission bits of a file, e.g. 0o777. */
export function modeOf(file: string): number {
  return fs.statSync(file).mode & 0o777;
}

export async function cleanupSockets(): Promise<void> {
  await Promise.all([...servers].map((server) => new Promise((resolve) => server.close(resolve))));
  servers.clear();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}
