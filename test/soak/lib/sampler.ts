/**
 * One sample of the proxy's health during a soak: what the kernel says of the process
 * (resident memory and open descriptors, from /proc, as an operator's `ps` and `ls
 * /proc/PID/fd` would see them), and what the process says of itself on its admin
 * endpoint's /metrics (V8's heap in use and the event-loop delay, prom-client's default
 * process metrics).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'undici';

export interface ProcessSample {
  /** Seconds since the run started. */
  readonly t: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly openFds: number;
  /**
   * The event-loop delay's 99th percentile and maximum since the previous sample, in ms
   * (prom-client resets its monitorEventLoopDelay histogram at every scrape).
   */
  readonly eventLoopP99Ms: number;
  readonly eventLoopMaxMs: number;
}

/** VmRSS from /proc/PID/status, in bytes. */
function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(match[1]) * 1024;
}

/** The value of an unlabelled series in Prometheus's text format. */
function seriesValue(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (match === null) throw new Error(`/metrics has no ${name}`);
  return Number(match[1]);
}

export class Sampler {
  readonly #pid: number;
  readonly #admin: Agent;
  readonly #startedAt: number;

  /** `adminSocket`: the Unix socket the proxy's `admin.listen` names. */
  constructor(pid: number, adminSocket: string, startedAt: number) {
    this.#pid = pid;
    this.#admin = new Agent({ connect: { socketPath: adminSocket } });
    this.#startedAt = startedAt;
  }

  async sample(): Promise<ProcessSample> {
    const res = await request('http://admin/metrics', { dispatcher: this.#admin });
    const metrics = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`GET /metrics: ${res.statusCode} ${metrics.slice(0, 200)}`);
    return {
      t: Math.round((performance.now() - this.#startedAt) / 1000),
      rssBytes: residentBytes(this.#pid),
      heapUsedBytes: seriesValue(metrics, 'nodejs_heap_size_used_bytes'),
      openFds: readdirSync(`/proc/${this.#pid}/fd`).length,
      eventLoopP99Ms: seriesValue(metrics, 'nodejs_eventloop_lag_p99_seconds') * 1000,
      eventLoopMaxMs: seriesValue(metrics, 'nodejs_eventloop_lag_max_seconds') * 1000,
    };
  }

  close(): Promise<void> {
    return this.#admin.close();
  }
}
