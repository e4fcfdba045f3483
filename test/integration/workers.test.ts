import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { Agent, request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sample, scrapeMetrics, scrapeStatus } from '../helpers/admin.js';
import { stackLines } from '../helpers/cli.js';
import { killAll, parseJsonLines, type Running } from '../helpers/node-process.js';
import { runProxy, startProxyWithConfig } from '../helpers/proxy-process.js';
import { freePort, makeTempDir, type TempDir } from '../helpers/temp.js';
import { httpUpstream, okFrom, type Respond, type TestUpstream } from '../helpers/upstreams.js';
import { pollUntil } from '../helpers/wait.js';

/** workers: N (nginx worker_processes): a primary, N workers sharing the listeners. */
describe('workers: 2', () => {
  let tmp: TempDir;
  const upstreams: TestUpstream[] = [];
  const agents: Agent[] = [];

  beforeEach(() => {
    tmp = makeTempDir();
  });

  afterEach(async () => {
    await killAll();
    await Promise.all(agents.splice(0).map((agent) => agent.close()));
    await Promise.all(upstreams.splice(0).map((upstream) => upstream.close()));
    tmp.remove();
  });

  interface Started {
    readonly proxy: Running;
    readonly url: string;
    readonly socketPath: string;
    readonly admin: { url: string };
    readonly file: string;
  }

  async function start(app: TestUpstream, extra = ''): Promise<Started> {
    const port = await freePort();
    const adminPort = await freePort();
    const socketPath = tmp.path('proxy.sock');
    const file = tmp.path('proxy.yaml');
    writeFileSync(
      file,
      `listen: [127.0.0.1:${port}, unix:${socketPath}]\nworkers: 2\nadmin:\n  listen: ${adminPort}\nupstream:\n  servers: [${app.address}]\n${extra}`,
    );
    const proxy = await startProxyWithConfig(file);
    return { proxy, url: `http://127.0.0.1:${port}`, socketPath, admin: { url: `http://127.0.0.1:${adminPort}` }, file };
  }

  async function upstream(name: string, respond: Respond = okFrom(name)): Promise<TestUpstream> {
    const up = await httpUpstream(tmp.path(`${name}.sock`), respond);
    upstreams.push(up);
    return up;
  }

  /**
   * One request on a connection of its own (reset: Connection: close): the primary hands
   * out connections, not requests, to the workers in turn.
   */
  async function get(url: string, path = '/', dispatcher?: Agent): Promise<{ status: number; text: string }> {
    const res = await request(`${url}${path}`, { reset: true, ...(dispatcher === undefined ? {} : { dispatcher }) });
    return { status: res.statusCode, text: await res.body.text() };
  }

  function unixAgent(socketPath: string): Agent {
    const agent = new Agent({ connect: { socketPath } });
    agents.push(agent);
    return agent;
  }

  function workerPids(proxy: Running): number[] {
    return proxy
      .errorLog()
      .map((line) => /^start worker process (\d+)$/.exec(String(line.msg))?.[1])
      .filter((pid): pid is string => pid !== undefined)
      .map(Number);
  }

  function alive(pid: number): boolean {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  it('serves on TCP and on a unix listen, both workers taking connections; /status and /metrics sum them', async () => {
    const app = await upstream('a');
    const { proxy, url, socketPath, admin } = await start(app);
    const pids = workerPids(proxy);
    expect(pids).toHaveLength(2);
    expect(pids).not.toContain(proxy.pid);
    const viaUnix = unixAgent(socketPath);
    for (let i = 0; i < 10; i++) {
      expect(await get(url)).toEqual({ status: 200, text: 'ok a\n' });
      expect(await get('http://localhost', '/', viaUnix)).toEqual({ status: 200, text: 'ok a\n' });
    }
    expect(app.requests).toHaveLength(20);

    const status = await scrapeStatus(admin);
    expect(status.pid).toBe(proxy.pid);
    expect(status.workers.map((w) => w.pid).sort()).toEqual([...pids].sort());
    // Round robin over the workers: each served some of the 20.
    for (const worker of status.workers) expect(worker.requests).toBeGreaterThan(0);
    expect(status.workers.reduce((sum, w) => sum + w.requests, 0)).toBe(20);
    expect(status.totals.requests).toBe(20);
    expect(status.upstreams[0]!.servers[0]).toMatchObject({ address: app.address, state: 'up', requests: 20, failures: 0 });
    expect(status.workers_not_answering).toEqual([]);

    const text = await scrapeMetrics(admin);
    expect(sample(text, 'sockproxy_requests_total', { status_class: '2xx', upstream: app.address })).toBe(20);
    expect(sample(text, 'sockproxy_upstream_response_seconds_count', { upstream: app.address })).toBe(20);
    // prom-client's rules for the default metrics across processes: the Node version once, CPU summed.
    expect(text.match(/^nodejs_version_info\{/gm)).toHaveLength(1);
    expect(sample(text, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  });

  it('kill -9 a worker: logged in nginx words, started again, requests keep being served', async () => {
    const app = await upstream('a');
    const { proxy, url, socketPath, admin } = await start(app);
    const [victim, survivor] = workerPids(proxy) as [number, number];
    process.kill(victim, 'SIGKILL');
    await proxy.waitForLog((line) => line.msg === `worker process ${victim} exited on signal 9`);
    const replacement = await proxy.waitFor('a new worker', () => workerPids(proxy).find((pid) => pid !== victim && pid !== survivor));
    expect(proxy.errorLog().find((line) => line.msg === `worker process ${victim} exited on signal 9`)).toMatchObject({
      level: 50,
      nginx_level: 'alert',
      signal: 'SIGKILL',
    });
    // Meanwhile and after, every request is served, on either listener.
    const viaUnix = unixAgent(socketPath);
    for (let i = 0; i < 6; i++) {
      expect((await get(url)).status).toBe(200);
      expect((await get('http://localhost', '/', viaUnix)).status).toBe(200);
    }
    await pollUntil(
      'the new worker in /status',
      async () => {
        const status = await scrapeStatus(admin);
        const pids = status.workers.map((w) => w.pid).sort();
        return pids.join() === [survivor, replacement].sort().join() ? true : undefined;
      },
      5_000,
    );
    expect(alive(victim)).toBe(false);
    expect(sample(await scrapeMetrics(admin), 'sockproxy_worker_restarts_total')).toBe(1);
  });

  it('SIGTERM to the primary: the request in flight completes, every process exits, exit code 0, socket file removed', async () => {
    const held: (() => void)[] = [];
    const app = await upstream('a', (req, res) => {
      const answer = (): void => void res.end('slow done\n');
      if (req.url === '/slow') held.push(answer);
      else answer();
    });
    const { proxy, url, socketPath } = await start(app);
    const pids = workerPids(proxy);
    expect(existsSync(socketPath)).toBe(true);
    const slow = get(url, '/slow');
    await pollUntil('the slow request at the app', () => (held.length === 1 ? true : undefined), 5_000);
    proxy.child.kill('SIGTERM');
    await proxy.waitForLog((line) => line.msg === 'SIGTERM received, gracefully shutting down');
    // The listeners close at once; the request in flight is still answered.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(proxy.alive()).toBe(true);
    held.splice(0).forEach((answer) => answer());
    expect(await slow).toEqual({ status: 200, text: 'slow done\n' });
    const exit = await proxy.waitForExit(15_000);
    expect(exit).toEqual({ code: 0, signal: null });
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(existsSync(socketPath)).toBe(false);
    expect(stackLines(proxy.stderr())).toEqual([]);
  });

  it('SIGHUP with a broken file: one [emerg] line from the primary, nothing reaches the workers, they keep serving', async () => {
    const app = await upstream('a');
    const { proxy, url, admin, file } = await start(app);
    const pids = workerPids(proxy);
    writeFileSync(file, 'listen: 8080\nupstream:\n  servers: [unix:/tmp/a.sock weight=0]\n');
    proxy.child.kill('SIGHUP');
    const line = await proxy.waitForLog((l) => String(l.msg).includes('the configuration is not reloaded'));
    expect(line).toMatchObject({ nginx_level: 'emerg', pid: proxy.pid });
    expect(line.msg).toBe(`${file}:3:13: invalid parameter "weight=0" in upstream.servers[0]; the configuration is not reloaded`);
    expect((await get(url)).status).toBe(200);
    expect(proxy.errorLog().filter((l) => String(l.msg).includes('invalid parameter'))).toHaveLength(1);
    for (const pid of pids) expect(alive(pid)).toBe(true);
    expect(workerPids(proxy)).toEqual(pids);
    const text = await scrapeMetrics(admin);
    expect(sample(text, 'sockproxy_reloads_total', { result: 'failed' })).toBe(1);
    expect(sample(text, 'sockproxy_reloads_total', { result: 'ok' })).toBe(0);
    expect((await scrapeStatus(admin)).totals.reloads).toEqual({ ok: 0, failed: 1 });
  });

  it('-s reload goes to the primary through its pid file; every worker reloads, requests go to the new server, counted once; a start-only key is warned of once', async () => {
    const a = await upstream('a');
    const b = await upstream('b');
    const { proxy, url, admin, file } = await start(a);
    const pids = workerPids(proxy);
    const before = await scrapeStatus(admin);
    // `workers` is read at start only: the reload names it once (the primary), not once per worker.
    writeFileSync(file, readFileSync(file, 'utf8').replace(a.address, b.address).replace('workers: 2', 'workers: 3'));
    const sent = await runProxy(['-s', 'reload', '--config', file]);
    expect(sent).toMatchObject({ code: 0, stderr: '' });
    await proxy.waitFor('both workers reconfigured', () =>
      proxy.errorLog().filter((line) => String(line.msg).startsWith('reconfigured:')).length === 2 ? true : undefined,
    );
    const reconfigured = proxy.errorLog().filter((line) => String(line.msg).startsWith('reconfigured:'));
    expect(reconfigured.map((line) => line.pid).sort()).toEqual([...pids].sort());
    for (let i = 0; i < 6; i++) expect(await get(url)).toEqual({ status: 200, text: 'ok b\n' });
    expect(b.requests).toHaveLength(6);
    expect(workerPids(proxy)).toEqual(pids);
    const warnings = proxy.errorLog().filter((line) => line.key === 'workers');
    expect(warnings).toEqual([expect.objectContaining({ pid: proxy.pid, msg: 'workers cannot change on reload: the new value takes effect at restart' })]);
    const text = await scrapeMetrics(admin);
    expect(sample(text, 'sockproxy_reloads_total', { result: 'ok' })).toBe(1);
    const after = await scrapeStatus(admin);
    expect(Date.parse(after.config.loaded_at)).toBeGreaterThan(Date.parse(before.config.loaded_at));
    expect(after.upstreams[0]!.servers.map((server) => server.address)).toEqual([b.address]);
  });

  it('Ctrl-C (SIGINT to the primary and every worker, as a terminal sends it): one graceful stop, the request in flight completes', async () => {
    const held: (() => void)[] = [];
    const app = await upstream('a', (req, res) => {
      const answer = (): void => void res.end('slow done\n');
      if (req.url === '/slow') held.push(answer);
      else answer();
    });
    const { proxy, url } = await start(app);
    const pids = workerPids(proxy);
    const slow = get(url, '/slow');
    await pollUntil('the slow request at the app', () => (held.length === 1 ? true : undefined), 5_000);
    for (const pid of [proxy.pid, ...pids]) process.kill(pid, 'SIGINT');
    await proxy.waitFor('both workers stopping', () =>
      proxy.errorLog().filter((line) => line.msg === 'SIGTERM received, gracefully shutting down').length === 2 ? true : undefined,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(proxy.alive()).toBe(true);
    held.splice(0).forEach((answer) => answer());
    expect(await slow).toEqual({ status: 200, text: 'slow done\n' });
    expect(await proxy.waitForExit(15_000)).toEqual({ code: 0, signal: null });
    expect(proxy.errorLog().filter((line) => String(line.msg).includes('exiting now'))).toEqual([]);
  });

  it('a unix listen with mode= gets that mode, though the primary creates the file; a restart keeps it', async () => {
    const app = await upstream('a');
    const socketPath = tmp.path('m.sock');
    const file = tmp.path('mode.yaml');
    writeFileSync(file, `listen: unix:${socketPath} mode=0640\nworkers: 2\nupstream:\n  servers: [${app.address}]\n`);
    const proxy = await startProxyWithConfig(file);
    expect(statSync(socketPath).mode & 0o777).toBe(0o640);
    expect((await get('http://localhost', '/', unixAgent(socketPath))).status).toBe(200);
    const [victim] = workerPids(proxy) as [number];
    process.kill(victim, 'SIGKILL');
    await proxy.waitFor('a third worker', () => (workerPids(proxy).length === 3 ? true : undefined));
    expect(statSync(socketPath).mode & 0o777).toBe(0o640);
    expect((await get('http://localhost', '/', unixAgent(socketPath))).status).toBe(200);
  });

  it('a bad workers value exits 2 with file:line:col and the value', async () => {
    const file = tmp.path('bad.yaml');
    writeFileSync(file, 'listen: 8080\nupstream:\n  servers: [unix:/tmp/a.sock]\nworkers: none\n');
    const result = await runProxy(['--config', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`sockproxy: [emerg] ${file}:4:10: workers must be auto or a positive integer like 2, got "none"\n`);
  });

  it('a TCP port in use: the workers cannot bind it, the primary exits 1 with one [emerg] line and no worker left', async () => {
    const app = await upstream('a');
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const { port } = busy.address() as net.AddressInfo;
    try {
      const file = tmp.path('busy.yaml');
      writeFileSync(file, `listen: 127.0.0.1:${port}\nworkers: 2\nupstream:\n  servers: [${app.address}]\n`);
      const result = await runProxy(['--config', file]);
      expect(result.code).toBe(1);
      const emerg = result.stderr.split('\n').filter((line) => line.startsWith('sockproxy: [emerg]'));
      expect(emerg).toEqual([`sockproxy: [emerg] bind() to 127.0.0.1:${port} failed (98: Address already in use)`]);
      expect(stackLines(result.stderr)).toEqual([]);
      const pids = parseJsonLines(result.stderr)
        .map((line) => /^start worker process (\d+)$/.exec(String(line.msg))?.[1])
        .filter((pid): pid is string => pid !== undefined)
        .map(Number);
      expect(pids).toHaveLength(2);
      for (const pid of pids) expect(alive(pid)).toBe(false);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  });

  it('a unix listen path in use: exit 1 with bind() failed before any worker starts; the live socket is untouched', async () => {
    const app = await upstream('a');
    const first = await start(app);
    const file = tmp.path('second.yaml');
    writeFileSync(file, `listen: unix:${first.socketPath}\nworkers: 2\nupstream:\n  servers: [${app.address}]\n`);
    const result = await runProxy(['--config', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`sockproxy: [emerg] bind() to unix:${first.socketPath} failed (98: Address already in use)`);
    expect(result.stderr).not.toContain('start worker process');
    // The first proxy's socket is untouched.
    expect((await get('http://localhost', '/', unixAgent(first.socketPath))).status).toBe(200);
  });
});
