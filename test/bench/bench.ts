/**
 * `npm run bench`: sockproxy against its upstream directly, http-proxy and nginx, under
 * the same load, on the same upstream. See README "Performance".
 *
 *   npm run bench                      the full run (about 5 minutes)
 *   npm run bench -- --smoke           every row for a second, fails on any error (CI)
 *   npm run bench -- --only get-13,post-64k --reps 12 --seconds 2 --warmup 5
 *   npm run bench -- --load autocannon  use autocannon even where wrk is installed
 *   npm run bench -- --floor           add two minimal pass-through rows: node:http + undici,
 *                                      and node:http + net with node's native HTTP parser
 *   npm run bench -- --keep           keep the work directory (configs, error logs)
 *
 * Markdown table and targets on stdout, progress on stderr, JSON in
 * test/bench/results/latest.json (smoke.json for --smoke). Exits 1 if any row erred.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type Contender,
  direct,
  type Environment,
  findNginx,
  httpProxy,
  nginx,
  nginxVersion,
  netFloor,
  nodeFloor,
  type Running,
  sockproxyAccessLog,
  sockproxyKeepalive64,
  sockproxyNoRequestBuffering,
  sockproxyTcp,
  sockproxyUnix,
  sockproxyWorkers2,
} from './lib/contenders.js';
import { type LoadGenerator, loadGenerator, type LoadSpec, wrkVersion } from './lib/load.js';
import { cpuBusyMicros, treeCpuMicros, treePeakRssBytes } from './lib/proc.js';
import {
  computeRatios,
  evaluateTargets,
  markdownTable,
  markdownTargets,
  type Rep,
  type Row,
  type ScenarioInfo,
} from './lib/report.js';
import { startUpstream, type Upstream } from './lib/upstream-process.js';
import { detectPinning, log, median, openFileLimit, request, ROOT, stopChild } from './lib/util.js';

interface Scenario extends ScenarioInfo {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly bodyBytes: number;
  readonly connections: number;
  /**
   * Load before the measured runs, per contender. Node needs it: under the POST load a
   * fresh process (the upstream too) takes some 6-10 s to settle, its CPU per request
   * falling by half, as V8's heap and external-memory limits grow. (The upstream is warmed
   * by every contender's warm-up.)
   */
  readonly warmupSeconds: number;
  /** Measured rounds, rounds discarded before them, and their length, if not the defaults. */
  readonly reps?: number;
  readonly discard?: number;
  readonly seconds?: number;
  readonly contenders: readonly Contender[];
  /**
   * The servers (upstream and contender) are not pinned to the server core but may use
   * every core, as `workers: 2` needs; the load generator stays on its core.
   */
  readonly allCores?: boolean;
}

const { values: args } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    only: { type: 'string' },
    reps: { type: 'string' },
    seconds: { type: 'string' },
    warmup: { type: 'string' },
    out: { type: 'string' },
    floor: { type: 'boolean', default: false },
    load: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});

const smoke = args.smoke!;
/**
 * Many short rounds rather than a few long ones: this VM's CPU slows down now and then for
 * a few seconds, for every process at once (nginx's CPU per request grows by half with
 * it); with six 1-second rounds per row, interleaved, such a spell touches a few rounds
 * of every contender instead of a whole row, and the median passes over it.
 */
const repsFor = (scenario: Scenario): number => Number(args.reps ?? (smoke ? 1 : (scenario.reps ?? 6)));
/**
 * Rounds run and not counted, after the warm-up: a contender idles while the others warm
 * up, and its first two rounds after that were still 30-150% slower than the rest.
 */
const discardFor = (scenario: Scenario): number => (smoke || args.warmup === '0' ? 0 : (scenario.discard ?? 2));
const secondsFor = (scenario: Scenario): number => Number(args.seconds ?? (smoke ? 1 : (scenario.seconds ?? 1)));
const warmupFor = (scenario: Scenario): number => Number(args.warmup ?? (smoke ? 0 : scenario.warmupSeconds));
const outFile = args.out ?? join(ROOT, 'test/bench/results', smoke ? 'smoke.json' : 'latest.json');

