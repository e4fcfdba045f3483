/**
 * A soak run (issue 8 §4): the proxy as a user runs it, in front of three sample-app
 * servers on Unix sockets, under a steady moderate load for many minutes, reloaded every
 * so often, and sampled every few seconds (./sampler.ts). Afterwards each series is judged
 * for an upward trend (./trend.ts), and the idle proxy's descriptors are compared with
 * what it held before the load.
 *
 * The load is what a proxy meets in a day, at a steady rate: GETs of 0 B to 1 MiB and
 * POSTs and PUTs that the app sends back (each checked by sha256, ../../stress/lib/load.ts),
 * most over keep-alive connections, a tenth on a new connection each, a few clients that go
 * away half-way, a WebSocket session every two seconds, and HTTP through a stream (L4)
 * server while the configuration has one. The reloads alternate two configurations: the
 * second adds a server (so one leaves and comes back at every other reload), changes the
 * upstream keepalive (so kept servers get new connection pools) and adds the stream
 * server's listener (so a listener opens and closes).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import WebSocket from 'ws';
import { seededRandom } from '../../helpers/seeded-random.js';
import { type AbortPoint, abortingClient, bodySize, type Checked, type Outcome, planRequest, sendChecked } from '../../stress/lib/load.js';
import { freePort } from '../../helpers/temp.js';
import { AppServer, descriptorDifference, ProxyUnderTest, sleep } from '../../stress/lib/processes.js';
import { type ProcessSample, Sampler } from './sampler.js';
import { type Tolerance, type Trend, trendOf } from './trend.js';

export interface SoakOptions {
  readonly minutes: number;
  /** Requests started per second. */
  readonly rate: number;
  readonly reloadEverySeconds: number;
  readonly sampleEverySeconds: number;
  readonly seed: number;
  /** Progress lines, one per sample (the script prints them). */
  readonly progress?: (line: string) => void;
  /** Each sample as it is taken (the script can write them to a file). */
  readonly onSample?: (sample: SoakSample) => void;
}

export interface SoakSample extends ProcessSample {
  /** Requests completed per second since the previous sample: the load the proxy carried. */
  readonly requestsPerSecond: number;
}

/** The series judged, and how much each may rise over the judged part of a run (see ./trend.ts). */
const SERIES = {
  rssBytes: { relative: 0.1, absolute: 10 * 1024 * 1024 },
  heapUsedBytes: { relative: 0.1, absolute: 5 * 1024 * 1024 },
  openFds: { relative: 0, absolute: 5 },
  eventLoopP99Ms: { relative: 0.5, absolute: 5 },
} as const satisfies Record<string, Tolerance>;
export type SeriesName = keyof typeof SERIES;

/** The first minutes, when V8 grows its heap and pools fill, are not judged: a fifth of the run, at most 5 minutes. */
export function warmUpSeconds(minutes: number): number {
  return Math.min(300, minutes * 60 * 0.2);
}

export interface SoakReport {
  readonly options: Omit<SoakOptions, 'progress' | 'onSample'>;
  readonly durationS: number;
  readonly warmUpS: number;
  readonly requests: { readonly started: number; readonly shed: number; readonly outcomes: Record<Outcome, number>; readonly abortsByPoint: Record<AbortPoint, number>; readonly viaStream: number };
  readonly websocket: { readonly sessions: number; readonly failed: number };
  /** Every violation, described (the first 50): wrong bodies, errors with no cause, failed WebSocket echoes. */
  readonly violations: string[];
  readonly reloads: { readonly done: number; readonly failed: number };
  readonly samples: SoakSample[];
  readonly trends: Record<SeriesName, Trend>;
  /** The idle proxy's descriptors before the load and after it (same configuration), and what differs. */
  readonly idleDescriptors: { readonly before: number; readonly after: number; readonly leftOver: string[]; readonly appeared: string[] };
  readonly accessStatuses: Record<string, number>;
  readonly errorLines: Record<string, number>;
  readonly proxyAlive: boolean;
  readonly proxyOutput: string[];
}

/** Requests in flight at most: past it the load generator sheds (and says so) rather than queue without bound. */
const MAX_IN_FLIGHT = 64;
/** A WebSocket session is opened this often, and must finish within the timeout. */
const WEBSOCKET_EVERY_MS = 2_000;
const WEBSOCKET_TIMEOUT_MS = 20_000;

