/**
 * A fault run (issue 8 §2): many requests of mixed methods and sizes through the proxy to
 * two sample-app servers, while the servers are killed (SIGKILL, leaving a stale socket
 * file) and stopped gracefully (SIGTERM) at random moments and started again, and, if
 * asked, while some clients go away half-way. Every response is checked (./load.ts), the
 * proxy's open descriptors are compared before and after, and its /status and logs are
 * read for what the client aborts were counted as.
 *
 * The same code runs the long run (`npm run stress`, test/stress/stress.ts) and the short
 * one in the test suite (test/integration/faults-under-load.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { seededRandom } from '../../helpers/seeded-random.js';
import { type AbortPoint, abortingClient, type Outcome, planRequest, sendChecked } from './load.js';
import { AppServer, descriptorDifference, ProxyUnderTest, sleep } from './processes.js';

export interface FaultRunOptions {
  readonly requests: number;
  /** Requests in flight at once. */
  readonly concurrency: number;
  /** Kill and restart app servers while the load runs. */
  readonly kills: boolean;
  /** The share of requests made by clients that go away half-way (0 for none). */
  readonly abortShare: number;
  /**
   * The proxy's request_buffering and buffering (default on). Off, a request body streams
   * to the app as it arrives and a response to the client as the app sends it, so a client
   * that leaves does so while the app is still busy with its request: the abort reaches the
   * app, and must still not count against it.
   */
  readonly buffering?: boolean;
  readonly seed: number;
  /** Progress lines (the script prints them; the test does not). */
  readonly progress?: (line: string) => void;
}

export interface FaultRunReport {
  readonly options: Omit<FaultRunOptions, 'progress'>;
  readonly durationMs: number;
  readonly outcomes: Record<Outcome, number>;
  readonly abortsByPoint: Record<AbortPoint, number>;
  /** Every violation, described (the first 50). */
  readonly violations: string[];
  readonly faults: { sigkill: number; sigterm: number; restarts: number; staleSocketsReplaced: number };
  /** The proxy's open descriptors: at the start (after a warm-up), and once the load is over and it settled. */
  readonly descriptors: { before: number; after: number; leftOver: string[]; appeared: string[] };
  /** From GET /status once the load is over: failures counted against each server, and by kind. */
  readonly serverFailures: Record<string, number>;
  readonly upstreamFailures: Record<string, number>;
  /** Access-log lines by status; error-log lines at level error, by message; "client prematurely closed" lines. */
  readonly accessStatuses: Record<string, number>;
  readonly errorLines: Record<string, number>;
  readonly clientClosedLines: number;
  readonly proxyAlive: boolean;
  readonly proxyOutput: string[];
}

/**
 * The proxy's settings for the run: two servers, each out for 1 s after a failure (the
 * default 10 s would leave both out for most of a short run); admin on a socket for /status.
 */
function proxyConfig(dir: string, apps: readonly AppServer[], buffering: boolean): string {
  return [
    'upstream:',
    '  servers:',
    ...apps.map((app) => `    - ${app.address} max_fails=1 fail_timeout=1s`),
    'admin:',
    `  listen: unix:${join(dir, 'admin.sock')}`,
    'proxy:',
    `  temp_path: ${dir}`,
    '  client_max_body_size: 2m',
    ...(buffering ? [] : ['  request_buffering: off', '  buffering: off']),
    '',
  ].join('\n');
}

/**
 * Kills or stops one app server at a time, at random moments, and starts it again after a
 * random pause. A fault 0.2 to 1.5 s after the last restart: sometimes within the 1 s
 * fail_timeout of the last one, so that both servers are out at once (no live upstreams),
 * mostly not, so that most failures are requests a server was busy with when it died.
 */
async function chaos(apps: readonly AppServer[], random: () => number, running: () => boolean, faults: FaultRunReport['faults']): Promise<void> {
  while (running()) {
    await sleep(200 + random() * 1_300);
    if (!running()) break;
    const app = apps[Math.floor(random() * apps.length)]!;
    if (random() < 0.6) {
      faults.sigkill++;
      await app.stop('SIGKILL');
    } else {
      faults.sigterm++;
      await app.stop('SIGTERM');
    }
    await sleep(random() * 400);
    await app.start();
    faults.restarts++;
  }
}

async function scrapeStatus(dir: string): Promise<{ serverFailures: Record<string, number>; upstreamFailures: Record<string, number> }> {
  const agent = new Agent({ connect: { socketPath: join(dir, 'admin.sock') } });
  try {
    const res = await request('http://admin/status', { dispatcher: agent });
    const status = (await res.body.json()) as {
      totals: { upstream_failures: Record<string, number> };
      upstreams: { servers: { address: string; failures: number }[] }[];
    };
    const serverFailures: Record<string, number> = {};
    for (const server of status.upstreams[0]!.servers) serverFailures[server.address] = server.failures;
    return { serverFailures, upstreamFailures: status.totals.upstream_failures };
  } finally {
    await agent.close();
  }
}

