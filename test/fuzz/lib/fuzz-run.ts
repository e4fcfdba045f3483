/**
 * A fuzz run (issue 8 §3): mutated requests sent raw to the proxy, one input per
 * connection, each from its own loopback address (127.a.b.c) so that the proxy's access
 * log (remote_addr) and the X-Forwarded-For the upstream receives tie every line and every
 * upstream request to one input. For each input:
 *
 * - the proxy answers or closes within HANG_MS (never a hang), and is still running after
 *   each batch (never a crash);
 * - every request the upstream received (./recording-upstream.ts, a strict parser of its
 *   own) is one the proxy logged as forwarded (same request id, method and URI), and one
 *   that llhttp reads from the input (./reference.ts) with the same body, byte for byte:
 *   nothing smuggled, no body boundary moved;
 * - every request the proxy answered itself got a 4xx (or nginx's 501 for an unknown
 *   Transfer-Encoding, 505 for an unknown HTTP version), and the client got exactly the
 *   statuses the access log shows.
 *
 * With `requestBuffering: 'off'` the body streams to the upstream as it arrives, so a body
 * that goes bad or stops half-way has already partly reached it. There, a request may also
 * reach the upstream incomplete (its connection closed before the body's end), but only
 * one whose body llhttp did not complete either, with a prefix of the body bytes llhttp
 * delivered, and answered with a 4xx; a request logged as forwarded with a 4xx may also
 * not have reached the upstream at all (aborted before a byte went out). With buffering on,
 * an incomplete request at the upstream fails the run.
 *
 * The same code runs `npm run fuzz` (test/fuzz/fuzz.ts) and the suite's short run
 * (test/integration/fuzz.test.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../../helpers/temp.js';
import { parseJson, PROXY_JS } from '../../stress/lib/processes.js';
import { fuzzInput } from './inputs.js';
import { recordingUpstream, type SeenRequest } from './recording-upstream.js';
import { referenceRequests } from './reference.js';

/** Per input: the proxy must have answered and closed by then (its own timeouts, below, are 1 s at most). */
const HANG_MS = 10_000;
/** large_client_header_buffers 4 8k (nginx's default), which the reference parser must share. */
const MAX_HEADER_SIZE = 4 * 8192;
const INPUTS_PER_BATCH = 1_000;

export interface FuzzRunOptions {
  /** A number of generated inputs (from `seed`), or the inputs themselves (the corpus). */
  readonly inputs: number | readonly Buffer[];
  readonly seed: number;
  /** Connections at once. */
  readonly concurrency: number;
  /** proxy.request_buffering: 'on' (the default) or 'off' (bodies stream to the upstream). */
  readonly requestBuffering?: 'on' | 'off';
  readonly progress?: (line: string) => void;
}

export interface FuzzRunReport {
  readonly seed: number;
  readonly requestBuffering: 'on' | 'off';
  readonly inputs: number;
  readonly durationMs: number;
  /** Requests the upstream received, complete or not. */
  readonly forwarded: number;
  /** Of those, requests cut off before their body's end (request buffering off only). */
  readonly forwardedIncomplete: number;
  /** Inputs of which at least one request reached the upstream, and of which none did. */
  readonly inputsForwarded: number;
  readonly inputsRefused: number;
  /** Inputs the proxy closed without answering (nothing complete to answer). */
  readonly inputsClosedSilently: number;
  /** The first few of those, base64, for a person to look at. */
  readonly closedSilentlyExamples: string[];
  /** Access-log lines by status. */
  readonly statuses: Record<string, number>;
  /** Every violation, described, with the input in base64 (the first 50). */
  readonly violations: string[];
  readonly violationCount: number;
  readonly proxyAlive: boolean;
  /** The proxy's non-JSON stderr (a crash's stack trace). */
  readonly proxyOutput: string[];
}

