/**
 * `npm run bench:profile`: sockproxy (default settings, access log off) under the bench's
 * loads, each scenario in a fresh process run with `node --cpu-prof`, and the top
 * self-time functions of each. For whoever optimises the hot path. The proxy runs alone
 * on CPU 0, the upstream and the load generator on CPU 1.
 *
 * Caveat when reading it: libuv's threadpool (fs.promises: temp files) runs on the same
 * core, and its work shows up as self time of the native call that woke it (open, close,
 * write, read), because the sampled main thread is preempted right there.
 *
 *   npm run bench:profile [-- --seconds 10 --only get-13]
 *
 * Markdown on stdout (also test/bench/results/profile.md); the .cpuprofile files stay in
 * test/bench/results/profiles/ for Chrome DevTools (Performance > Load profile).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { markdownSummary, summarise } from './lib/cpuprofile.js';
import { sockproxy } from './lib/contenders.js';
import { loadGenerator, type LoadSpec } from './lib/load.js';
import { startUpstream } from './lib/upstream-process.js';
import { detectPinning, log, ROOT, stopChild } from './lib/util.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    only: { type: 'string' },
    top: { type: 'string', default: '15' },
    yaml: { type: 'string' },
  },
});

const SCENARIOS = [
  { id: 'get-13', title: 'GET 13 B', method: 'GET', path: '/', bodyBytes: 0 },
  { id: 'get-16k', title: 'GET 16 KiB', method: 'GET', path: '/16k', bodyBytes: 0 },
  { id: 'post-64k', title: 'POST 64 KiB', method: 'POST', path: '/echo', bodyBytes: 64 * 1024 },
] as const;

async function main(): Promise<void> {
  const only = args.only?.split(',');
  const scenarios = SCENARIOS.filter((s) => only === undefined || only.includes(s.id));
  const pinning = detectPinning();
  const workDir = mkdtempSync(join(os.tmpdir(), 'sockproxy-profile-'));
  const outDir = join(ROOT, 'test/bench/results/profiles');
  mkdirSync(outDir, { recursive: true });
  const load = loadGenerator(pinning.load, workDir);
  const sections: string[] = [];
  try {
    for (const scenario of scenarios) {
      log(`${scenario.title}: profiling sockproxy for ${args.seconds} s after ${args.warmup} s warm-up`);
      const profDir = join(workDir, scenario.id);
      const socketPath = join(workDir, 'app.sock');
      // Unlike the bench, the proxy gets a core to itself (the upstream shares the load
      // generator's): V8 samples the main thread by wall clock, so time the proxy spent
      // preempted by a process on its core would be charged to whatever it was running.
      const upstream = await startUpstream(socketPath, pinning.load);
      const contender = sockproxy('sockproxy', 'sockproxy → unix', () => ({
        nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
        ...(args.yaml === undefined ? {} : { yaml: args.yaml }),
      }));
      const running = await contender.start({
        workDir,
        socketPath,
        upstreamPort: upstream.port,
        upstreamPid: upstream.child.pid!,
        serverCpus: pinning.server,
      });
      const spec = (seconds: number): LoadSpec => ({
        port: running.port,
        method: scenario.method,
        path: scenario.path,
        bodyBytes: scenario.bodyBytes,
        connections: 50,
        seconds,
      });
      try {
        if (Number(args.warmup) > 0) await load.run(spec(Number(args.warmup)));
        const result = await load.run(spec(Number(args.seconds)));
        log(`  ${Math.round(result.rps)} req/s, ${result.errors} errors`);
      } finally {
        // SIGTERM: sockproxy stops gracefully and exits, and node writes the profile then.
        await running.stop();
        await stopChild(upstream.child);
      }
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (file === undefined) throw new Error(`no .cpuprofile in ${profDir}`);
      const kept = join(outDir, `${scenario.id}.cpuprofile`);
      copyFileSync(join(profDir, file), kept);
      sections.push(markdownSummary(`${scenario.title} (${scenario.method} ${scenario.path})`, summarise(kept, ROOT, Number(args.top))));
    }
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
  const text = sections.join('\n');
  process.stdout.write(`${text}\n`);
  writeFileSync(join(ROOT, 'test/bench/results/profile.md'), `${text}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:profile: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
