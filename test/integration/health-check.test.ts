import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { Socket } from 'node:net';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { stackLines } from '../helpers/cli.js';
import { useProxyFixture } from '../helpers/fixture.js';
import { runProxy } from '../helpers/proxy-process.js';
import { freePort } from '../helpers/temp.js';
import type { SeenRequest } from '../helpers/upstreams.js';
import { until } from '../helpers/wait.js';

/**
 * upstream.health_check (nginx Plus `health_check`, HAProxy `check`): every server is sent
 * `GET uri` in the background; `fails` failed checks in a row take it out of rotation,
 * `passes` passed ones bring it back.
 */
describe('active health checks', () => {
  const fx = useProxyFixture();

  /** What the app's /health does: answer a status, never answer, or wait for the test to answer (nextProbe). */
  type HealthMode = number | 'hang' | 'step';

  interface CheckedApp {
    /** The server line address: "unix:/…/a.sock" or "127.0.0.1:PORT". */
    readonly address: string;
    health: HealthMode;
    /** Every request seen, checks included, across restarts. */
    readonly requests: SeenRequest[];
    probes(): SeenRequest[];
    /** The URLs of the requests that were not checks. */
    clientUrls(): string[];
    /** The connection each request came on, in the order of `requests`. */
    connectionOf(index: number): Socket;
    /** Connections open now. */
    open(): number;
    /** In 'step' mode: waits for the next check to arrive and returns its answer. */
    nextProbe(): Promise<(status: number) => void>;
    /** Closes the listener and every connection (a unix socket file is removed, as Gunicorn does). */
    stop(): Promise<void>;
    start(): Promise<void>;
  }

  /** A real HTTP server on a unix socket in the test's temp dir, or on a TCP port. */
  async function checkedApp(name: string, kind: 'unix' | 'tcp' = 'unix', health: HealthMode = 200): Promise<CheckedApp> {
    const requests: SeenRequest[] = [];
    const sockets = new Set<Socket>();
    const connections: Socket[] = [];
    const pending: ((status: number) => void)[] = [];
    const server = http.createServer((req, res) => {
      requests.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0) });
      connections.push(req.socket);
      if (req.url !== '/health') {
        res.end(`ok ${name}`);
        return;
      }
      if (app.health === 'hang') return;
      if (app.health === 'step') {
        pending.push((status) => res.writeHead(status).end(`health ${status}`));
        return;
      }
      res.writeHead(app.health).end(`health ${app.health}`);
    });
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    const path = fx.tmp.path(`${name}.sock`);
    const port = kind === 'tcp' ? await freePort() : 0;
    const app: CheckedApp = {
      address: kind === 'unix' ? `unix:${path}` : `127.0.0.1:${port}`,
      health,
      requests,
      probes: () => requests.filter((r) => r.url === '/health'),
      clientUrls: () => requests.filter((r) => r.url !== '/health').map((r) => r.url),
      connectionOf: (index) => connections[index]!,
      open: () => sockets.size,
      nextProbe: async () => {
        await until(() => pending.length > 0, 10_000, `a health check to reach ${name}`);
        return pending.shift()!;
      },
      stop: async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
      start: () =>
        new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          const listening = () => {
            server.off('error', reject);
            resolve();
          };
          if (kind === 'unix') server.listen(path, listening);
          else server.listen(port, '127.0.0.1', listening);
        }),
    };
    await app.start();
    fx.onCleanup(async () => {
      if (server.listening) await app.stop();
    });
    return app;
  }

  const get = async (path = '/') => {
    const res = await request(`${fx.proxy!.url}${path}`);
    return { status: res.statusCode, text: await res.body.text() };
  };

  const checkConfig = (lines: string) => `  health_check:\n${lines}`;
  const msgs = () => fx.proxy!.errors().map((line) => String(line.msg));
  const changes = () => msgs().filter((msg) => /^peer is (un)?healthy while/.test(msg));
  const waitForMsg = (prefix: string) => fx.proxy!.waitForLog((line) => String(line.msg).startsWith(prefix), 10_000);

  it.each(['unix', 'tcp'] as const)(
    '%s: a server whose socket disappears is out before any client request is sent to it, and back once it returns',
    async (kind) => {
      const a = await checkedApp('a', kind);
      const b = await checkedApp('b');
      await fx.start([a.address, b.address], checkConfig('    uri: /health\n    interval: 100ms\n    timeout: 2s\n'));
      const where = `health check "/health" of peer ${a.address} in upstream "backend"`;
      await until(() => a.probes().length >= 1 && b.probes().length >= 1, 5_000, 'both servers to be checked');
      expect([await get('/1'), await get('/2')].map((r) => r.text).sort()).toEqual(['ok a', 'ok b']);

      await a.stop();
      const down = await waitForMsg('peer is unhealthy');
      expect(down).toMatchObject({ level: 40, msg: `peer is unhealthy while connecting to upstream, ${where}`, upstream_addr: a.address });
      const reason = kind === 'unix' ? `connect() to ${a.address} failed (2: No such file or directory)` : `connect() to ${a.address} failed (111: Connection refused)`;
      expect(msgs()).toContain(`${reason} while connecting to upstream, ${where}`);

      const accessBefore = fx.proxy!.access().length;
      const results = [];
      for (let i = 0; i < 6; i++) results.push(await get(`/while-down-${i}`));
      expect(results.map((r) => r.text)).toEqual(Array(6).fill('ok b'));
      await until(() => fx.proxy!.access().length === accessBefore + 6, 5_000, 'the access-log lines');
      // Every request went straight to b: a was never tried, so nothing was retried and no
      // client request logged a connect() failure.
      expect(fx.proxy!.access().slice(accessBefore).map((line) => line.upstream_addr)).toEqual(Array(6).fill(b.address));
      expect(msgs().filter((msg) => msg.includes('client:') && msg.includes(a.address))).toEqual([]);

      await a.start();
      expect(await waitForMsg('peer is healthy')).toMatchObject({
        level: 30,
        nginx_level: 'notice',
        msg: `peer is healthy while checking status code, ${where}`,
      });
      for (let i = 0; i < 4; i++) await get(`/back-${i}`);
      expect(a.clientUrls().filter((url) => url.startsWith('/back-'))).toHaveLength(2);
      expect(changes()).toHaveLength(2);
    },
  );

  it('fails=3, passes=2: out only after three failed checks in a row, back only after two passed in a row', async () => {
    const a = await checkedApp('a', 'unix', 'step');
    const b = await checkedApp('b');
    await fx.start(
      [a.address, b.address],
      `${checkConfig('    uri: /health\n    interval: 20ms\n    timeout: 10s\n    fails: 3\n    passes: 2\n')}log:\n  level: debug\n`,
    );
    /** Answers the check waiting at a, and waits for the next one: by then the proxy has counted the answer. */
    const answerNext = async (status: number): Promise<string[]> => {
      const answer = await a.nextProbe();
      const seen = a.probes().length;
      answer(status);
      await until(() => a.probes().length > seen, 10_000, 'the next check');
      return changes();
    };
    expect(await answerNext(503)).toEqual([]);
    expect(await answerNext(503)).toEqual([]);
    expect(await answerNext(200)).toEqual([]); // two failures, then a pass: the count starts again
    expect(await answerNext(503)).toEqual([]);
    expect(await answerNext(503)).toEqual([]);
    const down = 'peer is unhealthy while checking status code';
    expect((await answerNext(503)).map((msg) => msg.split(',')[0])).toEqual([down]);
    // Out of rotation: clients go to b.
    expect([(await get('/x')).text, (await get('/y')).text]).toEqual(['ok b', 'ok b']);
    expect(await answerNext(200)).toHaveLength(1);
    expect(await answerNext(503)).toHaveLength(1); // one pass, then a failure: the count starts again
    expect(await answerNext(200)).toHaveLength(1);
    const up = 'peer is healthy while checking status code';
    expect((await answerNext(200)).map((msg) => msg.split(',')[0])).toEqual([down, up]);
    expect(a.clientUrls()).toEqual([]);
    // Each failed check while a was in rotation was logged with its reason; once out, at debug.
    const failures = fx.proxy!.errors().filter((line) => String(line.msg).startsWith('upstream sent status 503'));
    expect(failures.map((line) => line.level)).toEqual([50, 50, 50, 50, 50, 20]);
  });

  it('status: a 301 fails "200-299"; a 204 passes', async () => {
    const a = await checkedApp('a', 'unix', 301);
    const b = await checkedApp('b');
    await fx.start([a.address, b.address], checkConfig('    uri: /health\n    interval: 50ms\n    status: 200-299\n'));
    await waitForMsg('peer is unhealthy while checking status code');
    expect(msgs()).toContain(
      `upstream sent status 301, which does not match "200-299" while checking status code, health check "/health" of peer ${a.address} in upstream "backend"`,
    );
    a.health = 204;
    await waitForMsg('peer is healthy');
    expect(changes()).toHaveLength(2);
  });

  it('timeout: an app that never answers /health is out ("upstream timed out"), and each timed-out check\'s connection is closed', async () => {
    const a = await checkedApp('a', 'unix', 'hang');
    const b = await checkedApp('b');
    await fx.start([a.address, b.address], checkConfig('    uri: /health\n    interval: 50ms\n    timeout: 300ms\n'));
    const where = `health check "/health" of peer ${a.address} in upstream "backend"`;
    expect((await waitForMsg('peer is unhealthy')).msg).toBe(`peer is unhealthy while reading response header from upstream, ${where}`);
    expect(msgs()).toContain(`upstream timed out (110: Connection timed out) while reading response header from upstream, ${where}`);
    await until(() => a.probes().length >= 4, 10_000, 'four checks');
    // One connection per check, and the proxy closed each one that timed out.
    const connections = [0, 1, 2].map((index) => a.connectionOf(index));
    expect(new Set(connections).size).toBe(3);
    expect(connections.every((socket) => socket.destroyed)).toBe(true);
    expect(a.open()).toBeLessThanOrEqual(1);
    expect((await get('/')).text).toBe('ok b');
  });

  it('the check: GET uri with the Host nginx sends ($proxy_host, the upstream name), Connection: close, a new connection each time, closed after it', async () => {
    const a = await checkedApp('a', 'tcp');
    await fx.start([a.address], `  name: app.internal\n${checkConfig('    uri: /health?deep=1\n    interval: 30ms\n')}`);
    // The check's URI is as configured; the app sees it whole.
    await until(() => a.requests.length >= 8, 10_000, 'eight checks');
    const probes = a.requests.slice(0, 8);
    expect(probes.map((p) => [p.method, p.url, p.headers.host, p.headers.connection])).toEqual(
      Array(8).fill(['GET', '/health?deep=1', 'app.internal', 'close']),
    );
    const connections = probes.map((_, index) => a.connectionOf(index));
    expect(new Set(connections).size).toBe(8);
    await until(() => connections.every((socket) => socket.destroyed), 5_000, 'the connections of the checks to close');
  });

  it('a literal set_header Host is the checks\' Host too', async () => {
    const a = await checkedApp('a');
    await fx.start([a.address], `${checkConfig('    interval: 1s\n')}proxy:\n  set_header:\n    Host: www.example.com\n`);
    await until(() => a.requests.length >= 1, 5_000, 'a check');
    expect([a.requests[0]!.url, a.requests[0]!.headers.host]).toEqual(['/', 'www.example.com']);
  });

  it('mandatory: a server is out until its first check passes', async () => {
    const a = await checkedApp('a', 'unix', 'step');
    // One check in this test: the next would come after the interval.
    await fx.start([a.address], checkConfig('    uri: /health\n    interval: 1m\n    timeout: 10s\n    mandatory: on\n'));
    const answer = await a.nextProbe();
    // "checking": no live upstream, so 502 without connecting, even for a single server.
    const early = await get('/early');
    expect(early.status).toBe(502);
    expect(early.text).toContain('no upstream server is available');
    answer(200);
    await waitForMsg('peer is healthy');
    expect(await get('/later')).toEqual({ status: 200, text: 'ok a' });
    expect(a.clientUrls()).toEqual(['/later']);
  });

  it('stops when the proxy stops, a check under way included: the proxy exits at once and closes its connection', async () => {
    const a = await checkedApp('a', 'unix', 'hang');
    const proxy = await fx.start([a.address], checkConfig('    uri: /health\n    interval: 50ms\n    timeout: 30s\n'));
    await until(() => a.probes().length === 1 && a.open() === 1, 5_000, 'a check to be under way');
    const started = Date.now();
    expect(await proxy.stop()).toBe(0);
    // The graceful stop would wait 10 s for anything still open; the check did not hold it.
    expect(Date.now() - started).toBeLessThan(5_000);
    await until(() => a.open() === 0, 5_000, 'the check\'s connection to close');
    expect(a.probes()).toHaveLength(1);
  });

  describe('a bad health_check: exit 2 with file:line:col, no stack trace', () => {
    const server = 'listen: 8080\nupstream:\n  servers:\n    - unix:/tmp/a.sock\n  health_check:\n';
    it.each([
      [
        'a bad status range',
        '    status: 500-200\n',
        '6:13: invalid status range "500-200" (the first code is larger than the second) in upstream.health_check.status (expected status codes or ranges like 200-399, "200 204" or "! 500-599")',
      ],
      [
        'interval 0',
        '    interval: 0\n',
        '6:15: upstream.health_check.interval must be a duration like 60s, 1m30s or 500ms (more than 0, at most 24d20h), got "0"',
      ],
      ['an unknown key', '    passess: 2\n', '6:5: unknown key "passess" in upstream.health_check (did you mean "passes"?)'],
    ])('%s', async (_name, lines, message) => {
      const file = fx.tmp.path('bad.yaml');
      writeFileSync(file, `${server}${lines}`);
      const result = await runProxy(['-t', '--config', file]);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(`sockproxy: [emerg] ${file}:${message}\nsockproxy: configuration file ${file} test failed\n`);
      expect(stackLines(result.stderr)).toEqual([]);
    });
  });
});
