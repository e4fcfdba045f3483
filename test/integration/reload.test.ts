import { existsSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { Agent, request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cleanupSockets, holdSocket, probeSocket } from '../helpers/app-sockets.js';
import { waitForRefused } from '../helpers/cli.js';
import { killAll, type Running } from '../helpers/node-process.js';
import { startProxyWithConfig } from '../helpers/proxy-process.js';
import { freePort, makeTempDir, type TempDir } from '../helpers/temp.js';
import { httpUpstream, okFrom, type TestUpstream } from '../helpers/upstreams.js';
import { until } from '../helpers/wait.js';

/** SIGHUP: the configuration file is read again and put in force without losing a request. */
describe('reload on SIGHUP', () => {
  let tmp: TempDir;
  const agents: Agent[] = [];
  const closables: { close(): Promise<void> }[] = [];

  beforeEach(() => {
    tmp = makeTempDir();
  });

  afterEach(async () => {
    await killAll();
    await Promise.all(agents.splice(0).map((agent) => agent.destroy()));
    await Promise.all(closables.splice(0).map((closable) => closable.close()));
    await cleanupSockets();
    tmp.remove();
  });

  async function upstream(name: string): Promise<TestUpstream> {
    const started = await httpUpstream(tmp.path(`${name}.sock`), okFrom(name));
    closables.push(started);
    return started;
  }

  function newAgent(options: ConstructorParameters<typeof Agent>[0] = {}): Agent {
    const agent = new Agent(options);
    agents.push(agent);
    return agent;
  }

  async function get(url: string, agent?: Agent): Promise<{ status: number; text: string }> {
    const res = await request(url, agent === undefined ? {} : { dispatcher: agent });
    return { status: res.statusCode, text: await res.body.text() };
  }

  /** Lines that say a reload is done ("reconfigured: …") and that one failed. */
  const reconfigured = (proxy: Running) => proxy.errorLog().filter((line) => String(line.msg).startsWith('reconfigured: ')).length;
  const failedReloads = (proxy: Running) => proxy.errorLog().filter((line) => String(line.msg).startsWith('reconfiguring failed')).length;

  /** Rewrites `file` with `yaml`, sends SIGHUP, and waits until the proxy says the reload is done. */
  async function reload(proxy: Running, file: string, yaml: string): Promise<void> {
    const before = reconfigured(proxy);
    writeFileSync(file, yaml);
    proxy.child.kill('SIGHUP');
    await proxy.waitFor('the reload to finish', () => (reconfigured(proxy) > before ? true : undefined));
  }

  /** Rewrites `file` with `yaml`, sends SIGHUP, and waits until the proxy says the reload failed. */
  async function failedReload(proxy: Running, file: string, yaml: string): Promise<void> {
    const before = failedReloads(proxy);
    writeFileSync(file, yaml);
    proxy.child.kill('SIGHUP');
    await proxy.waitFor('the reload to fail', () => (failedReloads(proxy) > before ? true : undefined));
  }

  it('20 reloads under steady load, alternating servers and a listen address: no failed request, no connection error', async () => {
    const [a, b, c] = [await upstream('a'), await upstream('b'), await upstream('c')];
    const port = await freePort();
    const extraPort = await freePort();
    const extraSocket = tmp.path('extra.sock');
    // One configuration fronts a and b and also listens on a unix socket; the other fronts
    // b and c and also listens on a second TCP port.
    const configs = [
      `listen:\n  - 127.0.0.1:${port}\n  - unix:${extraSocket}\nupstream:\n  servers:\n    - ${a.address}\n    - ${b.address}\n`,
      `listen:\n  - 127.0.0.1:${port}\n  - 127.0.0.1:${extraPort}\nupstream:\n  servers:\n    - ${b.address}\n    - ${c.address}\n`,
    ];
    const file = tmp.path('proxy.yaml');
    writeFileSync(file, configs[0]!);
    const proxy = await startProxyWithConfig(file);

    // Eight clients with keep-alive connections, each sending one request after another.
    const agent = newAgent({ connections: 8, keepAliveTimeout: 60_000 });
    let running = true;
    let ok = 0;
    const failures: string[] = [];
    const client = async (id: number): Promise<void> => {
      for (let n = 0; running; n++) {
        try {
          const res = await get(`http://127.0.0.1:${port}/c${id}/${n}`, agent);
          if (res.status === 200) ok++;
          else failures.push(`${res.status} ${res.text}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const load = Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(client));

    const seen = () => [a.requests.length, b.requests.length, c.requests.length];
    for (let round = 1; round <= 20; round++) {
      const fronts = round % 2 === 1 ? 'b and c' : 'a and b';
      await reload(proxy, file, configs[round % 2]!);
      // Requests the proxy sent just before the swap may still be arriving at the old servers.
      await new Promise((resolve) => setTimeout(resolve, 150));
      const before = seen();
      await new Promise((resolve) => setTimeout(resolve, 250));
      const after = seen();
      const grew = after.map((count, index) => count > before[index]!);
      // Under the new configuration only its servers get requests, and both of them do.
      expect(grew, `round ${round}: requests reach only ${fronts}`).toEqual(round % 2 === 1 ? [false, true, true] : [true, true, false]);
      // The listen address that comes and goes.
      if (round % 2 === 1) {
        expect(existsSync(extraSocket), `round ${round}: the unix listen socket is removed`).toBe(false);
        expect(await get(`http://127.0.0.1:${extraPort}/extra`)).toMatchObject({ status: 200 });
      } else {
        await waitForRefused(extraPort);
        const viaUnix = newAgent({ connect: { socketPath: extraSocket } });
        expect(await get('http://localhost/extra', viaUnix)).toMatchObject({ status: 200 });
      }
    }
    running = false;
    await load;
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(200);
    expect(reconfigured(proxy)).toBe(20);
    expect(proxy.alive()).toBe(true);
  });

  it('an invalid file is logged as -t words it, at error level, and the running configuration goes on serving', async () => {
    const [a, b] = [await upstream('a'), await upstream('b')];
    const port = await freePort();
    const file = tmp.path('proxy.yaml');
    writeFileSync(file, `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - ${a.address}\n`);
    const proxy = await startProxyWithConfig(file);

    await failedReload(proxy, file, `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - ${b.address}\n    - ${b.address} weight=0\n`);
    const line = proxy.errorLog().find((l) => String(l.msg).startsWith('[emerg]'))!;
    expect(line.msg).toBe(`[emerg] ${file}:5:7: invalid parameter "weight=0" in upstream.servers[1]`);
    expect(line.level).toBe(50);
    expect(proxy.stderr()).not.toMatch(/^\s+at /m);
    for (let i = 0; i < 3; i++) expect(await get(`http://127.0.0.1:${port}/still`)).toEqual({ status: 200, text: 'ok a\n' });
    expect(b.requests).toHaveLength(0);

    // Fixed, the same file reloads.
    await reload(proxy, file, `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - ${b.address}\n`);
    expect(await get(`http://127.0.0.1:${port}/now`)).toEqual({ status: 200, text: 'ok b\n' });
  });

  it('a key read at start only (log.access) is named in a warning; the rest of the file takes effect', async () => {
    const [a, b] = [await upstream('a'), await upstream('b')];
    const port = await freePort();
    const file = tmp.path('proxy.yaml');
    writeFileSync(file, `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - ${a.address}\n`);
    const proxy = await startProxyWithConfig(file);
    await reload(proxy, file, `listen: 127.0.0.1:${port}\nlog:\n  access: ${tmp.path('access.log')}\nupstream:\n  servers:\n    - ${b.address}\n`);
    const warning = proxy.errorLog().find((l) => l.key === 'log.access')!;
    expect(warning).toMatchObject({ level: 40, msg: 'log.access cannot change on reload: the new value takes effect at restart' });
    expect(await get(`http://127.0.0.1:${port}/`)).toEqual({ status: 200, text: 'ok b\n' });
    expect(existsSync(tmp.path('access.log'))).toBe(false);
    await proxy.waitForAccess((l) => l.request_uri === '/');
    // Compared with what runs (the start's value), not with the last reload's: still named
    // while the file asks for another value, no longer once it asks for the running one.
    const warnings = () => proxy.errorLog().filter((l) => l.key === 'log.access').length;
    await reload(proxy, file, `listen: 127.0.0.1:${port}\nlog:\n  access: ${tmp.path('access.log')}\nupstream:\n  servers:\n    - ${a.address}\n`);
    expect(warnings()).toBe(2);
    await reload(proxy, file, `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - ${a.address}\n`);
    expect(warnings()).toBe(2);
  });

  it('an address that cannot be bound fails the reload as a start would, and changes nothing', async () => {
    const [a, b] = [await upstream('a'), await upstream('b')];
    const port = await freePort();
    const extraSocket = tmp.path('extra.sock');
    const busy = await holdSocket({ port: 0, host: '127.0.0.1' });
    const busyPort = (busy.address() as net.AddressInfo).port;
    const file = tmp.path('proxy.yaml');
    writeFileSync(file, `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - ${a.address}\n`);
    const proxy = await startProxyWithConfig(file);

    // The unix address is bound before the busy port fails: it must be closed again.
    await failedReload(
      proxy,
      file,
      `listen:\n  - 127.0.0.1:${port}\n  - unix:${extraSocket}\n  - 127.0.0.1:${busyPort}\nupstream:\n  servers:\n    - ${b.address}\n`,
    );
    expect(proxy.errorLog().some((l) => l.msg === `[emerg] bind() to 127.0.0.1:${busyPort} failed (98: Address already in use)`)).toBe(true);
    expect(existsSync(extraSocket)).toBe(false);
    expect(await get(`http://127.0.0.1:${port}/still`)).toEqual({ status: 200, text: 'ok a\n' });
    expect(b.requests).toHaveLength(0);
  });

  it('a server out by max_fails stays out across a reload (its weight changed), measured by what it sees', async () => {
    const failing = await httpUpstream(tmp.path('failing.sock'), okFrom('failing', 502));
    closables.push(failing);
    const good = await upstream('good');
    const port = await freePort();
    const file = tmp.path('proxy.yaml');
    const config = (weight: number, extra: string) =>
      `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - ${failing.address} weight=${weight} max_fails=1 fail_timeout=60s\n` +
      `    - ${good.address}\n${extra}proxy:\n  next_upstream: error timeout http_502\n`;
    writeFileSync(file, config(1, ''));
    const proxy = await startProxyWithConfig(file);

    // Round robin sends the first request to `failing`: 502, retried on `good`, and `failing` is out for 60 s.
    expect(await get(`http://127.0.0.1:${port}/first`)).toEqual({ status: 200, text: 'ok good\n' });
    expect(failing.requests).toHaveLength(1);
    await proxy.waitForLog((l) => String(l.msg).startsWith('upstream server temporarily disabled'));

    const third = await upstream('third');
    await reload(proxy, file, config(3, `    - ${third.address}\n`));
    for (let i = 0; i < 12; i++) expect((await get(`http://127.0.0.1:${port}/after/${i}`)).status).toBe(200);
    // Without its state it would be back in rotation at once (and fail again).
    expect(failing.requests).toHaveLength(1);
    expect(good.requests.length + third.requests.length).toBe(13);
    expect(third.requests.length).toBeGreaterThan(0);
  });

  it('a server the health checks took out stays out across a reload until `passes` checks pass', async () => {
    let healthStatus = 503;
    const checked = await httpUpstream(tmp.path('checked.sock'), (req, res, seen) => {
      if (req.url === '/health') {
        req.resume();
        res.writeHead(healthStatus).end();
        return;
      }
      okFrom('checked')(req, res, seen);
    });
    closables.push(checked);
    const other = await upstream('other');
    const port = await freePort();
    const file = tmp.path('proxy.yaml');
    const config = (name: string) =>
      `listen: 127.0.0.1:${port}\nupstream:\n  name: ${name}\n  servers:\n    - ${checked.address}\n    - ${other.address}\n` +
      '  health_check:\n    uri: /health\n    interval: 1h\n    passes: 3\n';
    writeFileSync(file, config('app'));
    const proxy = await startProxyWithConfig(file);
    await proxy.waitForLog((l) => String(l.msg).startsWith('peer is unhealthy') && l.upstream_addr === checked.address);

    healthStatus = 200;
    const checks = () => checked.requests.filter((r) => r.url === '/health').length;
    const checksBefore = checks();
    await reload(proxy, file, config('app.example'));
    // The reload checks every server at once: one pass of the three needed.
    await until(() => checks() > checksBefore, 5_000, 'the check after the reload');
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (let i = 0; i < 6; i++) expect(await get(`http://127.0.0.1:${port}/r${i}`)).toEqual({ status: 200, text: 'ok other\n' });
    expect(checked.requests.filter((r) => r.url !== '/health')).toHaveLength(0);
  });

  it('max_conns and the queue across a reload: requests of both configurations wait for the same slot, none is lost', async () => {
    let inFlight = 0;
    let most = 0;
    const waiting: (() => void)[] = [];
    const busy = await httpUpstream(tmp.path('busy.sock'), (req, res) => {
      req.resume();
      inFlight++;
      most = Math.max(most, inFlight);
      waiting.push(() => {
        inFlight--;
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok ${req.url}\n`);
      });
    });
    closables.push(busy);
    const port = await freePort();
    const file = tmp.path('proxy.yaml');
    const config = (size: number) =>
      `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - ${busy.address} max_conns=1\n  queue:\n    size: ${size}\n    timeout: 30s\n`;
    writeFileSync(file, config(10));
    const proxy = await startProxyWithConfig(file);

    const first = get(`http://127.0.0.1:${port}/first`);
    await until(() => waiting.length === 1, 5_000, 'the first request at the app');
    const queuedBefore = get(`http://127.0.0.1:${port}/queued-before`);
    // Time for it to reach the proxy and enter the queue (nothing at the app shows it).
    await new Promise((resolve) => setTimeout(resolve, 200));
    await reload(proxy, file, config(5));
    // The server's request in flight counts against max_conns under the new configuration too.
    const queuedAfter = get(`http://127.0.0.1:${port}/queued-after`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(busy.requests.map((r) => r.url)).toEqual(['/first']);
    while (busy.requests.length < 3 || waiting.length > 0) {
      await until(() => waiting.length > 0, 5_000, 'the next request at the app');
      waiting.shift()!();
    }
    expect(await Promise.all([first, queuedBefore, queuedAfter])).toEqual([
      { status: 200, text: 'ok /first\n' },
      { status: 200, text: 'ok /queued-before\n' },
      { status: 200, text: 'ok /queued-after\n' },
    ]);
    expect(most).toBe(1);
  });

  it('a removed server: its idle connection closes at once, the one carrying a request after the response', async () => {
    const open = new Set<net.Socket>();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const server = http.createServer((req, res) => {
      req.resume();
      const answer = () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok ${req.url}\n`);
      if (req.url === '/slow') void released.then(answer);
      else answer();
    });
    server.on('connection', (socket: net.Socket) => {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
    });
    const removedPath = tmp.path('removed.sock');
    server.listen(removedPath);
    await new Promise((resolve) => server.once('listening', resolve));
    closables.push({ close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))) });
    const kept = await upstream('kept');
    const port = await freePort();
    const file = tmp.path('proxy.yaml');
    // Idle connections are kept for a minute: only the reload can close them within the test.
    const keep = '  keepalive_timeout: 60s\n';
    writeFileSync(file, `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - unix:${removedPath}\n${keep}`);
    const proxy = await startProxyWithConfig(file);

    // One connection carrying a request that waits, one left idle in the pool.
    const slow = get(`http://127.0.0.1:${port}/slow`);
    await until(() => open.size === 1, 5_000, 'the slow request to reach the server');
    expect(await get(`http://127.0.0.1:${port}/fast`)).toEqual({ status: 200, text: 'ok /fast\n' });
    expect(open.size).toBe(2);

    await reload(proxy, file, `listen: 127.0.0.1:${port}\nupstream:\n  servers:\n    - ${kept.address}\n${keep}`);
    await until(() => open.size === 1, 2_000, 'the idle connection to close');
    expect(await get(`http://127.0.0.1:${port}/new`)).toEqual({ status: 200, text: 'ok kept\n' });

    release();
    // The request that started before the reload finishes on its server.
    expect(await slow).toEqual({ status: 200, text: 'ok /slow\n' });
    await until(() => open.size === 0, 2_000, 'the drained connection to close');
  });

  it('stream servers reload too: a new listen address opens, a removed one closes, an open session runs on', async () => {
    const echo = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
    const echoPath = tmp.path('echo.sock');
    echo.listen(echoPath);
    await new Promise((resolve) => echo.once('listening', resolve));
    const echoSockets = new Set<net.Socket>();
    echo.on('connection', (socket: net.Socket) => echoSockets.add(socket));
    closables.push({
      close: () => new Promise<void>((resolve) => (echoSockets.forEach((s) => s.destroy()), echo.close(() => resolve()))),
    });
    const [first, second] = [await freePort(), await freePort()];
    const file = tmp.path('proxy.yaml');
    const config = (port: number) => `stream:\n  - listen: 127.0.0.1:${port}\n    upstream:\n      servers: [unix:${echoPath}]\n`;
    writeFileSync(file, config(first));
    const proxy = await startProxyWithConfig(file);

    const session = net.connect(first, '127.0.0.1');
    closables.push({ close: async () => void session.destroy() });
    let echoed = '';
    session.setEncoding('latin1').on('data', (chunk: string) => (echoed += chunk));
    session.write('before ');
    await until(() => echoed === 'before ', 5_000, 'the first echo');

    await reload(proxy, file, config(second));
    await waitForRefused(first);
    expect(await probeSocket(second)).toBeUndefined();
    session.write('after');
    await until(() => echoed === 'before after', 5_000, 'the open session to echo after the reload');
  });
});
