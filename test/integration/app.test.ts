/**
 * The sample app (dist/app.js) as a real process on a real unix socket: its endpoints, and
 * Gunicorn's socket-file and process behaviour that sockproxy's own tests rely on.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runAppToExit, startApp, type AppProcess } from '../helpers/app-process.js';
import { cleanupSockets, holdSocket, makeStaleSocket, modeOf, probeSocket } from '../helpers/app-sockets.js';
import { killAll } from '../helpers/node-process.js';
import { hasCompleteResponse, rawConnect } from '../helpers/raw-http.js';
import { peakRssBytes } from '../helpers/rss.js';
import { freePort, makeTempDir, type TempDir } from '../helpers/temp.js';

const PATTERN = 'abcdefghijklmnopqrstuvwxyz0123456789';
const GIB = 1024 ** 3;
/** Far below 1 GiB and well above a node process's ~60 MB: a body held in memory cannot fit. */
const STREAMING_PEAK_RSS_LIMIT_BYTES = 256 * 1024 ** 2;

const agents = new Set<Agent>();

function agentFor(socketPath: string): Agent {
  const agent = new Agent({ connect: { socketPath } });
  agents.add(agent);
  return agent;
}

async function closeAgents(): Promise<void> {
  await Promise.all([...agents].map((agent) => agent.destroy()));
  agents.clear();
}

