import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';

/**
 * A real listener that never calls accept(): python3 binds, listen(0)s and sleeps. Once
 * its queue is full, Linux answers a Unix-socket connect() with EAGAIN and drops a TCP SYN
 * (so a TCP connect() hangs until its timeout). Filler connections fill the queue.
 */
export interface UnacceptingListener {
  readonly child: ChildProcess;
  /** "unix:/path" or "127.0.0.1:PORT": the server line for the config. */
  readonly address: string;
  /** Connects until the queue is full: returns how many connections it took. */
  fill(): Promise<number>;
  stop(): Promise<void>;
}

const SCRIPT = `
import socket, sys, time
if sys.argv[1] == 'unix':
    s = socket.socket(socket.AF_UNIX)
    s.bind(sys.argv[2])
else:
    s = socket.socket(socket.AF_INET)
    s.bind(('127.0.0.1', 0))
s.listen(0)
print('up', s.getsockname()[1] if sys.argv[1] == 'tcp' else '', flush=True)
time.sleep(120)
`;

async function spawnListener(args: string[]): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn('python3', ['-c', SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`python3 listener did not start: ${err}`)), 10_000);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(out.split('\n')[0]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`python3 listener exited (${code}): ${err}`));
    });
  });
  return { child, line };
}

function stopper(child: ChildProcess, fillers: net.Socket[]): () => Promise<void> {
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return async () => {
    for (const socket of fillers.splice(0)) socket.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
}

/** Unix socket: connects until one gets EAGAIN (listen(0) queues one connection on Linux). */
export async function unacceptingUnixListener(path: string): Promise<UnacceptingListener> {
  const { child } = await spawnListener(['unix', path]);
  const fillers: net.Socket[] = [];
  return {
    child,
    address: `unix:${path}`,
    fill: async () => {
      for (let i = 1; i <= 16; i++) {
        const code = await new Promise<string>((resolve) => {
          const socket = net.connect({ path });
          fillers.push(socket);
          // Later errors (the listener killed at the end) are expected and ignored.
          socket.on('error', () => {});
          socket.once('connect', () => resolve('connected'));
          socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
        });
        if (code === 'EAGAIN') return i;
        if (code !== 'connected') throw new Error(`filling the queue of ${path}: ${code}`);
      }
      throw new Error(`the queue of ${path} did not fill after 16 connections`);
    },
    stop: stopper(child, fillers),
  };
}

/** TCP on 127.0.0.1: connects until one stays unconnected for 300 ms (its SYN was dropped). */
export async function unacceptingTcpListener(): Promise<UnacceptingListener & { port: number }> {
  const { child, line } = await spawnListener(['tcp']);
  const port = Number(line.split(' ')[1]);
  const fillers: net.Socket[] = [];
  return {
    child,
    port,
    address: `127.0.0.1:${port}`,
    fill: async () => {
      for (let i = 1; i <= 16; i++) {
        const code = await new Promise<string>((resolve) => {
          const socket = net.connect({ port, host: '127.0.0.1' });
          fillers.push(socket);
          socket.on('error', () => {});
          const timer = setTimeout(() => resolve('pending'), 300);
          socket.once('connect', () => {
            clearTimeout(timer);
            resolve('connected');
          });
          socket.once('error', (err: NodeJS.ErrnoException) => {
            clearTimeout(timer);
            resolve(err.code ?? 'error');
          });
        });
        if (code === 'pending') return i;
        if (code !== 'connected') throw new Error(`filling the queue of 127.0.0.1:${port}: ${code}`);
      }
      throw new Error(`the queue of 127.0.0.1:${port} did not fill after 16 connections`);
    },
    stop: stopper(child, fillers),
  };
}