interface AccessLine {
  readonly status: number;
  readonly request_method: string;
  readonly request_uri: string;
  readonly upstream_addr: string;
  readonly request_id: string;
}

/** The loopback address input `index` connects from: 127.1.0.0 onwards, never 127.0.0.1. */
export function clientAddressOf(index: number): string {
  return `127.${1 + (index >>> 16)}.${(index >>> 8) & 255}.${index & 255}`;
}

/** The proxy as a user runs it (dist/proxy.js), its access log kept by client address. */
async function startProxy(dir: string, upstream: string, requestBuffering: 'on' | 'off'): Promise<{ child: ChildProcess; port: number; access: Map<string, AccessLine[]>; accessLines: () => number; output: string[] }> {
  const port = await freePort();
  const file = join(dir, 'proxy.yaml');
  // Short client timeouts: an input cut short (a body or head that never completes) is
  // answered (408) or closed within a second, and a connection left idle after its answers
  // is closed by keepalive_timeout, which is how an input's end is seen.
  writeFileSync(
    file,
    [
      `listen: 127.0.0.1:${port}`,
      'upstream:',
      '  servers:',
      `    - ${upstream}`,
      'http:',
      '  client_header_timeout: 1s',
      '  keepalive_timeout: 300ms',
      '  large_client_header_buffers: 4 8k',
      'proxy:',
      `  temp_path: ${dir}`,
      '  client_body_timeout: 1s',
      `  request_buffering: ${requestBuffering}`,
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, [PROXY_JS, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const access = new Map<string, AccessLine[]>();
  let lines = 0;
  const output: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const entry = parseJson(line) as (AccessLine & { remote_addr?: string }) | undefined;
    if (entry?.remote_addr === undefined) return;
    lines++;
    access.set(entry.remote_addr, [...(access.get(entry.remote_addr) ?? []), entry]);
  });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      const entry = parseJson(line);
      if (entry === undefined && output.length < 50) output.push(line);
      if (String(entry?.msg ?? '').includes('listening on')) resolve();
    });
    child.once('exit', () => reject(new Error(`the proxy exited during start:\n${output.join('\n')}`)));
  });
  return { child, port, access, accessLines: () => lines, output };
}

/** Sends one input on its own connection; resolves with what came back, and whether the proxy closed in time. */
function sendInput(port: number, address: string, input: Buffer): Promise<{ received: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: address });
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    // A reset is a close too: what matters is what arrived before it.
    socket.on('error', () => {});
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ received, closed: false });
    }, HANG_MS);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ received, closed: true });
    });
    socket.on('connect', () => socket.write(input));
  });
}

/** Statuses of the final responses in `text` (a 100 Continue is not one). */
function responseStatuses(text: string): number[] {
  // Each response starts a line: after the previous head (an empty upstream body) or after an error page's text.
  return [...text.matchAll(/(?:^|\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1])).filter((s) => s >= 200);
}

function forwardedLines(logged: readonly AccessLine[]): AccessLine[] {
  return logged.filter((line) => line.upstream_addr !== '-');
}

const requestKey = (method: string, target: string, length: number | string | undefined, sha256: string | undefined): string =>
  JSON.stringify([method, target, length, sha256]);

/** A status the proxy may answer itself: a 4xx, or nginx's 501 (unknown Transfer-Encoding) and 505 (HTTP version). */
const isRefusal = (status: number): boolean => (status >= 400 && status < 500) || status === 501 || status === 505;

