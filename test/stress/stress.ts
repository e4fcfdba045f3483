/**
 * `npm run stress`: the long fault runs of issue 8 §2, which a person runs (the test suite
 * runs a short one: test/integration/faults-under-load.test.ts). Three runs of --requests
 * each, through a fresh proxy and two fresh sample-app servers:
 *
 *   kills    app servers SIGKILLed and SIGTERMed at random moments and started again
 *   aborts   a fifth of the clients go away half-way; no kills, so /status must count no
 *            failure against any server
 *   aborts-unbuffered
 *            the same with request_buffering and buffering off, so that the clients leave
 *            while the app is still reading their request or sending its response
 *   both     kills and aborts at once
 *
 * Prints a JSON report per run and exits 1 if any response was wrong, a descriptor was
 * left open, or a client abort was counted against a server.
 *
 *   npm run stress -- --requests 20000 [--concurrency 16] [--seed N] [--only kills,aborts,aborts-unbuffered,both]
 */
import { parseArgs } from 'node:util';
import { type FaultRunReport, runFaults } from './lib/fault-run.js';
import { problemsOf } from './lib/verdict.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '16' },
    seed: { type: 'string' },
    only: { type: 'string', default: 'kills,aborts,aborts-unbuffered,both' },
  },
});
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const runs = {
  kills: { kills: true, abortShare: 0 },
  aborts: { kills: false, abortShare: 0.2 },
  'aborts-unbuffered': { kills: false, abortShare: 0.2, buffering: false },
  both: { kills: true, abortShare: 0.2 },
} as const;
const only = values.only.split(',') as (keyof typeof runs)[];
if (!Number.isInteger(requests) || requests < 1 || !Number.isInteger(concurrency) || concurrency < 1 || only.some((name) => !(name in runs))) {
  process.stderr.write('usage: npm run stress -- [--requests N] [--concurrency N] [--seed N] [--only kills,aborts,aborts-unbuffered,both]\n');
  process.exit(2);
}

let failed = false;
for (const name of only) {
  process.stderr.write(`[stress] ${name}: ${requests} requests, concurrency ${concurrency}, seed ${seed}\n`);
  const report: FaultRunReport = await runFaults({
    requests,
    concurrency,
    seed,
    ...runs[name],
    progress: (line) => process.stderr.write(`[stress] ${name}: ${line}\n`),
  });
  process.stdout.write(`${JSON.stringify({ run: name, ...report }, null, 2)}\n`);
  const problems = problemsOf(report);
  for (const problem of problems) process.stderr.write(`[stress] ${name}: FAIL ${problem}\n`);
  if (problems.length === 0) process.stderr.write(`[stress] ${name}: ok in ${(report.durationMs / 1000).toFixed(1)} s\n`);
  failed ||= problems.length > 0;
}
process.exit(failed ? 1 : 0);
