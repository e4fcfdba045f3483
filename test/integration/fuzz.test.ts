import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFuzz } from '../fuzz/lib/fuzz-run.js';

const CORPUS = join(import.meta.dirname, '../fuzz/corpus');

interface CorpusEntry {
  readonly input_base64: string;
  /** The mode the bug showed in, when only one: the entry is replayed in that mode alone. */
  readonly request_buffering?: 'on' | 'off';
}

const corpus = readdirSync(CORPUS)
  .filter((name) => name.endsWith('.json'))
  .sort()
  .map((name) => JSON.parse(readFileSync(join(CORPUS, name), 'utf8')) as CorpusEntry);

/**
 * The short fuzz run of issue 8 §3 in CI: the same harness as `npm run fuzz` (README,
 * "Fuzzing"), with 10,000 inputs from a fixed seed, half of them with request buffering on
 * (the default) and half with it off (bodies streamed to the app, where a framing bug
 * would reach it), and the corpus of inputs that once found a bug, replayed in both modes.
 * Real processes: the proxy as a user runs it, raw connections from the client side, a
 * recording upstream on a Unix socket. Any violation is printed with the input's bytes in
 * base64.
 */
describe.each(['on', 'off'] as const)('fuzzing, request_buffering %s', (requestBuffering) => {
  it('the corpus of inputs that found bugs: each one handled as the fuzz run requires', { timeout: 60_000 }, async () => {
    const entries = corpus.filter((entry) => (entry.request_buffering ?? requestBuffering) === requestBuffering);
    expect(entries.length).toBeGreaterThan(0);
    const inputs = entries.map((entry) => Buffer.from(entry.input_base64, 'base64'));
    const report = await runFuzz({ inputs, seed: 0, concurrency: 4, requestBuffering });
    expect(report.violations).toEqual([]);
    expect(report.proxyAlive).toBe(true);
    // They still reach what they found: requests forwarded, and requests refused.
    expect(report.forwarded).toBeGreaterThan(0);
    expect(report.inputsRefused).toBeGreaterThan(0);
  });

  it('5,000 mutated requests: no crash, no hang, nothing smuggled, every refusal a 4xx', { timeout: 300_000 }, async () => {
    // Another seed per mode: twice as many different inputs for the same time.
    const report = await runFuzz({ inputs: 5_000, seed: requestBuffering === 'on' ? 8_3 : 8_4, concurrency: 32, requestBuffering });
    expect(report.violations).toEqual([]);
    expect(report.violationCount).toBe(0);
    expect(report.proxyAlive).toBe(true);
    // The run reached both sides of the proxy: mutations it forwarded, and ones it refused.
    expect(report.inputsForwarded).toBeGreaterThan(500);
    expect(report.inputsRefused).toBeGreaterThan(500);
    // Every request the upstream got whole, it answered 200; one cut off is answered by the proxy.
    expect(report.statuses['200']).toBe(report.forwarded - report.forwardedIncomplete);
    // Unbuffered, the run reaches bodies cut off on their way to the app.
    if (requestBuffering === 'on') expect(report.forwardedIncomplete).toBe(0);
    else expect(report.forwardedIncomplete).toBeGreaterThan(0);
  });
});
