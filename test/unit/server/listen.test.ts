/**
 * listen()/unlinkSocket() against real sockets: Gunicorn's socket-file rules (gunicorn/sock.py)
 * and nginx's "bind() to ... failed (N: text)" messages.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { claimUnixPath, listen, ListenError, unlinkSocket } from '../../../src/server/listen.js';
import { describeErrno } from '../../../src/server/errno.js';
import { cleanupSockets, holdSocket, makeStaleSocket, makeTempDir, modeOf, probeSocket } from '../../helpers/app-sockets.js';

const servers: net.Server[] = [];

function newServer(): net.Server {
  const server = net.createServer((socket) => socket.destroy());
  servers.push(server);
  return server;
}

async function listenError(promise: Promise<unknown>): Promise<ListenError> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(ListenError);
  return error as ListenError;
}

let dir: string;
let socketPath: string;

beforeEach(() => {
  dir = makeTempDir();
  socketPath = path.join(dir, 's.sock');
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  await cleanupSockets();
});

describe('listen on a unix socket', () => {
  it('binds a fresh path', async () => {
    await listen(newServer(), { kind: 'unix', path: socketPath });
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    expect(await probeSocket(socketPath)).toBeUndefined();
  });

  it('replaces a stale socket file left by a killed process', async () => {
    await makeStaleSocket(socketPath);
    expect(await probeSocket(socketPath)).toBe('ECONNREFUSED');
    await listen(newServer(), { kind: 'unix', path: socketPath });
    expect(await probeSocket(socketPath)).toBeUndefined();
  });

  it('refuses a socket a live server holds, and leaves that server alone', async () => {
    await holdSocket(socketPath);
    const error = await listenError(listen(newServer(), { kind: 'unix', path: socketPath }));
    expect(error.code).toBe('SOCKPROXY_LISTEN_FAILED');
    expect(error.message).toBe(`bind() to unix:${socketPath} failed (98: Address already in use)`);
    expect(await probeSocket(socketPath)).toBeUndefined();
  });

  it('never deletes a regular file', async () => {
    fs.writeFileSync(socketPath, 'data');
    const error = await listenError(listen(newServer(), { kind: 'unix', path: socketPath }));
    expect(error.message).toBe(
      `bind() to unix:${socketPath} failed: "${socketPath}" exists and is not a socket; refusing to replace it`,
    );
    expect(fs.readFileSync(socketPath, 'utf8')).toBe('data');
  });

  it('never deletes a directory', async () => {
    fs.mkdirSync(socketPath);
    await listenError(listen(newServer(), { kind: 'unix', path: socketPath }));
    expect(fs.statSync(socketPath).isDirectory()).toBe(true);
  });

  it('never deletes a symlink, even one to a stale socket', async () => {
    const target = path.join(dir, 'target.sock');
    await makeStaleSocket(target);
    fs.symlinkSync(target, socketPath);
    const error = await listenError(listen(newServer(), { kind: 'unix', path: socketPath }));
    expect(error.message).toContain('exists and is not a socket');
    expect(fs.lstatSync(socketPath).isSymbolicLink()).toBe(true);
  });

  it('reports a missing parent directory with errno number and text', async () => {
    const missing = path.join(dir, 'no', 's.sock');
    const error = await listenError(listen(newServer(), { kind: 'unix', path: missing }));
    const cause = error.cause as NodeJS.ErrnoException;
    // ENOENT on Linux; some sandboxes answer EACCES for bind() in a missing directory.
    expect(['ENOENT', 'EACCES']).toContain(cause.code);
    expect(error.message).toBe(`bind() to unix:${missing} failed (${describeErrno(cause)})`);
  });

  it.each([
    [0, 0o777],
    [0o077, 0o700],
    [0o007, 0o770],
  ])('umask %o gives a %o socket and restores the process umask', async (umask, mode) => {
    const before = process.umask();
    await listen(newServer(), { kind: 'unix', path: socketPath }, { umask });
    expect(modeOf(socketPath)).toBe(mode);
    expect(process.umask()).toBe(before);
  });
});

describe('listen on TCP', () => {
  it('binds a host and port', async () => {
    const server = newServer();
    // Port 0 (any free port) is not a valid config port, but listen() passes it to node as is.
    await listen(server, { kind: 'tcp', host: '127.0.0.1', port: 0 });
    expect((server.address() as net.AddressInfo).address).toBe('127.0.0.1');
  });

  it('binds every address when the host is undefined', async () => {
    const server = newServer();
    await listen(server, { kind: 'tcp', host: undefined, port: 0 });
    expect(['::', '0.0.0.0']).toContain((server.address() as net.AddressInfo).address);
  });

  it('reports a port in use as nginx does', async () => {
    const first = newServer();
    await listen(first, { kind: 'tcp', host: '127.0.0.1', port: 0 });
    const { port } = first.address() as net.AddressInfo;
    const error = await listenError(listen(newServer(), { kind: 'tcp', host: '127.0.0.1', port }));
    expect(error.code).toBe('SOCKPROXY_LISTEN_FAILED');
    expect(error.message).toBe(`bind() to 127.0.0.1:${port} failed (98: Address already in use)`);
  });

  it('reports an address not on this host', async () => {
    const error = await listenError(listen(newServer(), { kind: 'tcp', host: '192.0.2.1', port: 0 }));
    expect(error.message).toBe('bind() to 192.0.2.1:0 failed (99: Cannot assign requested address)');
  });
});

describe('claimUnixPath', () => {
  it('does nothing for a free path', async () => {
    await claimUnixPath(socketPath);
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  it('removes a stale socket without binding', async () => {
    await makeStaleSocket(socketPath);
    await claimUnixPath(socketPath);
    expect(fs.existsSync(socketPath)).toBe(false);
  });
});

describe('unlinkSocket', () => {
  it('removes a socket file', async () => {
    await makeStaleSocket(socketPath);
    unlinkSocket(socketPath);
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  it('leaves anything that is not a socket', () => {
    fs.writeFileSync(socketPath, 'data');
    unlinkSocket(socketPath);
    expect(fs.readFileSync(socketPath, 'utf8')).toBe('data');
  });

  it('ignores a path that is already gone', () => {
    expect(() => unlinkSocket(socketPath)).not.toThrow();
  });
});
