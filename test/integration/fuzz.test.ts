import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFuzz } from '../fuzz/lib/fuzz-run.js';

const CORPUS = join(import.meta.dirname, '../fuzz/corpus');

/**
 * The short fuzz run of issue 8 §3 in CI: the same harness as `npm run fuzz` (README,
 * "Fuzzing"), with 10,000 inputs from a fixed seed, and the corpus of inputs that once
 * found a bug, replayed. Real processes: the proxy as a user runs it, raw connections from
 * the client side, a recording upstream on a Unix socket. Any violation is printed with
 * the input's bytes in base64.
 */
describe('fuzzing', () => {
  it('the corpus of inputs that found bugs: each one handled as the fuzz run requires', { timeout: 60_000 }, async () => {
    const files = readdirSync(CORPUS).filter((name) => name.endsWith('.json')).sort();
    expect(files.length).toBeGreaterThan(0);
    const inputs = files.map((name) => Buffer.from((JSON.parse(readFileSync(join(CORPUS, name), 'utf8')) as { input_base64: string }).input_base64, 'base64'));
    const report = await runFuzz({ inputs, seed: 0, concurrency: 4 });
    expect(report.violations).toEqual([]);
    expect(report.proxyAlive).toBe(true);
    // They still reach what they found: requests forwarded, and requests refused.
    expect(report.forwarded).toBeGreaterThan(0);
    expect(report.inputsRefused).toBeGreaterThan(0);
  });

  it('10,000 mutated requests: no crash, no hang, nothing smuggled, every refusal a 4xx', { timeout: 300_000 }, async () => {
    const report = await runFuzz({ inputs: 10_000, seed: 8_3, concurrency: 32 });
    expect(report.violations).toEqual([]);
    expect(report.violationCount).toBe(0);
    expect(report.proxyAlive).toBe(true);
    // The run reached both sides of the proxy: mutations it forwarded, and ones it refused.
    expect(report.inputsForwarded).toBeGreaterThan(1_000);
    expect(report.inputsRefused).toBeGreaterThan(1_000);
    expect(report.statuses['200']).toBe(report.forwarded);
  });
});