function proxyConfig(dir: string, apps: readonly AppServer[], streamPort: number, version: number): string {
  const second = version % 2 === 1;
  const lines = [
    'upstream:',
    '  servers:',
    `    - ${apps[0]!.address}`,
    `    - ${apps[1]!.address}`,
    ...(second ? [`    - ${apps[2]!.address} weight=2`] : []),
    `  keepalive: ${second ? 16 : 32}`,
    'admin:',
    `  listen: unix:${join(dir, 'admin.sock')}`,
    'proxy:',
    `  temp_path: ${dir}`,
    '  client_max_body_size: 2m',
  ];
  if (second) lines.push('stream:', `  - listen: 127.0.0.1:${streamPort}`, '    upstream:', `      servers: [${apps[2]!.address}]`);
  return `${lines.join('\n')}\n`;
}

/** Opens a WebSocket to the app's /ws echo through the proxy, sends a few binary messages, and checks each echo. */
async function webSocketSession(port: number, random: () => number): Promise<string | undefined> {
  const messages = Array.from({ length: 5 }, () => Buffer.alloc(Math.min(bodySize(random), 256 * 1024), Math.floor(random() * 256)));
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(`a WebSocket session did not finish within ${WEBSOCKET_TIMEOUT_MS} ms`), WEBSOCKET_TIMEOUT_MS);
    let echoed = 0;
    function finish(problem: string | undefined): void {
      clearTimeout(timer);
      ws.removeAllListeners();
      ws.on('error', () => {});
      if (problem === undefined) ws.close(1000);
      else ws.terminate();
      resolve(problem);
    }
    ws.on('open', () => {
      for (const message of messages) ws.send(message);
    });
    ws.on('message', (data: Buffer) => {
      if (!data.equals(messages[echoed]!)) return finish(`WebSocket echo ${echoed + 1}: ${data.length} B came back for ${messages[echoed]!.length} B sent, or other bytes`);
      if (++echoed === messages.length) finish(undefined);
    });
    ws.on('unexpected-response', (_req, res) => finish(`WebSocket upgrade answered ${res.statusCode}`));
    ws.on('error', (err) => finish(`WebSocket: ${err.message}`));
    ws.on('close', (code) => finish(`WebSocket closed (${code}) after ${echoed} of ${messages.length} echoes`));
  });
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const { progress = () => {}, onSample = () => {} } = options;
  const dir = mkdtempSync(join(os.tmpdir(), 'sp-soak-'));
  const random = seededRandom(options.seed);
  const apps = ['a', 'b', 'c'].map((name) => new AppServer(join(dir, `${name}.sock`)));
  const streamPort = await freePort();
  let proxy: ProxyUnderTest | undefined;
  const agents = {
    keepAlive: new Agent({ connections: 16 }),
    // One request per connection: the connect, accept and close path, as new visitors make it.
    newConnection: new Agent({ maxRequestsPerClient: 1 }),
    viaStream: new Agent({ connections: 4 }),
  };
  try {
    await Promise.all(apps.map((app) => app.start()));
    let version = 0;
    proxy = await ProxyUnderTest.start(dir, proxyConfig(dir, apps, streamPort, version));
    const origin = `http://127.0.0.1:${proxy.port}`;
    const streamOrigin = `http://127.0.0.1:${streamPort}`;

    // Warm-up, as for the fault runs: descriptors node opens once, at first use, are not a leak.
    const warmUpRandom = seededRandom(options.seed + 1);
    for (let i = 0; i < 40; i++) {
      const checked = await sendChecked(origin, agents.keepAlive, planRequest(warmUpRandom));
      if (checked.outcome !== 'complete') throw new Error(`warm-up: ${checked.problem ?? checked.outcome}`);
    }
    const warmUpProblem = await webSocketSession(proxy.port, warmUpRandom);
    if (warmUpProblem !== undefined) throw new Error(`warm-up: ${warmUpProblem}`);
    const idleBefore = await proxy.settledDescriptors(undefined);

    const outcomes: Record<Outcome, number> = { complete: 0, failed_502: 0, failed_504: 0, truncated: 0, client_aborted: 0, violation: 0 };
    const abortsByPoint: Record<AbortPoint, number> = { request_headers: 0, request_body: 0, response: 0 };
    const violations: string[] = [];
    const noteViolation = (problem: string): void => {
      if (violations.length < 50) violations.push(problem);
    };
    const websocket = { sessions: 0, failed: 0 };
    const reloads = { done: 0, failed: 0 };
    let started = 0;
    let shed = 0;
    let completed = 0;
    let viaStream = 0;
    const inFlight = new Set<Promise<void>>();
    let streamInFlight = 0;
    let streamOn = false;

    const durationMs = options.minutes * 60_000;
    const startedAt = performance.now();
    const elapsed = (): number => performance.now() - startedAt;
    const running = (): boolean => elapsed() < durationMs && proxy!.alive;
    const track = (work: Promise<void>): void => {
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work));
    };
    const record = (checked: Checked): void => {
      outcomes[checked.outcome]++;
      if (checked.problem !== undefined) noteViolation(checked.problem);
      completed++;
    };

    const points: AbortPoint[] = ['request_headers', 'request_body', 'response'];
    const startRequest = (): void => {
      const r = random();
      const requestRandom = seededRandom(Math.floor(random() * 2 ** 32));
      if (r < 0.02) {
        const point = points[Math.floor(requestRandom() * points.length)]!;
        abortsByPoint[point]++;
        track(abortingClient(proxy!.port, point, requestRandom).then(record));
      } else if (r < 0.12 && streamOn) {
        viaStream++;
        streamInFlight++;
        track(
          sendChecked(streamOrigin, agents.viaStream, planRequest(requestRandom))
            .then(record)
            .finally(() => streamInFlight--),
        );
      } else {
        const agent = r < 0.22 ? agents.newConnection : agents.keepAlive;
        track(sendChecked(origin, agent, planRequest(requestRandom)).then(record));
      }
    };

    /** A steady rate: every 10 ms, as many requests start as the clock says are due. */
    const load = async (): Promise<void> => {
      while (running()) {
        const due = Math.floor((elapsed() / 1000) * options.rate);
        for (; started < due; started++) {
          if (inFlight.size >= MAX_IN_FLIGHT) shed++;
          else startRequest();
        }
        await sleep(10);
      }
      await Promise.all(inFlight);
    };

    const webSockets = async (): Promise<void> => {
      const wsRandom = seededRandom(options.seed + 2);
      while (running()) {
        websocket.sessions++;
        const problem = await webSocketSession(proxy!.port, wsRandom);
        if (problem !== undefined) {
          websocket.failed++;
          noteViolation(problem);
        }
        await sleep(WEBSOCKET_EVERY_MS);
      }
    };

    /** Puts `next` in force; the stream listener's traffic stops first when `next` has none. */
    const reloadTo = async (next: number): Promise<void> => {
      const streamNext = next % 2 === 1;
      if (!streamNext) {
        streamOn = false;
        while (streamInFlight > 0) await sleep(10);
      }
      try {
        await proxy!.reload(proxyConfig(dir, apps, streamPort, next));
        version = next;
        reloads.done++;
      } catch (err) {
        reloads.failed++;
        noteViolation(`reload ${next}: ${(err as Error).message}`);
      }
      streamOn = version % 2 === 1;
    };
    const reloader = async (): Promise<void> => {
      for (;;) {
        const wait = options.reloadEverySeconds * 1000 - (elapsed() % (options.reloadEverySeconds * 1000));
        if (elapsed() + wait >= durationMs) return;
        await sleep(wait);
        if (!running()) return;
        await reloadTo(version + 1);
      }
    };

    const samples: SoakSample[] = [];
    const sampler = new Sampler(proxy.child.pid!, join(dir, 'admin.sock'), startedAt);
    const sampling = async (): Promise<void> => {
      let lastCompleted = 0;
      let lastT = 0;
      for (let next = options.sampleEverySeconds * 1000; next <= durationMs && proxy!.alive; next += options.sampleEverySeconds * 1000) {
        await sleep(Math.max(0, next - elapsed()));
        let taken: ProcessSample;
        try {
          taken = await sampler.sample();
        } catch (err) {
          // A proxy that died is the report's to tell (proxyAlive), with its last words.
          if (!proxy!.alive) break;
          throw err;
        }
        const sample = { ...taken, requestsPerSecond: (completed - lastCompleted) / Math.max(1, taken.t - lastT) };
        lastCompleted = completed;
        lastT = taken.t;
        samples.push(sample);
        onSample(sample);
        progress(describeSample(sample, reloads.done));
      }
    };

    await Promise.all([load(), webSockets(), reloader(), sampling()]);
    await sampler.close();
    const durationS = elapsed() / 1000;
    // The idle count is compared under the configuration it was taken with.
    if (version % 2 === 1 && proxy.alive) await reloadTo(version + 1);
    await Promise.all(Object.values(agents).map((agent) => agent.close()));

    const proxyAlive = proxy.alive;
    const idleAfter = proxyAlive ? await proxy.settledDescriptors(idleBefore) : [];
    const warmUpS = warmUpSeconds(options.minutes);
    const trends = Object.fromEntries(
      (Object.keys(SERIES) as SeriesName[]).map((name) => [name, trendOf(samples.map((sample) => ({ t: sample.t, value: sample[name] })), warmUpS, SERIES[name])]),
    ) as Record<SeriesName, Trend>;
    return {
      options: { minutes: options.minutes, rate: options.rate, reloadEverySeconds: options.reloadEverySeconds, sampleEverySeconds: options.sampleEverySeconds, seed: options.seed },
      durationS,
      warmUpS,
      requests: { started, shed, outcomes, abortsByPoint, viaStream },
      websocket,
      violations,
      reloads,
      samples,
      trends,
      idleDescriptors: { before: idleBefore.length, after: idleAfter.length, ...descriptorDifference(idleBefore, idleAfter) },
      accessStatuses: Object.fromEntries([...proxy.logs.statuses].sort(([a], [b]) => a - b)),
      errorLines: Object.fromEntries(proxy.logs.errors),
      proxyAlive,
      proxyOutput: proxy.otherOutput,
    };
  } finally {
    await Promise.all(Object.values(agents).map((agent) => agent.destroy()));
    await proxy?.stop();
    await Promise.all(apps.map((app) => app.kill()));
    rmSync(dir, { recursive: true, force: true });
  }
}