/** What is wrong with the proxy's handling of one input; empty if nothing. */
export function judge(
  input: Buffer,
  outcome: { received: string; closed: boolean },
  logged: readonly AccessLine[],
  seen: readonly SeenRequest[],
  requestBuffering: 'on' | 'off' = 'on',
): string[] {
  const problems: string[] = [];
  if (!outcome.closed) problems.push(`the proxy neither answered nor closed the connection within ${HANG_MS} ms`);
  // The proxy's own record of what it forwarded, against what the upstream got. A request
  // the upstream got whole was answered by it (200); one cut off was refused by the proxy.
  const keyOf = (id: string | undefined, method: string, uri: string): string => JSON.stringify([id, method, uri]);
  const unmatched = [...seen];
  for (const line of forwardedLines(logged)) {
    const key = keyOf(line.request_id, line.request_method, line.request_uri);
    const at = unmatched.findIndex((request) => keyOf(request.requestId, request.method, request.target) === key);
    if (at >= 0) {
      const request = unmatched.splice(at, 1)[0]!;
      if (request.complete && line.status !== 200) problems.push(`a request the upstream received whole (and answered 200) was logged with status ${line.status}`);
      if (!request.complete && !isRefusal(line.status)) problems.push(`a request cut off at the upstream was logged with status ${line.status}, not a 4xx`);
    } else if (!(requestBuffering === 'off' && isRefusal(line.status))) {
      // Unbuffered, a request refused while its body was read can have been aborted before a byte went out.
      problems.push(`the proxy logged ${key} as forwarded (${line.status}); the upstream never received it`);
    }
  }
  for (const request of unmatched) problems.push(`the upstream received ${keyOf(request.requestId, request.method, request.target)}, which the proxy never logged as forwarded`);
  // Every request the upstream got is one the input holds, with the same body: the
  // reference's framing. One cut off holds a prefix of a body llhttp did not complete.
  const framed = referenceRequests(input, MAX_HEADER_SIZE);
  const reference = [...framed];
  const describe = (): string => JSON.stringify(reference.map((r) => requestKey(r.method, r.target, r.body?.length ?? `${r.received.length}, incomplete`, r.body?.sha256)));
  for (const request of seen) {
    const at = request.complete
      ? reference.findIndex((r) => requestKey(r.method, r.target, r.body?.length, r.body?.sha256) === requestKey(request.method, request.target, request.bodyLength, request.bodySha256))
      : reference.findIndex(
          (r) => r.body === undefined && r.method === request.method && r.target === request.target && r.received.subarray(0, request.bodyLength).equals(request.partialBody!),
        );
    const key = requestKey(request.method, request.target, request.bodyLength, request.bodySha256);
    if (at >= 0) reference.splice(at, 1);
    else if (request.complete) problems.push(`the upstream received ${key}, which is not a request of the input as llhttp frames it: ${describe()}`);
    else problems.push(`the upstream received ${key} cut off, which is not the start of an incomplete request of the input as llhttp frames it: ${describe()}`);
  }
  for (const line of logged) {
    if (line.upstream_addr === '-' && !isRefusal(line.status)) problems.push(`a refused request was logged with status ${line.status}`);
  }
  // A chunked body that went bad after its head was accepted: nginx's 400 (or the 501 its
  // head already got for a Transfer-Encoding the proxy does not take), never a bare close.
  const badBody = framed.at(-1);
  if (badBody?.bodyRefused) {
    const line = [...logged].reverse().find((l) => l.request_method === badBody.method && l.request_uri === badBody.target);
    if (line !== undefined && line.status !== 400 && line.status !== 501) {
      problems.push(`a request whose chunked body llhttp refused was logged with status ${line.status}, not 400`);
    }
  }
  // What the client got is what the log says it got.
  const statuses = responseStatuses(outcome.received).sort();
  const loggedStatuses = logged.map((line) => line.status).sort();
  if (JSON.stringify(statuses) !== JSON.stringify(loggedStatuses)) {
    problems.push(`the client got statuses ${JSON.stringify(statuses)} where the access log says ${JSON.stringify(loggedStatuses)}`);
  }
  return problems;
}

