import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { useProxyFixture } from '../helpers/fixture.js';
import { httpUpstream, type TestUpstream } from '../helpers/upstreams.js';
import { until } from '../helpers/wait.js';

/**
 * upstream.queue (nginx Plus `queue N timeout=T`, HAProxy `maxconn` + `timeout queue`): with
 * max_conns on the servers, requests beyond their capacity wait, oldest first, instead of
 * failing; past the queue's size or its timeout they get 503.
 */
describe('upstream queue', () => {
  const fx = useProxyFixture();

  /**
   * A one-worker app (a Gunicorn sync worker): it records how many requests it holds at
   * once. Each is answered "ok <url>" after `delayMs`, or, without it, when the test
   * releases it.
   */
  interface OneWorkerApp extends TestUpstream {
    maxInFlight(): number;
    inFlight(): number;
    urls(): string[];
    /** Answers the oldest request held. */
    releaseOne(): void;
  }

  async function oneWorkerApp(name: string, delayMs?: number): Promise<OneWorkerApp> {
    let inFlight = 0;
    let maxInFlight = 0;
    const held: (() => void)[] = [];
    const upstream = await httpUpstream(fx.tmp.path(`${name}.sock`), (req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      res.once('close', () => inFlight--);
      const answer = () => res.end(`ok ${req.url}`);
      if (delayMs === undefined) held.push(answer);
      else setTimeout(answer, delayMs);
    });
    fx.track(upstream);
    return {
      ...upstream,
      maxInFlight: () => maxInFlight,
      inFlight: () => inFlight,
      urls: () => upstream.requests.map((r) => r.url),
      releaseOne: () => held.shift()?.(),
    };
  }

  const get = async (path: string, signal?: AbortSignal) => {
    const res = await request(`${fx.proxy!.url}${path}`, signal ? { signal } : {});
    return { status: res.statusCode, text: await res.body.text(), requestId: res.headers['x-request-id'] };
  };

  /** The proxy's debug line for a request entering the queue, counted. */
  const queued = () => fx.proxy!.errors().filter((line) => line.msg === 'request waits in the upstream queue').length;
  const waitQueued = (count: number) => until(() => queued() >= count, 5_000, `${count} request(s) to wait in the queue`);
  const accessFor = (uri: string) => fx.proxy!.access().find((line) => line.request_uri === uri);

  const queueConfig = (size: number, timeout: string) => `  queue:\n    size: ${size}\n    timeout: ${timeout}\nlog:\n  level: debug\n`;

  it('a one-worker app with max_conns=1 serves 50 concurrent requests: 50 × 200, never more than one at the app', async () => {
    const app = await oneWorkerApp('app', 5);
    await fx.start([`${app.address} max_conns=1`], queueConfig(100, '30s'));
    const paths = Array.from({ length: 50 }, (_, i) => `/r${i}`);
    const results = await Promise.all(paths.map((path) => get(path)));
    expect(results.map((r) => r.status)).toEqual(paths.map(() => 200));
    expect(results.map((r) => r.text)).toEqual(paths.map((path) => `ok ${path}`));
    expect(app.maxInFlight()).toBe(1);
    expect(app.urls().sort()).toEqual([...paths].sort());
    // Most of the burst waited in the queue (the rest found the app free).
    expect(queued()).toBeGreaterThan(25);
    await until(() => fx.proxy!.access().length === 50, 5_000, 'the 50 access-log lines');
    expect(fx.proxy!.access().map((line) => line.status)).toEqual(paths.map(() => 200));
  });

  it('waiting requests go to the app in the order they came', async () => {
    const app = await oneWorkerApp('app');
    await fx.start([`${app.address} max_conns=1`], queueConfig(10, '30s'));
    const responses = [get('/first')];
    await until(() => app.inFlight() === 1, 5_000, '/first to reach the app');
    for (const [i, path] of ['/q1', '/q2', '/q3'].entries()) {
      responses.push(get(path));
      await waitQueued(i + 1);
    }
    for (let reached = 1; reached <= 4; reached++) {
      await until(() => app.urls().length === reached && app.inFlight() === 1, 5_000, `request ${reached} to reach the app`);
      app.releaseOne();
    }
    expect((await Promise.all(responses)).map((r) => r.text)).toEqual(['ok /first', 'ok /q1', 'ok /q2', 'ok /q3']);
    expect(app.maxInFlight()).toBe(1);
    expect(app.urls()).toEqual(['/first', '/q1', '/q2', '/q3']);
  });

  it('a full queue: 503 at once, with a clear body, nginx Plus\'s log line and status 503 in the access log', async () => {
    const app = await oneWorkerApp('app');
    await fx.start([`${app.address} max_conns=1`], queueConfig(1, '30s'));
    const first = get('/first');
    await until(() => app.inFlight() === 1, 5_000, '/first to reach the app');
    const waiting = get('/waiting');
    await waitQueued(1);

    const overflow = await get('/overflow');
    expect(overflow.status).toBe(503);
    expect(overflow.text).toBe(
      `503 Service Unavailable: every upstream server is busy and the request queue is full\nrequest_id: ${overflow.requestId}\n`,
    );
    const line = await fx.proxy!.waitForLog((l) => String(l.msg).startsWith('upstream queue is full while connecting to upstream'));
    expect(line.level).toBe(50);
    expect(line.msg).toContain('request: "GET /overflow HTTP/1.1"');
    await until(() => accessFor('/overflow') !== undefined, 5_000, 'the access-log line of /overflow');
    expect(accessFor('/overflow')).toMatchObject({ status: 503, upstream_addr: 'backend', upstream_status: '503' });

    app.releaseOne();
    await until(() => app.inFlight() === 1 && app.urls().length === 2, 5_000, '/waiting to reach the app');
    app.releaseOne();
    expect([(await first).status, (await waiting).status]).toEqual([200, 200]);
    expect(app.urls()).toEqual(['/first', '/waiting']);
  });

  it('a request that waits the whole queue timeout: 503, never sent to the app', async () => {
    const app = await oneWorkerApp('app');
    await fx.start([`${app.address} max_conns=1`], queueConfig(5, '400ms'));
    const first = get('/first');
    await until(() => app.inFlight() === 1, 5_000, '/first to reach the app');
    const started = Date.now();
    const late = await get('/late');
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(late.status).toBe(503);
    expect(late.text).toContain('503 Service Unavailable: no upstream server became free within the queue timeout');
    await fx.proxy!.waitForLog((l) => String(l.msg).startsWith('upstream queue timed out while connecting to upstream'));
    await until(() => accessFor('/late') !== undefined, 5_000, 'the access-log line of /late');
    expect(accessFor('/late')).toMatchObject({ status: 503 });
    app.releaseOne();
    expect((await first).status).toBe(200);
    expect(app.urls()).toEqual(['/first']);
  });

  it('a client that gives up while queued leaves the queue at once: 499, nothing sent upstream, its place taken by the next', async () => {
    const app = await oneWorkerApp('app');
    await fx.start([`${app.address} max_conns=1`], queueConfig(1, '30s'));
    const first = get('/first');
    await until(() => app.inFlight() === 1, 5_000, '/first to reach the app');
    const controller = new AbortController();
    const gone = get('/gone', controller.signal).catch((err: Error) => err);
    await waitQueued(1);
    controller.abort();
    expect(await gone).toBeInstanceOf(Error);
    await until(() => accessFor('/gone') !== undefined, 5_000, 'the access-log line of /gone');
    expect(accessFor('/gone')).toMatchObject({ status: 499, upstream_addr: '-' });
    await fx.proxy!.waitForLog((l) => String(l.msg).startsWith('client prematurely closed connection while waiting in the upstream queue'));

    // The queue (size 1) has room again while /first still holds the app.
    const next = get('/next');
    await waitQueued(2);
    app.releaseOne();
    await until(() => app.inFlight() === 1 && app.urls().length === 2, 5_000, '/next to reach the app');
    app.releaseOne();
    expect([(await first).status, (await next).status]).toEqual([200, 200]);
    expect(app.urls()).toEqual(['/first', '/next']);
    // Not counted against the server: nothing was tried.
    expect(fx.proxy!.errors().some((l) => String(l.msg).includes('temporarily disabled'))).toBe(false);
  });

  it('with two servers at max_conns, a freed slot on either takes the oldest waiting request', async () => {
    const a = await oneWorkerApp('a');
    const b = await oneWorkerApp('b');
    await fx.start([`${a.address} max_conns=1`, `${b.address} max_conns=1`], queueConfig(10, '30s'));
    const busy = [get('/1'), get('/2')];
    await until(() => a.inFlight() === 1 && b.inFlight() === 1, 5_000, 'both servers to be busy');
    const waiting = get('/3');
    await waitQueued(1);
    b.releaseOne();
    await until(() => b.urls().length === 2, 5_000, '/3 to reach b, whose slot freed first');
    expect(b.urls()[1]).toBe('/3');
    a.releaseOne();
    b.releaseOne();
    expect((await Promise.all([...busy, waiting])).map((r) => r.status)).toEqual([200, 200, 200]);
    expect(a.maxInFlight()).toBe(1);
    expect(b.maxInFlight()).toBe(1);
  });
});
