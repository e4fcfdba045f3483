/**
 * The load generators: wrk when installed (`apt-get install wrk`: C, one thread drives
 * far more than one proxy core can serve), else autocannon (a devDependency, in a child
 * process of its own). Either runs pinned to the load core, with keep-alive connections.
 */
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pinned, which } from './util.js';

export interface LoadSpec {
  readonly port: number;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** Request body size (POST), 0 for none. */
  readonly bodyBytes: number;
  readonly connections: number;
  readonly seconds: number;
}

export interface LoadResult {
  /** Responses completed. */
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Socket errors, timeouts and non-2xx/3xx responses. */
  readonly errors: number;
  readonly errorDetail: string;
}

export interface LoadGenerator {
  readonly name: string;
  run(spec: LoadSpec): Promise<LoadResult>;
}

/** wrk's report, as one JSON line from the script's done() (wrk's own text is for people). */
const WRK_SCRIPT = `
local method = os.getenv("BENCH_METHOD") or "GET"
local size = tonumber(os.getenv("BENCH_BODY_BYTES") or "0")
wrk.method = method
if size > 0 then
  wrk.body = string.rep("x", size)
  wrk.headers["Content-Type"] = "application/octet-stream"
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,"p50_us":%.0f,"p99_us":%.0f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

export function wrkGenerator(wrk: string, cpus: string | undefined, workDir: string): LoadGenerator {
  const script = join(workDir, 'bench.lua');
  writeFileSync(script, WRK_SCRIPT);
  return {
    name: 'wrk',
    async run(spec) {
      const [command, args] = pinned(cpus, wrk, [
        '-t1',
        `-c${spec.connections}`,
        `-d${spec.seconds}s`,
        '--timeout',
        '10s',
        '-s',
        script,
        `http://127.0.0.1:${spec.port}${spec.path}`,
      ]);
      const env = { ...process.env, BENCH_METHOD: spec.method, BENCH_BODY_BYTES: String(spec.bodyBytes) };
      const stdout = await run(command, args, env, (spec.seconds + 30) * 1000);
      const line = stdout.split('\n').find((l) => l.startsWith('BENCH_JSON '));
      if (line === undefined) throw new Error(`wrk printed no summary:\n${stdout}`);
      const r = JSON.parse(line.slice('BENCH_JSON '.length)) as Record<string, number>;
      const seconds = r.duration_us! / 1e6;
      const parts = (['connect', 'read', 'write', 'status', 'timeout'] as const).filter((k) => r[k]! > 0);
      return {
        requests: r.requests!,
        seconds,
        rps: r.requests! / seconds,
        p50Ms: r.p50_us! / 1000,
        p99Ms: r.p99_us! / 1000,
        errors: parts.reduce((sum, k) => sum + r[k]!, 0),
        errorDetail: parts.map((k) => `${k} ${r[k]}`).join(', '),
      };
    },
  };
}

export function autocannonGenerator(cpus: string | undefined, workDir: string): LoadGenerator {
  const cli = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
  const bodies = new Map<number, string>();
  const bodyFile = (bytes: number): string => {
    let file = bodies.get(bytes);
    if (file === undefined) {
      file = join(workDir, `body-${bytes}`);
      writeFileSync(file, Buffer.alloc(bytes, 'x'));
      bodies.set(bytes, file);
    }
    return file;
  };
  return {
    name: 'autocannon',
    async run(spec) {
      const argv = [cli, '-j', '-c', String(spec.connections), '-d', String(spec.seconds), '-t', '10', '-m', spec.method];
      if (spec.bodyBytes > 0) argv.push('-i', bodyFile(spec.bodyBytes), '-H', 'content-type=application/octet-stream');
      argv.push(`http://127.0.0.1:${spec.port}${spec.path}`);
      const [command, args] = pinned(cpus, process.execPath, argv);
      const stdout = await run(command, args, process.env, (spec.seconds + 30) * 1000);
      const r = JSON.parse(stdout) as {
        requests: { total: number };
        duration: number;
        latency: { p50: number; p99: number };
        errors: number;
        timeouts: number;
        non2xx: number;
      };
      const errors = r.errors + r.non2xx;
      const detail = [
        r.errors > 0 ? `errors ${r.errors} (timeouts ${r.timeouts})` : '',
        r.non2xx > 0 ? `non-2xx ${r.non2xx}` : '',
      ].filter(Boolean);
      // autocannon counts the 2xx responses in requests.total, errors aside.
      return {
        requests: r.requests.total,
        seconds: r.duration,
        rps: r.requests.total / r.duration,
        p50Ms: r.latency.p50,
        p99Ms: r.latency.p99,
        errors,
        errorDetail: detail.join(', '),
      };
    },
  };
}

/** wrk if installed, else autocannon; `prefer` forces one. */
export function loadGenerator(cpus: string | undefined, workDir: string, prefer?: string): LoadGenerator {
  const wrk = which('wrk');
  if (prefer === 'wrk' && wrk === undefined) throw new Error('wrk is not installed (apt-get install wrk)');
  return wrk === undefined || prefer === 'autocannon' ? autocannonGenerator(cpus, workDir) : wrkGenerator(wrk, cpus, workDir);
}

/** `wrk -v` prints its version on the first line (and exits 1). */
export function wrkVersion(): Promise<string | undefined> {
  const wrk = which('wrk');
  if (wrk === undefined) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const child = spawn(wrk, ['-v'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', () => resolve(out.split('\n')[0]?.trim() || 'wrk'));
    child.on('error', () => resolve(undefined));
  });
}