export async function runFaults(options: FaultRunOptions): Promise<FaultRunReport> {
  const { progress = () => {} } = options;
  const dir = mkdtempSync(join(os.tmpdir(), 'sp-faults-'));
  const random = seededRandom(options.seed);
  const apps = [new AppServer(join(dir, 'a.sock')), new AppServer(join(dir, 'b.sock'))];
  const faults = { sigkill: 0, sigterm: 0, restarts: 0, staleSocketsReplaced: 0 };
  let proxy: ProxyUnderTest | undefined;
  try {
    await Promise.all(apps.map((app) => app.start()));
    proxy = await ProxyUnderTest.start(dir, proxyConfig(dir, apps, options.buffering ?? true));
    const origin = `http://127.0.0.1:${proxy.port}`;

    // Warm-up: node opens some descriptors once, at first use (the thread pool's and
    // io_uring's for the first temp file, say). Counted after it, a leak is a leak.
    const warmUp = new Agent({ connections: 4 });
    const warmUpRandom = seededRandom(options.seed + 2);
    for (let i = 0; i < 40; i++) {
      const checked = await sendChecked(origin, warmUp, planRequest(warmUpRandom));
      if (checked.outcome !== 'complete') throw new Error(`warm-up, before any fault: ${checked.problem ?? checked.outcome}`);
    }
    await warmUp.close();
    const before = await proxy.settledDescriptors(undefined);

    const clients = new Agent({ connections: options.concurrency });
    const outcomes: Record<Outcome, number> = { complete: 0, failed_502: 0, failed_504: 0, truncated: 0, client_aborted: 0, violation: 0 };
    const abortsByPoint: Record<AbortPoint, number> = { request_headers: 0, request_body: 0, response: 0 };
    const violations: string[] = [];
    // Drawn up front, so that a seed gives the same methods, sizes and abort points whatever
    // the timing (body bytes are random each run); the faults have a generator of their own.
    const points: AbortPoint[] = ['request_headers', 'request_body', 'response'];
    const plans = Array.from({ length: options.requests }, () =>
      random() < options.abortShare
        ? { abort: points[Math.floor(random() * points.length)]!, random: seededRandom(Math.floor(random() * 2 ** 32)) }
        : planRequest(random),
    );

    let next = 0;
    let done = 0;
    const started = performance.now();
    const chaosRandom = seededRandom(options.seed + 1);
    const chaosDone = options.kills ? chaos(apps, chaosRandom, () => done < options.requests && proxy!.alive, faults) : Promise.resolve();
    const worker = async (): Promise<void> => {
      while (next < options.requests && proxy!.alive) {
        const plan = plans[next++]!;
        let checked;
        if ('abort' in plan) {
          abortsByPoint[plan.abort]++;
          checked = await abortingClient(proxy!.port, plan.abort, plan.random);
        } else {
          checked = await sendChecked(origin, clients, plan);
        }
        outcomes[checked.outcome]++;
        if (checked.problem !== undefined && violations.length < 50) violations.push(checked.problem);
        done++;
        if (done % 1000 === 0) progress(`${done}/${options.requests} requests, ${JSON.stringify(outcomes)}`);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    const durationMs = performance.now() - started;
    await chaosDone;
    await clients.close();
    // Both servers up, as after any restart, so pooled connections end the ordinary way.
    for (const app of apps) if (!app.running) await app.start();

    const proxyAlive = proxy.alive;
    const after = proxyAlive ? await proxy.settledDescriptors(before) : [];
    const status = proxyAlive ? await scrapeStatus(dir) : { serverFailures: {}, upstreamFailures: {} };
    // The /status connection is gone by now, but give its close a moment to reach the proxy.
    const afterStatus = proxyAlive ? await proxy.settledDescriptors(before) : after;
    faults.staleSocketsReplaced = apps.reduce((sum, app) => sum + app.staleSocketsReplaced, 0);
    return {
      options: { requests: options.requests, concurrency: options.concurrency, kills: options.kills, abortShare: options.abortShare, buffering: options.buffering ?? true, seed: options.seed },
      durationMs,
      outcomes,
      abortsByPoint,
      violations,
      faults,
      descriptors: {
        before: before.length,
        after: afterStatus.length,
        ...descriptorDifference(before, afterStatus),
      },
      ...status,
      accessStatuses: Object.fromEntries([...proxy.logs.statuses].sort(([a], [b]) => a - b)),
      errorLines: Object.fromEntries(proxy.logs.errors),
      clientClosedLines: proxy.logs.clientClosed,
      proxyAlive,
      proxyOutput: proxy.otherOutput,
    };
  } finally {
    await proxy?.stop();
    await Promise.all(apps.map((app) => app.kill()));
    rmSync(dir, { recursive: true, force: true });
  }
}
