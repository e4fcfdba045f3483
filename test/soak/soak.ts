/**
 * `npm run soak -- --minutes N`: the long run of issue 8 §4, which a person runs (at least
 * 30 minutes before a release). A steady moderate load through a fresh proxy, reloaded
 * every --reload-every seconds, with the proxy's resident memory, V8 heap in use, open
 * descriptors and event-loop delay sampled every --sample-every seconds (./lib/soak-run.ts).
 *
 * Prints a line per sample on stderr, then the report (JSON, without the samples) on
 * stdout; --samples FILE writes every sample there as it is taken, one JSON line each.
 * Exits 1 if any series trends upward, the idle proxy holds descriptors it did not hold
 * before, or any client got a wrong or failed answer.
 *
 *   npm run soak -- --minutes 30 [--rate 100] [--reload-every 60] [--sample-every 10] [--seed N] [--samples FILE]
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runSoak, soakProblems } from './lib/soak-run.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    rate: { type: 'string', default: '100' },
    'reload-every': { type: 'string', default: '60' },
    'sample-every': { type: 'string', default: '10' },
    seed: { type: 'string' },
    samples: { type: 'string' },
  },
});
const minutes = Number(values.minutes);
const rate = Number(values.rate);
const reloadEverySeconds = Number(values['reload-every']);
const sampleEverySeconds = Number(values['sample-every']);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
if (![minutes, rate, reloadEverySeconds, sampleEverySeconds].every((n) => Number.isFinite(n) && n > 0) || !Number.isInteger(seed)) {
  process.stderr.write('usage: npm run soak -- --minutes N [--rate REQUESTS_PER_S] [--reload-every S] [--sample-every S] [--seed N] [--samples FILE]\n');
  process.exit(2);
}
const samplesFile = values.samples;
if (samplesFile !== undefined) writeFileSync(samplesFile, '');

process.stderr.write(`[soak] ${minutes} min at ${rate} requests/s, a reload every ${reloadEverySeconds} s, a sample every ${sampleEverySeconds} s, seed ${seed}\n`);
const report = await runSoak({
  minutes,
  rate,
  reloadEverySeconds,
  sampleEverySeconds,
  seed,
  progress: (line) => process.stderr.write(`[soak] ${line}\n`),
  onSample: (sample) => {
    if (samplesFile !== undefined) appendFileSync(samplesFile, `${JSON.stringify(sample)}\n`);
  },
});
const { samples: _samples, ...summary } = report;
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
const problems = soakProblems(report);
for (const problem of problems) process.stderr.write(`[soak] FAIL ${problem}\n`);
if (problems.length === 0) process.stderr.write(`[soak] ok: ${report.samples.length} samples over ${(report.durationS / 60).toFixed(1)} min, nothing trends upward\n`);
process.exit(problems.length > 0 ? 1 : 0);
