/**
 * `npm run fuzz`: the long fuzz run of issue 8 §3, which a person runs (the test suite runs
 * 5,000 inputs in each request_buffering mode and replays the corpus: test/integration/fuzz.test.ts). Mutated requests
 * go raw to a fresh proxy, one per connection; an upstream records what it received. Exits
 * 1 if the proxy crashed or hung, forwarded anything the input does not hold (a smuggled
 * request, a moved body boundary), or answered a refused request with anything but a 4xx
 * (501, 505). Each failure is printed with the seed, the input's number and its bytes
 * (base64): `--seed S` gives the same inputs again; add a failing input to test/fuzz/corpus/.
 * `--request-buffering off` runs the proxy with proxy.request_buffering: off, bodies
 * streamed to the upstream as they arrive (the checks of that mode: ./lib/fuzz-run.ts).
 *
 *   npm run fuzz -- --inputs 100000 [--seed N] [--concurrency 32] [--request-buffering on|off]
 */
import { parseArgs } from 'node:util';
import { runFuzz } from './lib/fuzz-run.js';

const { values } = parseArgs({
  options: {
    inputs: { type: 'string', default: '100000' },
    concurrency: { type: 'string', default: '32' },
    seed: { type: 'string' },
    'request-buffering': { type: 'string', default: 'on' },
  },
});
const inputs = Number(values.inputs);
const concurrency = Number(values.concurrency);
const requestBuffering = values['request-buffering'];
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
// 127.1.0.0 onwards, one address per input: 127.255.255.255 is the last.
if (!Number.isInteger(inputs) || inputs < 1 || inputs > 254 * 65536 || !Number.isInteger(concurrency) || concurrency < 1 || !Number.isInteger(seed) || (requestBuffering !== 'on' && requestBuffering !== 'off')) {
  process.stderr.write('usage: npm run fuzz -- [--inputs N] [--concurrency N] [--seed N] [--request-buffering on|off]\n');
  process.exit(2);
}
process.stderr.write(`[fuzz] ${inputs} inputs, concurrency ${concurrency}, seed ${seed}, request_buffering ${requestBuffering}\n`);
const report = await runFuzz({ inputs, seed, concurrency, requestBuffering, progress: (line) => process.stderr.write(`[fuzz] ${line}\n`) });
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
const failed = report.violationCount > 0 || !report.proxyAlive;
process.stderr.write(failed ? `[fuzz] FAIL: ${report.violationCount} violations (seed ${seed})\n` : `[fuzz] ok in ${(report.durationMs / 1000).toFixed(1)} s\n`);
process.exit(failed ? 1 : 0);
