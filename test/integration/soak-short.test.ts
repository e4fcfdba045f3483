import { describe, expect, it } from 'vitest';
import { runSoak, soakProblems } from '../soak/lib/soak-run.js';

/**
 * A 20-second soak in CI: the harness of `npm run soak` (which runs 30 minutes and more;
 * README, "Long runs"), so that it keeps working, and a check of what it exercises: the
 * proxy under a steady load with reloads every 4 s that add and drop a server, rebuild
 * connection pools and open and close a stream listener, with WebSocket sessions and
 * clients going away half-way throughout. Too short to judge trends (the first minutes are
 * V8 growing its heap): the trends are computed and reported, not judged, here.
 */
describe('soak, 20 seconds', () => {
  it('a steady load with reloads: every answer right, every reload in force, the idle proxy back to its descriptors', { timeout: 90_000 }, async () => {
    const report = await runSoak({ minutes: 1 / 3, rate: 50, reloadEverySeconds: 4, sampleEverySeconds: 2, seed: 8_4 });
    const trendProblems = soakProblems(report).filter((problem) => problem.includes('trends upward'));
    expect(soakProblems(report).filter((problem) => !trendProblems.includes(problem))).toEqual([]);

    expect(report.reloads.done).toBeGreaterThanOrEqual(4);
    expect(report.requests.outcomes.complete).toBeGreaterThan(500);
    expect(report.requests.outcomes.client_aborted).toBeGreaterThan(0);
    expect(report.requests.viaStream).toBeGreaterThan(0);
    expect(report.websocket.sessions).toBeGreaterThan(3);
    expect(report.accessStatuses['101']).toBeGreaterThan(3);
    // Every sample read both the kernel's view and the proxy's /metrics.
    expect(report.samples.length).toBeGreaterThanOrEqual(9);
    for (const sample of report.samples) {
      expect(sample.rssBytes).toBeGreaterThan(sample.heapUsedBytes);
      expect(sample.heapUsedBytes).toBeGreaterThan(0);
      expect(sample.openFds).toBeGreaterThan(3);
      expect(sample.eventLoopMaxMs).toBeGreaterThanOrEqual(sample.eventLoopP99Ms);
    }
    expect(report.trends.openFds.judged).toBe(report.samples.filter((sample) => sample.t >= report.warmUpS).length);
  });
});
