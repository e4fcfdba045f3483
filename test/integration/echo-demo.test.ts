import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeStaleSocket, probeSocket } from '../helpers/app-sockets.js';
import { stackLines } from '../helpers/cli.js';
import { killAll, runNode } from '../helpers/node-process.js';
import { ECHO_CLIENT_JS, ECHO_SERVER_JS } from '../helpers/paths.js';
import { startEchoServer, startStreamProxy, streamClient, type StreamUpstream, streamUpstream } from '../helpers/stream.js';
import { freePort, makeTempDir, type TempDir } from '../helpers/temp.js';

/** What the client prints for a run where both echoes match. */
const GOOD_RUN = (target: string): string =>
  `connecting to ${target}\n` +
  'sending "Hello, world!"\nreceived "Hello, world!"\n' +
  'sending "My name is Tom!"\nreceived "My name is Tom!"\n' +
  'closing\n';

/**
 * The Unix-socket echo demo: dist/echo-server.js on a SOCK_STREAM Unix socket, and
 * dist/echo-client.js talking to it directly or through the stream proxy (TCP → Unix).
 */
describe('the echo demo', () => {
  let tmp: TempDir;
  const upstreams: StreamUpstream[] = [];

  beforeEach(() => {
    tmp = makeTempDir();
  });

  afterEach(async () => {
    await killAll();
    await Promise.all(upstreams.splice(0).map((upstream) => upstream.close()));
    tmp.remove();
  });

  const client = (args: string[]) => runNode(ECHO_CLIENT_JS, args);
  const server = (args: string[]) => runNode(ECHO_SERVER_JS, args, 5_000);

  it('through the stream proxy: the client on a TCP port prints both echoes from the server on a Unix socket', async () => {
    const path = tmp.path('echo.sock');
    const echo = await startEchoServer(`unix:${path}`);
    const proxy = await startStreamProxy(tmp, [`unix:${path}`]);
    const result = await client(['--connect', `127.0.0.1:${proxy.port}`]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(GOOD_RUN(`127.0.0.1:${proxy.port}`));
    expect(result.code).toBe(0);

    const [session] = await proxy.waitForSessions(1);
    expect(session).toMatchObject({ status: 200, bytes_received: 28, bytes_sent: 28, upstream_addr: `unix:${path}` });
    await echo.waitForStderr(/#1 closed, 28 bytes echoed/);
    expect(echo.stderr()).toContain('#1 received 13 bytes: "Hello, world!", sending them back');
    expect(echo.stderr()).toContain('#1 received 15 bytes: "My name is Tom!", sending them back');
  });

  it('directly on the Unix socket', async () => {
    const path = tmp.path('echo.sock');
    await startEchoServer(`unix:${path}`);
    const result = await client(['--connect', `unix:${path}`]);
    expect(result.stdout).toBe(GOOD_RUN(`unix:${path}`));
    expect(result.code).toBe(0);
  });

  it('the server also binds TCP (HOST:PORT)', async () => {
    const port = await freePort();
    await startEchoServer(`127.0.0.1:${port}`);
    const result = await client(['-c', `127.0.0.1:${port}`]);
    expect(result.code).toBe(0);
  });

  describe('echo-server and its socket file', () => {
    it('refuses to start when a live server holds the path (exit 1); the live one keeps serving', async () => {
      const path = tmp.path('echo.sock');
      await startEchoServer(`unix:${path}`);
      const second = await server(['--bind', `unix:${path}`]);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`[echo-server] error: bind() to unix:${path} failed (98: Address already in use)`);
      expect(stackLines(second.stderr)).toEqual([]);
      expect((await client(['--connect', `unix:${path}`])).code).toBe(0);
    });

    it('replaces a stale socket file left by a killed server', async () => {
      const path = tmp.path('echo.sock');
      await makeStaleSocket(path);
      expect(await probeSocket(path)).toBe('ECONNREFUSED');
      await startEchoServer(`unix:${path}`);
      expect((await client(['--connect', `unix:${path}`])).code).toBe(0);
    });

    it('never deletes a file that is not a socket', async () => {
      const path = tmp.path('echo.sock');
      writeFileSync(path, 'precious');
      const result = await server(['--bind', `unix:${path}`]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('exists and is not a socket; refusing to replace it');
      expect(readFileSync(path, 'utf8')).toBe('precious');
    });

    it.each(['SIGINT', 'SIGTERM'] as const)('removes its socket file on %s, with a client still connected, and exits 0', async (signal) => {
      const path = tmp.path('echo.sock');
      const echo = await startEchoServer(`unix:${path}`);
      const idle = await streamClient(path);
      expect(existsSync(path)).toBe(true);
      const exit = await echo.stop(signal);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(existsSync(path)).toBe(false);
      await idle.waitFor('the connection to be closed by the server', () => idle.ended());
      expect(echo.stderr()).toContain(`${signal} received, removed ${path}, closing 1 connection(s)`);
    });

    it.each([
      [[], '--bind ADDRESS is required, e.g. --bind unix:/tmp/echo.sock'],
      [['--bind', 'unix:'], '--bind: no path in the unix domain socket in "unix:"'],
      [['--bind', 'localhost:99999'], '--bind: invalid port in "localhost:99999"'],
      [['--bind', 'unix:/tmp/x.sock', '--verbose'], "Unknown option '--verbose'"],
    ])('a bad command line %j: exit 2 with the reason and the usage line', async (args, reason) => {
      const result = await server(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(`[echo-server] error: ${reason}\nusage: node dist/echo-server.js --bind ADDRESS\n`);
    });
  });

  describe('echo-client failures: exit 1 and one clear line', () => {
    it('an echo that differs', async () => {
      const shouting = await streamUpstream(tmp.path('shout.sock'), ({ socket }) =>
        socket.on('data', (chunk: Buffer) => socket.write(chunk.toString().toUpperCase())),
      );
      upstreams.push(shouting);
      const result = await client(['--connect', shouting.address]);
      expect(result.code).toBe(1);
      expect(result.stdout).toContain('received "HELLO, WORLD!"');
      expect(result.stderr).toBe('[echo-client] error: the echo differs: sent "Hello, world!", received "HELLO, WORLD!"\n');
    });

    it('a server that sends more than it was sent', async () => {
      const chatty = await streamUpstream(tmp.path('chatty.sock'), ({ socket }) => {
        socket.pipe(socket, { end: false });
        socket.once('end', () => socket.end('and one more thing'));
      });
      upstreams.push(chatty);
      const result = await client(['--connect', chatty.address]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe('[echo-client] error: the server sent 18 bytes more than it was sent: "and one more thing"\n');
    });

    it('nothing listening on the path: nginx\'s connect() words', async () => {
      const path = tmp.path('nobody.sock');
      const result = await client(['--connect', `unix:${path}`]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`[echo-client] error: connect() to unix:${path} failed (2: No such file or directory)\n`);
      expect(stackLines(result.stderr)).toEqual([]);
    });

    it('through the proxy with the echo server down: the proxy closes the connection, the client says so', async () => {
      const proxy = await startStreamProxy(tmp, [`unix:${tmp.path('down.sock')}`]);
      const result = await client(['--connect', `127.0.0.1:${proxy.port}`]);
      expect(result.code).toBe(1);
      // The proxy closes a client it has not read from: a FIN if the client's bytes had not
      // arrived yet, a reset if they had (the kernel's rule for unread data at close()).
      expect([
        '[echo-client] error: the server closed the connection after 0 of 13 bytes\n',
        '[echo-client] error: recv() failed (104: Connection reset by peer) after 0 of 13 bytes\n',
      ]).toContain(result.stderr);
      const [session] = await proxy.waitForSessions(1);
      expect(session!.status).toBe(502);
    });

    it('a server that never answers: --timeout', async () => {
      const silent = await streamUpstream(tmp.path('silent.sock'), () => {});
      upstreams.push(silent);
      const started = performance.now();
      const result = await client(['--connect', silent.address, '--timeout', '0.5']);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe('[echo-client] error: no answer within 0.5 s (waiting for 0 of 13 bytes)\n');
      expect(performance.now() - started).toBeLessThan(5_000);
    });

    it.each([
      [[], '--connect ADDRESS is required, e.g. --connect unix:/tmp/echo.sock'],
      [['--connect', 'nowhere'], '--connect: invalid listen address "nowhere" (expected PORT, HOST:PORT, [IPv6]:PORT or unix:PATH)'],
      [['--connect', 'unix:/tmp/x.sock', '--timeout', 'soon'], '--timeout must be a number of seconds above 0, got "soon"'],
    ])('a bad command line %j: exit 2', async (args, reason) => {
      const result = await client(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(`[echo-client] error: ${reason}\nusage: node dist/echo-client.js --connect ADDRESS [--timeout SECONDS]\n`);
    });
  });
});
