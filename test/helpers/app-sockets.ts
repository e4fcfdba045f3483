/**
 * The socket-file states Gunicorn's start-up rules are about, and probes of them. Everything
 * made here is closed or removed by cleanupSockets() (call it in afterEach).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { makeTempDir as makeTempDirHandle, type TempDir } from './temp.js';

const dirs = new Set<TempDir>();
const servers = new Set<net.Server>();

/**
 * A fresh temp directory (temp.ts's), as a plain path, removed by cleanupSockets(). For
 * test/unit/server/listen.test.ts; other tests use temp.ts's makeTempDir() directly.
 */
export function makeTempDir(): string {
  const tmp = makeTempDirHandle();
  dirs.add(tmp);
  return tmp.dir;
}

/**
 * Leaves a socket file at `socketPath` with nobody listening, the way a SIGKILLed server
 * (Gunicorn, the sample app) does: connecting to it gives ECONNREFUSED (nginx: "connect()
 * to unix:… failed (111: Connection refused)"). Closing a node server in-process would
 * unlink the file, so a child must die.
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

/**
 * A live server in this process holding `target` (a unix socket path, or listen options
 * such as a TCP port), as another program would; it drops every connection. Closed by
 * cleanupSockets().
 */
export async function holdSocket(target: string | net.ListenOptions): Promise<net.Server> {
  const server = net.createServer((socket) => socket.destroy());
  servers.add(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(typeof target === 'string' ? { path: target } : target, () => resolve());
  });
  return server;
}

/**
 * Resolves with undefined if something accepts on `target` (a unix socket path, or a TCP
 * port on 127.0.0.1), else with the connect error's code.
 */
export function probeSocket(target: string | number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = typeof target === 'number' ? net.connect(target, '127.0.0.1') : net.connect(target);
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
}

/** The permission bits of a file, e.g. 0o777. */
export function modeOf(file: string): number {
  return fs.statSync(file).mode & 0o777;
}

export async function cleanupSockets(): Promise<void> {
  await Promise.all([...servers].map((server) => new Promise((resolve) => server.close(resolve))));
  servers.clear();
  for (const tmp of dirs) tmp.remove();
  dirs.clear();
}