const nginxBinary = findNginx();
const nginxContender = nginx(nginxBinary);
const common = [
  direct,
  sockproxyUnix,
  sockproxyTcp,
  sockproxyAccessLog,
  httpProxy,
  nginxContender,
  ...(args.floor ? [nodeFloor, netFloor] : []),
];
const ALL_SCENARIOS: readonly Scenario[] = [
  {
    id: 'get-13',
    title: 'GET 13 B',
    method: 'GET',
    path: '/',
    bodyBytes: 0,
    connections: 50,
    warmupSeconds: 2,
    contenders: [...common, sockproxyKeepalive64],
  },
  {
    id: 'get-16k',
    title: 'GET 16 KiB',
    method: 'GET',
    path: '/16k',
    bodyBytes: 0,
    connections: 50,
    warmupSeconds: 2,
    contenders: common,
  },
  {
    id: 'post-64k',
    title: 'POST 64 KiB',
    method: 'POST',
    path: '/echo',
    bodyBytes: 64 * 1024,
    connections: 50,
    warmupSeconds: 6,
    contenders: [...common, sockproxyNoRequestBuffering],
  },
  {
    id: 'get-13-c1000',
    title: 'GET 13 B, 1000 conns',
    method: 'GET',
    path: '/',
    bodyBytes: 0,
    connections: 1000,
    // What counts here is the peak RSS and the errors, not the speed.
    warmupSeconds: 1,
    // Rounds long enough that opening 1,000 connections is a small part of each.
    reps: 3,
    discard: 0,
    seconds: 2,
    contenders: [sockproxyUnix, httpProxy, nginxContender],
  },
  {
    // workers: 2 against workers: 1, on a 2-core machine: the proxy may use both cores,
    // which it shares with the upstream and the load generator.
    id: 'get-13-workers',
    title: 'GET 13 B, all cores',
    method: 'GET',
    path: '/',
    bodyBytes: 0,
    connections: 50,
    warmupSeconds: 2,
    allCores: true,
    contenders: [sockproxyUnix, sockproxyWorkers2],
  },
];
const only = args.only?.split(',');
const scenarios = only === undefined ? ALL_SCENARIOS : ALL_SCENARIOS.filter((s) => only.includes(s.id));

// --- one row ----------------------------------------------------------------------------

const POST_BODY = randomBytes(64 * 1024);

/** One request of the scenario, checked byte for byte, before any load. */
async function verify(port: number, scenario: Scenario): Promise<void> {
  const body = scenario.method === 'POST' ? POST_BODY.subarray(0, scenario.bodyBytes) : undefined;
  const reply = await request(port, scenario.method, scenario.path, body);
  const expected =
    scenario.method === 'POST' ? body! : scenario.path === '/' ? Buffer.from('Hello, world!') : Buffer.alloc(16 * 1024, 'x');
  if (reply.status !== 200) throw new Error(`${scenario.method} ${scenario.path} answered ${reply.status}`);
  if (!reply.body.equals(expected)) {
    throw new Error(`${scenario.method} ${scenario.path}: wrong body (${reply.body.length} bytes, ${expected.length} expected)`);
  }
}

function specFor(scenario: Scenario, port: number, secs: number): LoadSpec {
  return {
    port,
    method: scenario.method,
    path: scenario.path,
    bodyBytes: scenario.bodyBytes,
    connections: scenario.connections,
    seconds: secs,
  };
}

async function measure(
  load: LoadGenerator,
  upstream: Upstream,
  running: Running,
  scenario: Scenario,
  serverCpus: string | undefined,
): Promise<Rep> {
  const up0 = await upstream.stats();
  const busy0 = serverCpus === undefined ? NaN : cpuBusyMicros(serverCpus);
  const upCpu0 = treeCpuMicros(upstream.child.pid!);
  const cpu0 = treeCpuMicros(running.pid);
  const wall0 = performance.now();
  const result = await load.run(specFor(scenario, running.port, secondsFor(scenario)));
  const wallUs = (performance.now() - wall0) * 1000;
  const cpu1 = treeCpuMicros(running.pid);
  const upCpu1 = treeCpuMicros(upstream.child.pid!);
  const busy1 = serverCpus === undefined ? NaN : cpuBusyMicros(serverCpus);
  const up1 = await upstream.stats();
  const served = Math.max(1, up1.requests - up0.requests);
  const ours = running.pid === upstream.child.pid ? cpu1 - cpu0 : cpu1 - cpu0 + (upCpu1 - upCpu0);
  const foreign = serverCpus === undefined ? undefined : Math.max(0, ((busy1 - busy0 - ours) * 100) / wallUs);
  return {
    requests: result.requests,
    seconds: result.seconds,
    rps: result.rps,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    cpuUsPerRequest: (cpu1 - cpu0) / Math.max(1, result.requests),
    upstreamCpuUsPerRequest: (upCpu1 - upCpu0) / Math.max(1, result.requests),
    upstreamConnectionsPer1k: ((up1.connections - up0.connections) * 1000) / served,
    foreignServerCpuPct: foreign,
    errors: result.errors,
    errorDetail: result.errorDetail,
  };
}