const MiB = 1024 * 1024;

function describeSample(sample: SoakSample, reloads: number): string {
  return [
    `t=${sample.t}s`,
    `rss=${(sample.rssBytes / MiB).toFixed(1)}MiB`,
    `heap=${(sample.heapUsedBytes / MiB).toFixed(1)}MiB`,
    `fds=${sample.openFds}`,
    `loop-delay p99=${sample.eventLoopP99Ms.toFixed(1)}ms max=${sample.eventLoopMaxMs.toFixed(1)}ms`,
    `load=${sample.requestsPerSecond.toFixed(1)}/s`,
    `reloads=${reloads}`,
  ].join(' ');
}

/**
 * What makes a soak fail: the proxy died; a client got a wrong, failed or truncated answer
 * (nothing is killed in a soak, so any 502, 504 or cut body is the proxy's fault) or a
 * WebSocket echo failed; a reload was refused; a series trended upward; or the idle proxy
 * holds descriptors it did not hold before the load.
 */
export function soakProblems(report: SoakReport): string[] {
  const problems: string[] = [];
  if (!report.proxyAlive) problems.push(`the proxy died: ${report.proxyOutput.join('\n')}`);
  const { outcomes } = report.requests;
  for (const outcome of ['failed_502', 'failed_504', 'truncated', 'violation'] as const) {
    if (outcomes[outcome] > 0) problems.push(`${outcomes[outcome]} requests ended ${outcome}`);
  }
  if (report.websocket.failed > 0) problems.push(`${report.websocket.failed} of ${report.websocket.sessions} WebSocket sessions failed`);
  if (report.reloads.failed > 0) problems.push(`${report.reloads.failed} reloads failed`);
  problems.push(...report.violations);
  for (const [name, trend] of Object.entries(report.trends)) {
    if (trend.upward) problems.push(`${name} trends upward: it rose ${trend.rise.toFixed(1)} over the judged ${trend.judged} samples (allowed ${trend.allowedRise.toFixed(1)}); start ${trend.start}, end ${trend.end}, max ${trend.max}`);
  }
  if (report.idleDescriptors.leftOver.length > 0) problems.push(`descriptors left open once idle: ${report.idleDescriptors.leftOver.join(', ')}`);
  return problems;
}
