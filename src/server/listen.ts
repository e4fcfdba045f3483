import cluster from 'node:cluster';
import fs from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import { formatListen } from '../config/listen.js';
import type { ListenAddress } from '../config/types.js';
import { describeErrno } from './errno.js';

/** A listener could not be set up; the message is nginx's `bind() to ADDRESS failed (N: text)`. */
export class ListenError extends Error {
  readonly code = 'SOCKPROXY_LISTEN_FAILED';
  override readonly name = 'ListenError';
}

export interface ListenOptions {
  /**
   * File-mode creation mask while a unix socket file is created (Gunicorn's --umask):
   * the socket's mode is 0777 & ~umask. Undefined keeps the process umask. It has no
   * effect in a cluster worker, where the primary creates the socket file.
   */
  readonly umask?: number;
}

/**
 * Binds `server` (net or http) to a TCP address or a unix socket path, and resolves once
 * it is listening. For a unix path, Gunicorn's rules (gunicorn/sock.py UnixSocket) apply
 * first, see claimUnixPath. Rejects with a ListenError.
 *
 * In a cluster worker node's primary performs the bind (the RoundRobinHandle), and the
 * worker's own probe would find its siblings' live socket and call it "in use"; so there
 * the primary must call claimUnixPath once, before forking, and set its umask itself.
 */
export async function listen(server: net.Server, address: ListenAddress, options: ListenOptions = {}): Promise<void> {
  if (address.kind === 'unix' && !cluster.isWorker) await claimUnixPath(address.path);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      reject(bindFailed(address, address.kind === 'unix' ? unmaskMissingDirectory(address.path, err) : err));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    if (address.kind === 'tcp') {
      // host undefined binds every address, like nginx's `listen 8080`.
      server.listen({ port: address.port, host: address.host });
      return;
    }
    // The socket file is created synchronously inside listen() (outside a cluster worker),
    // so the mask only has to be in force for that call, as Gunicorn's bind() does with
    // os.umask(); restoring it at once keeps other files the process creates unaffected.
    // With mode= or group=, the file is created for its owner only and opened up to what
    // was asked right after, still before the event loop can accept a connection: it is
    // never wider than asked, not even between bind() and chmod().
    const setsAccess = address.mode !== undefined || address.group !== undefined;
    const mask = setsAccess ? OWNER_ONLY_UMASK : options.umask;
    const previous = mask === undefined ? undefined : process.umask(mask);
    try {
      server.listen({ path: address.path });
      if (setsAccess && server.listening) {
        setSocketFileAccess(address.path, address.mode ?? (0o777 & ~(options.umask ?? previous ?? 0)), address.group?.gid);
      }
    } catch (err) {
      server.off('listening', onListening);
      server.off('error', onError);
      server.close();
      reject(new ListenError((err as Error).message, { cause: err }));
    } finally {
      if (previous !== undefined) process.umask(previous);
    }
  });
}

/** The umask a socket file is created with before its mode= and group= are applied. */
export const OWNER_ONLY_UMASK = 0o077;

/**
 * Gives a unix socket file the mode= and group= of its listen address (the mode defaults
 * to 0777 less `umask`). For the cluster primary, which binds the file when the first
 * worker listens, under OWNER_ONLY_UMASK, and opens it up to what was asked once that
 * worker says it listens. Throws with nginx's wording of a failed chown or chmod.
 */
export function applySocketFileAccess(address: ListenAddress, umask: number): void {
  if (address.kind !== 'unix' || (address.mode === undefined && address.group === undefined)) return;
  setSocketFileAccess(address.path, address.mode ?? 0o777 & ~umask, address.group?.gid);
}

/** chown(2) the group, then chmod(2): a failure is worded as nginx words a failed syscall on a path. */
function setSocketFileAccess(path: string, mode: number, gid: number | undefined): void {
  const call = (name: string, action: () => void): void => {
    try {
      action();
    } catch (err) {
      throw new Error(`${name}("${path}") failed (${describeErrno(err as NodeJS.ErrnoException)})`);
    }
  };
  if (gid !== undefined) call('chown', () => fs.chownSync(path, -1, gid));
  call('chmod', () => fs.chmodSync(path, mode));
}

/**
 * Makes a unix socket path free to bind, as Gunicorn does at start: a socket file left by
 * a dead process (SIGKILL, crash: nobody unlinked it) is removed; a socket someone still
 * listens on is "Address already in use"; anything that is not a socket (a regular file, a
 * directory, a symlink) is never deleted. A socket is stale when connect() is refused;
 * a full listen queue (EAGAIN on Linux) still means a live server.
 */
export async function claimUnixPath(path: string): Promise<void> {
  const address: ListenAddress = { kind: 'unix', path };
  let stats: fs.Stats;
  try {
    stats = fs.lstatSync(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw bindFailed(address, err as NodeJS.ErrnoException);
  }
  if (!stats.isSocket()) {
    throw new ListenError(
      `bind() to ${formatListen(address)} failed: "${path}" exists and is not a socket; refusing to replace it`,
    );
  }
  const probe = await connectProbe(path);
  if (probe === undefined || probe.code === 'EAGAIN') {
    // What bind() itself would report on a path that exists (the probe runs first so that
    // a stale file can be told apart from a live one).
    const inUse = Object.assign(new Error(`a server is listening on ${path}`), { code: 'EADDRINUSE' });
    throw bindFailed(address, inUse);
  }
  // Anything but a refusal (EACCES: no write permission on the socket) leaves us unable to
  // tell a live socket from a stale one; refuse rather than delete a server's socket.
  if (probe.code !== 'ECONNREFUSED') throw bindFailed(address, probe);
  try {
    fs.unlinkSync(path);
  } catch (err) {
    // Another starting process may have removed it first; its bind or ours will then fail cleanly.
    if (errnoCode(err) !== 'ENOENT') throw bindFailed(address, err as NodeJS.ErrnoException);
  }
}

/**
 * Removes a unix socket file at shutdown (Gunicorn: close_sockets(unlink=True)) so that a
 * proxy in front gets an immediate "(2: No such file or directory)" rather than a refused
 * connect. Only a socket is removed: if something else has been put at the path since, it stays.
 */
export function unlinkSocket(path: string): void {
  try {
    if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}

/**
 * libuv's uv_pipe_bind turns ENOENT into EACCES ("for compatibility with Windows"), which
 * would send an operator to check permissions on a directory that does not exist.
 */
function unmaskMissingDirectory(path: string, err: NodeJS.ErrnoException): NodeJS.ErrnoException {
  if (err.code !== 'EACCES') return err;
  try {
    fs.statSync(dirname(path));
    return err;
  } catch (statErr) {
    return errnoCode(statErr) === 'ENOENT' ? (statErr as NodeJS.ErrnoException) : err;
  }
}

function bindFailed(address: ListenAddress, err: NodeJS.ErrnoException): ListenError {
  return new ListenError(`bind() to ${formatListen(address)} failed (${describeErrno(err)})`, { cause: err });
}

/** Resolves with undefined when something accepts a connection on `path`, else with the connect error. */
function connectProbe(path: string): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ path });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err));
  });
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