function summarise(row: Row): void {
  if (row.reps.length === 0) return;
  row.rps = median(row.reps.map((r) => r.rps));
  row.p50Ms = median(row.reps.map((r) => r.p50Ms));
  row.p99Ms = median(row.reps.map((r) => r.p99Ms));
  row.cpuUsPerRequest = median(row.reps.map((r) => r.cpuUsPerRequest));
  row.upstreamCpuUsPerRequest = median(row.reps.map((r) => r.upstreamCpuUsPerRequest));
  row.upstreamConnectionsPer1k = median(row.reps.map((r) => r.upstreamConnectionsPer1k));
  const foreign = row.reps.map((r) => r.foreignServerCpuPct).filter((v): v is number => v !== undefined);
  if (foreign.length > 0) row.foreignServerCpuPct = median(foreign);
}

// --- a scenario: fresh processes, warm-up, interleaved repetitions ------------------

async function runScenario(
  scenario: Scenario,
  load: LoadGenerator,
  workDir: string,
  serverCpus: string | undefined,
): Promise<Row[]> {
  const socketPath = join(workDir, 'app.sock');
  const upstream = await startUpstream(socketPath, serverCpus);
  const env: Environment = {
    workDir,
    socketPath,
    upstreamPort: upstream.port,
    upstreamPid: upstream.child.pid!,
    serverCpus,
  };
  const rows: Row[] = [];
  const live: { row: Row; running: Running }[] = [];
  try {
    for (const contender of scenario.contenders) {
      const row: Row = { scenario: scenario.id, contender: contender.id, label: contender.label, reps: [], ratios: {} };
      rows.push(row);
      if (contender.unavailable !== undefined) {
        row.skipped = contender.unavailable;
        log(`  ${contender.id}: skipped, ${contender.unavailable}`);
        continue;
      }
      try {
        const running = await contender.start(env);
        live.push({ row, running });
        await verify(running.port, scenario);
      } catch (err) {
        row.error = (err as Error).message;
        log(`  ${contender.id}: ERROR ${row.error}`);
      }
    }
    const healthy = (): { row: Row; running: Running }[] => live.filter((l) => l.row.error === undefined);

    const warmup = warmupFor(scenario);
    if (warmup > 0) {
      for (const { row, running } of healthy()) {
        try {
          await load.run(specFor(scenario, running.port, warmup));
        } catch (err) {
          row.error = `warm-up: ${(err as Error).message}`;
        }
      }
    }
    const reps = repsFor(scenario);
    const discard = discardFor(scenario);
    for (let rep = -discard; rep < reps; rep++) {
      // Interleaved, and rotated so that no contender always runs first or last.
      const order = healthy();
      const shift = (rep + discard) % Math.max(1, order.length);
      const rotated = [...order.slice(shift), ...order.slice(0, shift)];
      for (const { row, running } of rotated) {
        try {
          const result = await measure(load, upstream, running, scenario, serverCpus);
          // The first rounds only finish the warm-up (see discardFor).
          if (rep >= 0) row.reps.push(result);
          if (!running.alive()) throw new Error('the process exited during the run');
          if (result.requests === 0) throw new Error('no response completed');
          if (result.errors > 0) throw new Error(`${result.errors} errors (${result.errorDetail})`);
          log(
            `  ${scenario.id} ${rep < 0 ? 'warm-up round' : `round ${rep + 1}/${reps}`} ${row.contender.padEnd(16)} ${Math.round(result.rps).toString().padStart(6)} req/s  p99 ${result.p99Ms.toFixed(2)} ms  CPU ${result.cpuUsPerRequest.toFixed(1)} µs/req`,
          );
        } catch (err) {
          row.error = `${(err as Error).message}${running.alive() ? '' : `\n${running.logTail()}`}`;
          log(`  ${scenario.id} ${row.contender}: ERROR ${row.error}`);
        }
      }
    }
    for (const { row, running } of live) {
      const peak = treePeakRssBytes(running.pid);
      if (peak !== undefined) row.peakRssMB = peak / (1024 * 1024);
      summarise(row);
    }
  } finally {
    for (const { running } of live) await running.stop();
    await stopChild(upstream.child);
  }
  return rows;
}

// --- the run ----------------------------------------------------------------------------

function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  } catch {
    return os.cpus()[0]?.model ?? 'unknown';
  }
}