export async function runFuzz(options: FuzzRunOptions): Promise<FuzzRunReport> {
  const started = Date.now();
  const count = typeof options.inputs === 'number' ? options.inputs : options.inputs.length;
  const inputOf = (index: number): Buffer => (typeof options.inputs === 'number' ? fuzzInput(options.seed, index) : options.inputs[index]!);
  const dir = mkdtempSync(join(os.tmpdir(), 'sockproxy-fuzz-'));
  const requestBuffering = options.requestBuffering ?? 'on';
  const upstream = await recordingUpstream(join(dir, 'app.sock'), { allowIncomplete: requestBuffering === 'off' });
  const proxy = await startProxy(dir, upstream.address, requestBuffering);
  const alive = (): boolean => proxy.child.exitCode === null && proxy.child.signalCode === null;
  const violations: string[] = [];
  let violationCount = 0;
  let inputsForwarded = 0;
  let forwardedIncomplete = 0;
  let inputsRefused = 0;
  let inputsClosedSilently = 0;
  const closedSilentlyExamples: string[] = [];
  const statuses: Record<string, number> = {};
  const fail = (index: number, input: Buffer, problem: string): void => {
    violationCount++;
    if (violations.length < 50) violations.push(`input ${index} (seed ${options.seed}, base64 ${input.toString('base64')}): ${problem}`);
  };
  try {
    for (let batch = 0; batch < count && alive(); batch += INPUTS_PER_BATCH) {
      const indices = Array.from({ length: Math.min(INPUTS_PER_BATCH, count - batch) }, (_, i) => batch + i);
      const outcomes = new Map<number, { received: string; closed: boolean }>();
      let next = 0;
      await Promise.all(
        Array.from({ length: options.concurrency }, async () => {
          while (next < indices.length) {
            const index = indices[next++]!;
            outcomes.set(index, await sendInput(proxy.port, clientAddressOf(index), inputOf(index)));
          }
        }),
      );
      // Every connection is closed; the last access-log lines may still be on their way.
      await settled(proxy.accessLines);
      if (!alive()) {
        fail(batch, inputOf(batch), `the proxy exited (${proxy.child.exitCode ?? proxy.child.signalCode}) during inputs ${batch}–${batch + indices.length - 1}`);
        break;
      }
      for (const index of indices) {
        const address = clientAddressOf(index);
        const logged = proxy.access.get(address) ?? [];
        const seen = upstream.byClient.get(address) ?? [];
        for (const problem of judge(inputOf(index), outcomes.get(index)!, logged, seen, requestBuffering)) fail(index, inputOf(index), problem);
        forwardedIncomplete += seen.filter((request) => !request.complete).length;
        for (const line of logged) statuses[line.status] = (statuses[line.status] ?? 0) + 1;
        if (seen.length > 0) inputsForwarded++;
        else if (logged.length > 0) inputsRefused++;
        else if (inputsClosedSilently++ < 5) closedSilentlyExamples.push(inputOf(index).toString('base64'));
        proxy.access.delete(address);
        upstream.byClient.delete(address);
      }
      options.progress?.(`${batch + indices.length}/${count} inputs, ${violationCount} violations, ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    // Requests the upstream could not tie to an input of this run, or could not parse.
    for (const problem of upstream.violations) fail(-1, Buffer.alloc(0), problem);
    for (const [client, seen] of upstream.byClient) fail(-1, Buffer.alloc(0), `the upstream received ${seen.length} request(s) for client ${client}, which sent no input`);
    return {
      seed: options.seed,
      requestBuffering,
      inputs: count,
      durationMs: Date.now() - started,
      forwarded: upstream.total(),
      forwardedIncomplete,
      inputsForwarded,
      inputsRefused,
      inputsClosedSilently,
      closedSilentlyExamples,
      statuses,
      violations,
      violationCount,
      proxyAlive: alive(),
      proxyOutput: proxy.output,
    };
  } finally {
    proxy.child.kill('SIGKILL');
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Resolves once `count()` has not changed for 200 ms. */
async function settled(count: () => number): Promise<void> {
  for (let last = -1; last !== count(); ) {
    last = count();
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