function expectedPattern(n: number): Buffer {
  return Buffer.from(PATTERN.repeat(Math.ceil(n / PATTERN.length)).slice(0, n));
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Reads a body chunk by chunk, noting when each arrived. */
async function timedChunks(body: AsyncIterable<Buffer>): Promise<{ text: string; arrivals: number[] }> {
  let text = '';
  const arrivals: number[] = [];
  for await (const chunk of body) {
    text += chunk.toString('utf8');
    arrivals.push(performance.now());
  }
  return { text, arrivals };
}

/** Sends one raw HTTP/1.1 request on a new connection and reads the response head. */
async function rawRequest(socketPath: string, head: string): Promise<{ socket: net.Socket; response: string }> {
  const client = await rawConnect(socketPath);
  client.socket.write(head);
  return { socket: client.socket, response: await client.waitFor(hasCompleteResponse) };
}

function waitForClose(socket: net.Socket): Promise<number> {
  return new Promise((resolve) => socket.once('close', () => resolve(performance.now())));
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('endpoints', () => {
  let tmp: TempDir;
  let app: AppProcess;
  let dispatcher: Agent;
  let socketPath: string;

  beforeAll(async () => {
    tmp = makeTempDir();
    socketPath = tmp.path('app.sock');
    app = await startApp(['--bind', `unix:${socketPath}`]);
    dispatcher = agentFor(socketPath);
  });

  afterAll(async () => {
    await closeAgents();
    await killAll();
    tmp.remove();
  });

  it('GET / says hello with the pid, and tags every response with x-app-pid', async () => {
    const res = await request('http://app/', { dispatcher });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.headers['x-app-pid']).toBe(String(app.pid));
    expect(await res.body.text()).toBe(`Hello from sockproxy sample app (pid ${app.pid})\n`);
  });

  it('counts requests per process in x-app-request-count', async () => {
    const counts: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      const res = await request('http://app/', { dispatcher });
      await res.body.dump();
      counts.push(Number(res.headers['x-app-request-count']));
    }
    expect(counts[1]).toBe(counts[0]! + 1);
    expect(counts[2]).toBe(counts[0]! + 2);
  });

  it('/echo returns method, url, version, headers and body as received', async () => {
    const res = await request('http://app/echo?x=1', {
      dispatcher,
      method: 'PUT',
      headers: { 'x-test': 'yes', 'content-type': 'text/plain' },
      body: 'héllo',
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const echo = (await res.body.json()) as Record<string, unknown>;
    expect(echo).toMatchObject({
      method: 'PUT',
      url: '/echo?x=1',
      httpVersion: '1.1',
      body: 'héllo',
      bodyBytes: Buffer.byteLength('héllo'),
      pid: app.pid,
    });
    expect(echo['headers']).toMatchObject({ 'x-test': 'yes', host: 'app', 'content-length': '6' });
    expect(echo['rawHeaders']).toEqual(expect.arrayContaining(['x-test', 'yes']));
  });

  it('/headers returns the request headers', async () => {
    const res = await request('http://app/headers', { dispatcher, headers: { 'x-forwarded-for': '10.0.0.1' } });
    expect(await res.body.json()).toMatchObject({ 'x-forwarded-for': '10.0.0.1', host: 'app' });
  });

  it.each([200, 404, 418, 500, 502, 503, 504])('/status/%i answers with that status', async (code) => {
    const res = await request(`http://app/status/${code}`, { dispatcher });
    expect(res.statusCode).toBe(code);
    expect(await res.body.text()).toBe(`status ${code}\n`);
  });

  it.each([204, 304])('/status/%i answers without a body', async (code) => {
    const res = await request(`http://app/status/${code}`, { dispatcher });
    expect(res.statusCode).toBe(code);
    expect(res.headers['content-length']).toBeUndefined();
    expect(await res.body.text()).toBe('');
  });

  it.each([100, 101, 199, 1000])('/status/%i is rejected with 400 (not a final status)', async (code) => {
    const res = await request(`http://app/status/${code}`, { dispatcher });
    expect(res.statusCode).toBe(400);
    await res.body.dump();
  });

  it('/delay/<ms> answers after that long', async () => {
    const started = performance.now();
    const res = await request('http://app/delay/300', { dispatcher });
    expect(await res.body.text()).toBe('delayed 300ms\n');
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('/bytes/<n> sends the pattern with Content-Length and x-body-sha256', async () => {
    const n = 200_000;
    const res = await request(`http://app/bytes/${n}`, { dispatcher });
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(res.headers['content-length']).toBe(String(n));
    expect(body.equals(expectedPattern(n))).toBe(true);
    expect(res.headers['x-body-sha256']).toBe(sha256(body));
  });

  it('/bytes/0 is an empty body', async () => {
    const res = await request('http://app/bytes/0', { dispatcher });
    expect(res.headers['content-length']).toBe('0');
    expect(await res.body.text()).toBe('');
  });

  it('/bytes streams 1 GiB without holding it (no x-body-sha256 above 16 MiB)', { timeout: 120_000 }, async () => {
    const res = await request(`http://app/bytes/${GIB}`, { dispatcher });
    expect(res.headers['content-length']).toBe(String(GIB));
    expect(res.headers['x-body-sha256']).toBeUndefined();
    let received = 0;
    let head: Buffer | undefined;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      head ??= chunk;
      received += chunk.length;
    }
    expect(received).toBe(GIB);
    expect(head!.subarray(0, 72).toString()).toBe(PATTERN + PATTERN);
    expect(peakRssBytes(app.pid)).toBeLessThan(STREAMING_PEAK_RSS_LIMIT_BYTES);
  });

  it('/stream sends N chunks, chunked, spread over time', async () => {
    const res = await request('http://app/stream?chunks=3&interval=100', { dispatcher });
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(res.headers['content-length']).toBeUndefined();
    const { text, arrivals } = await timedChunks(res.body as AsyncIterable<Buffer>);
    expect(text).toBe('chunk 1\nchunk 2\nchunk 3\n');
    // The first chunk arrives well before the last: nothing waits for the whole body.
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThanOrEqual(150);
  });

  it('/stream rejects a non-numeric count', async () => {
    const res = await request('http://app/stream?chunks=lots', { dispatcher });
    expect(res.statusCode).toBe(400);
    await res.body.dump();
  });

  it('/sse sends events as text/event-stream, each as it happens', async () => {
    const res = await request('http://app/sse?events=3&interval=100', { dispatcher });
    expect(res.headers['content-type']).toBe('text/event-stream');
    const { text, arrivals } = await timedChunks(res.body as AsyncIterable<Buffer>);
    expect(text).toBe('data: event 1\n\ndata: event 2\n\ndata: event 3\n\n');
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThanOrEqual(150);
  });

  it('/upload counts and hashes the body', async () => {
    const body = expectedPattern(1024 * 1024 + 7);
    const res = await request('http://app/upload', { dispatcher, method: 'POST', body });
    expect(await res.body.json()).toEqual({ bytes: body.length, sha256: sha256(body), pid: app.pid });
  });

  it('/mirror sends the body back with its sha256', async () => {
    const body = expectedPattern(300_001);
    const res = await request('http://app/mirror', { dispatcher, method: 'PUT', body });
    const got = Buffer.from(await res.body.arrayBuffer());
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(body.length));
    expect(got.equals(body)).toBe(true);
    expect(res.headers['x-body-sha256']).toBe(sha256(body));
  });

  it('/mirror of an empty body is an empty body with the empty hash', async () => {
    const res = await request('http://app/mirror', { dispatcher, method: 'POST', body: '' });
    expect(res.headers['content-length']).toBe('0');
    expect(res.headers['x-body-sha256']).toBe(sha256(''));
    expect(await res.body.text()).toBe('');
  });

  it('/upload takes 1 GiB without holding it', { timeout: 120_000 }, async () => {
    const chunk = expectedPattern(64 * 1024);
    const body = Readable.from(
      (function* () {
        for (let sent = 0; sent < GIB; sent += chunk.length) yield chunk;
      })(),
    );
    const res = await request('http://app/upload', { dispatcher, method: 'POST', body, headers: { 'content-length': String(GIB) } });
    const result = (await res.body.json()) as { bytes: number };
    expect(result.bytes).toBe(GIB);
    expect(peakRssBytes(app.pid)).toBeLessThan(STREAMING_PEAK_RSS_LIMIT_BYTES);
  });

  it('/trailers sends a chunked body with an x-checksum trailer', async () => {
    const res = await request('http://app/trailers', { dispatcher });
    expect(res.headers['trailer']).toBe('x-checksum');
    const text = await res.body.text();
    expect(text).toBe('line 1\nline 2\nline 3\n');
    expect(res.trailers['x-checksum']).toBe(sha256(text));
  });

  it('/close drops the connection without a response', async () => {
    await expect(request('http://app/close', { dispatcher })).rejects.toMatchObject({ code: 'UND_ERR_SOCKET' });
  });

  it('/die-mid-body sends headers and 10000 of the 100000 bytes announced, then closes', async () => {
    const res = await request('http://app/die-mid-body', { dispatcher });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe('100000');
    let received = 0;
    const read = (async () => {
      for await (const chunk of res.body as AsyncIterable<Buffer>) received += chunk.length;
    })();
    await expect(read).rejects.toMatchObject({ code: 'UND_ERR_SOCKET' });
    expect(received).toBe(10_000);
  });

  it.each([`/bytes/${GIB}`, '/delay/5000', '/stream?chunks=100&interval=50', '/sse?events=100&interval=50'])(
    'keeps serving, in the same process, after a client leaves %s early',
    async (target) => {
      const controller = new AbortController();
      const attempt = (async () => {
        const res = await request(`http://app${target}`, { dispatcher, signal: controller.signal });
        await res.body.text();
      })();
      setTimeout(() => controller.abort(), 100);
      await expect(attempt).rejects.toThrow();
      const res = await request('http://app/', { dispatcher });
      expect(res.headers['x-app-pid']).toBe(String(app.pid));
      await res.body.dump();
    },
  );

  it('keeps serving, in the same process, after a client leaves an upload early', async () => {
    const controller = new AbortController();
    // One chunk, then nothing: the app is mid-body when the client goes.
    const body = new Readable({ read() {} });
    body.push(expectedPattern(64 * 1024));
    const attempt = request('http://app/upload', {
      dispatcher,
      method: 'POST',
      body,
      headers: { 'content-length': String(GIB) },
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 100);
    await expect(attempt).rejects.toThrow();
    const res = await request('http://app/', { dispatcher });
    expect(res.headers['x-app-pid']).toBe(String(app.pid));
    await res.body.dump();
  });

  it('answers anything else with 404', async () => {
    const res = await request('http://app/nope', { dispatcher });
    expect(res.statusCode).toBe(404);
    expect(await res.body.text()).toBe('not found\n');
  });
});

describe('socket file and process behaviour (as Gunicorn)', () => {
  let tmp: TempDir;
  let socketPath: string;

  beforeEach(() => {
    tmp = makeTempDir();
    socketPath = tmp.path('app.sock');
  });

  afterEach(async () => {
    await closeAgents();
    await killAll();
    await cleanupSockets();
    tmp.remove();
  });

  async function hello(target = socketPath): Promise<number> {
    const res = await request('http://app/', { dispatcher: agentFor(target) });
    await res.body.dump();
    return res.statusCode;
  }

  it('removes a stale socket file left by a killed server and starts', async () => {
    await makeStaleSocket(socketPath);
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    expect(await probeSocket(socketPath)).toBe('ECONNREFUSED');
    await startApp(['--bind', `unix:${socketPath}`]);
    expect(await hello()).toBe(200);
  });

  it('refuses to start on a socket a live server holds: exit 1, one line, no stack', async () => {
    await holdSocket(socketPath);
    const result = await runAppToExit(['--bind', `unix:${socketPath}`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`[app] error: bind() to unix:${socketPath} failed (98: Address already in use)\n`);
    expect(await probeSocket(socketPath)).toBeUndefined();
  });

  it('never deletes a regular file at the socket path', async () => {
    fs.writeFileSync(socketPath, 'precious');
    const result = await runAppToExit(['--bind', `unix:${socketPath}`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`"${socketPath}" exists and is not a socket; refusing to replace it`);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(fs.readFileSync(socketPath, 'utf8')).toBe('precious');
  });

  it('reports a missing parent directory with the errno, nginx style', async () => {
    const missing = tmp.path('missing/app.sock');
    const result = await runAppToExit(['--bind', `unix:${missing}`]);
    expect(result.code).toBe(1);
    // ENOENT on Linux; some sandboxes answer EACCES for bind() in a missing directory.
    expect(result.stderr).toMatch(
      new RegExp(`^\\[app\\] error: bind\\(\\) to unix:${missing} failed \\((2: No such file or directory|13: Permission denied)\\)\\n$`),
    );
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('unlinks its socket and exits 0 on %s', async (signal) => {
    const app = await startApp(['--bind', `unix:${socketPath}`]);
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    app.child.kill(signal);
    expect(await app.exited).toEqual({ code: 0, signal: null });
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  it('on SIGTERM finishes an in-flight response, while new clients already find no socket', async () => {
    const app = await startApp(['--bind', `unix:${socketPath}`]);
    // The headers have arrived, so the app is mid-response when the signal comes.
    const res = await request('http://app/stream?chunks=5&interval=200', { dispatcher: agentFor(socketPath) });
    app.child.kill('SIGTERM');
    const deadline = performance.now() + 5000;
    while (fs.existsSync(socketPath) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await probeSocket(socketPath)).toBe('ENOENT');
    expect(await res.body.text()).toBe('chunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\n');
    expect(await app.exited).toEqual({ code: 0, signal: null });
  });

  it.each([
    [[], 0o777],
    [['--umask', '0'], 0o777],
    [['--umask', '077'], 0o700],
    [['--umask', '0o007'], 0o770],
    [['--umask', '077', '--workers', '2'], 0o700],
  ])('socket mode with %j is %o', async (args, mode) => {
    await startApp(['--bind', `unix:${socketPath}`, ...args]);
    expect(modeOf(socketPath)).toBe(mode);
  });

  it('rejects bad flags with exit 2', async () => {
    for (const args of [['--workers', '0'], ['--umask', '0999'], ['--bind', 'unix:'], ['--keep-alive', '-1'], ['--nope']]) {
      const result = await runAppToExit(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(/^\[app\] error: /);
    }
  });

  it('--help prints usage naming the Gunicorn flags and exits 0', async () => {
    const result = await runAppToExit(['--help']);
    expect(result.code).toBe(0);
    for (const flag of ['--bind', '--workers', '--keep-alive', '--umask']) expect(result.stdout).toContain(flag);
  });

  it('prints one listening line per --bind, and listens on TCP too', async () => {
    const port = await freePort();
    const app = await startApp(['--bind', `unix:${socketPath}`, '-b', `127.0.0.1:${port}`]);
    const lines = app.stderr().trim().split('\n');
    expect(lines).toEqual([
      `[app] listening at unix:${socketPath} (pid ${app.pid}, workers 1)`,
      `[app] listening at 127.0.0.1:${port} (pid ${app.pid}, workers 1)`,
    ]);
    const res = await request(`http://127.0.0.1:${port}/`);
    expect(await res.body.text()).toContain(`pid ${app.pid}`);
    expect(await hello()).toBe(200);
  });

  it.each(['1', '2'])('reports a TCP port in use nginx style, and removes the socket file it had made (%s workers)', async (workers) => {
    const holder = await holdSocket({ port: 0, host: '127.0.0.1' });
    const { port } = holder.address() as net.AddressInfo;
    const result = await runAppToExit(['--bind', `unix:${socketPath}`, '--bind', `127.0.0.1:${port}`, '--workers', workers]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`[app] error: bind() to 127.0.0.1:${port} failed (98: Address already in use)\n`);
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  describe('keep-alive (Gunicorn --keep-alive)', () => {
    it('closes an idle connection after --keep-alive seconds, not before', async () => {
        await startApp(['--bind', `unix:${socketPath}`, '--keep-alive', '1']);
      const { socket, response } = await rawRequest(socketPath, 'GET / HTTP/1.1\r\nHost: app\r\n\r\n');
      const answered = performance.now();
      expect(response).toMatch(/^Keep-Alive: timeout=1\r$/m);
      const closedAt = await waitForClose(socket);
      expect(closedAt - answered).toBeGreaterThanOrEqual(900);
      expect(closedAt - answered).toBeLessThan(2500);
    });

    it('--keep-alive 0 closes the connection after each response', async () => {
        await startApp(['--bind', `unix:${socketPath}`, '--keep-alive', '0']);
      const { socket, response } = await rawRequest(socketPath, 'GET / HTTP/1.1\r\nHost: app\r\n\r\n');
      const answered = performance.now();
      expect(response).toMatch(/^Connection: close\r$/m);
      expect((await waitForClose(socket)) - answered).toBeLessThan(500);
    });
  });

  describe('--workers (node:cluster, one socket shared by all workers)', () => {
    it('answers from every worker, none of them the primary', async () => {
        const app = await startApp(['--bind', `unix:${socketPath}`, '--workers', '2']);
      expect(app.stderr()).toContain(`(pid ${app.pid}, workers 2)`);
      const pids = new Set<string>();
      // reset: a new connection per request, which the primary hands out round-robin.
      for (let i = 0; i < 20 && pids.size < 2; i += 1) {
        const res = await request('http://app/', { dispatcher: agentFor(socketPath), reset: true });
        await res.body.dump();
        pids.add(String(res.headers['x-app-pid']));
      }
      expect(pids.size).toBe(2);
      expect(pids.has(String(app.pid))).toBe(false);
    });

    it('on SIGTERM stops the workers, unlinks the socket and exits 0', async () => {
        const app = await startApp(['--bind', `unix:${socketPath}`, '--workers', '2']);
      const workerPids = new Set<number>();
      for (let i = 0; i < 20 && workerPids.size < 2; i += 1) {
        const res = await request('http://app/', { dispatcher: agentFor(socketPath), reset: true });
        await res.body.dump();
        workerPids.add(Number(res.headers['x-app-pid']));
      }
      app.child.kill('SIGTERM');
      expect(await app.exited).toEqual({ code: 0, signal: null });
      expect(fs.existsSync(socketPath)).toBe(false);
      for (const pid of workerPids) expect(processExists(pid)).toBe(false);
    });

    it('checks the socket once, in the primary: stale is replaced, live is refused', async () => {
        await makeStaleSocket(socketPath);
      await startApp(['--bind', `unix:${socketPath}`, '--workers', '2']);
      expect(await hello()).toBe(200);
      const second = await runAppToExit(['--bind', `unix:${socketPath}`, '--workers', '2']);
      expect(second.code).toBe(1);
      expect(second.stderr).toBe(`[app] error: bind() to unix:${socketPath} failed (98: Address already in use)\n`);
      expect(await hello()).toBe(200);
    });

    it('replaces a worker that dies, as Gunicorn\'s arbiter does', async () => {
        await startApp(['--bind', `unix:${socketPath}`, '--workers', '2']);
      const res = await request('http://app/', { dispatcher: agentFor(socketPath), reset: true });
      await res.body.dump();
      const victim = Number(res.headers['x-app-pid']);
      process.kill(victim, 'SIGKILL');
      while (processExists(victim)) await new Promise((resolve) => setTimeout(resolve, 20));
      const pids = new Set<number>();
      const deadline = performance.now() + 5000;
      while (pids.size < 2 && performance.now() < deadline) {
        const again = await request('http://app/', { dispatcher: agentFor(socketPath), reset: true });
        await again.body.dump();
        pids.add(Number(again.headers['x-app-pid']));
      }
      expect(pids.size).toBe(2);
      expect(pids.has(victim)).toBe(false);
    });
  });
});