async function main(): Promise<number> {
  const started = Date.now();
  for (const built of ['dist/proxy.js', 'dist-bench/upstream.js']) {
    if (!existsSync(join(ROOT, built))) throw new Error(`${built} is missing: run it as \`npm run bench\`, which builds first`);
  }
  const pinning = detectPinning();
  const workDir = mkdtempSync(join(os.tmpdir(), 'sockproxy-bench-'));
  const load = loadGenerator(pinning.load, workDir, args.load);
  const machine = {
    nproc: os.availableParallelism(),
    cpu: cpuModel(),
    node: process.version,
    nginx: nginxVersion(nginxBinary) ?? 'not installed',
    loadGenerator: load.name === 'wrk' ? ((await wrkVersion())?.split(' [')[0] ?? 'wrk') : 'autocannon',
    kernel: `${os.type()} ${os.release()}`,
    pinning:
      pinning.server === undefined
        ? 'none (taskset missing or a single core): servers and load generator share the CPUs'
        : `servers (upstream + contender) on CPU ${pinning.server}, load generator on CPU ${pinning.load}`,
  };
  const settings = {
    mode: smoke ? 'smoke' : 'full',
    reps: Object.fromEntries(scenarios.map((s) => [s.id, repsFor(s)])),
    discardedRounds: Object.fromEntries(scenarios.map((s) => [s.id, discardFor(s)])),
    seconds: Object.fromEntries(scenarios.map((s) => [s.id, secondsFor(s)])),
    warmupSeconds: Object.fromEntries(scenarios.map((s) => [s.id, warmupFor(s)])),
    connections: Object.fromEntries(scenarios.map((s) => [s.id, s.connections])),
  };
  log(`sockproxy bench (${settings.mode}): ${machine.loadGenerator}; ${machine.pinning}`);
  if (nginxBinary === undefined) log('nginx is not installed: its rows are skipped (apt-get install nginx-light adds it)');
  if (scenarios.some((s) => s.connections >= 1000) && openFileLimit() < 4096) {
    log(`only ${openFileLimit()} open files allowed (ulimit -n): the 1,000-client rows will fail; raise the hard limit`);
  }

  const rows: Row[] = [];
  try {
    for (const scenario of scenarios) {
      log(`${scenario.title} (${scenario.method} ${scenario.path}, ${scenario.connections} connections)`);
      // Unpinned, the servers may use every core (the load generator keeps its own pinning).
      rows.push(...(await runScenario(scenario, load, workDir, scenario.allCores ? undefined : pinning.server)));
    }
  } finally {
    if (args.keep) log(`kept ${workDir} (configs, error logs, access log)`);
    else rmSync(workDir, { recursive: true, force: true });
  }
  computeRatios(rows);
  const targets = evaluateTargets(rows, scenarios);
  const elapsedSeconds = (Date.now() - started) / 1000;

  const table = markdownTable(rows, scenarios);
  const unpinned = scenarios.filter((s) => s.allCores).map((s) => s.id);
  const unpinnedNote = unpinned.length === 0 ? '' : ` (except ${unpinned.join(', ')}: servers on every core, sharing them with the load generator)`;
  const targetTable = markdownTargets(targets);
  process.stdout.write(
    (smoke ? '\nSmoke mode: each row ran once, cold, for a second; it checks that every row works, the figures are not measurements.\n' : '') +
      `\n${table}\n\n` +
      `${machine.nproc} × ${machine.cpu}, Node ${machine.node}, ${machine.nginx}, ${machine.loadGenerator}; ${machine.pinning}${unpinnedNote}. ` +
      `Medians of interleaved rounds (${scenarios.map((s) => `${s.id}: ${repsFor(s)} × ${secondsFor(s)} s after ${warmupFor(s)} s of warm-up and ${discardFor(s)} rounds not counted`).join('; ')}); 50 keep-alive connections unless stated. ` +
      `CPU µs/req: the contender process's utime+stime per response (for "upstream direct", the upstream's own). ` +
      `Other load: busy time on the server CPU spent by neither the contender nor the upstream (other processes on a shared machine), % of the run.\n\n` +
      `${targetTable}\n\n`,
  );
  mkdirSync(join(outFile, '..'), { recursive: true });
  writeFileSync(
    outFile,
    `${JSON.stringify({ date: new Date().toISOString(), machine, settings, elapsedSeconds, rows, targets }, null, 2)}\n`,
  );
  const failed = rows.filter((r) => r.error !== undefined);
  log(`wrote ${outFile}; ${rows.length} rows in ${elapsedSeconds.toFixed(0)} s`);
  if (failed.length > 0) {
    log(`${failed.length} row(s) failed: ${failed.map((r) => `${r.scenario}/${r.contender}`).join(', ')}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
