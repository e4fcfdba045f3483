/**
 * The client side of a fault run: requests of mixed methods and sizes, each checked for
 * what the client got, and clients that give up half-way. A response is either complete
 * and correct, or visibly failed; anything else is a violation, described.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { type Agent, errors, request } from 'undici';

export type Outcome =
  /** 200, every byte, the app's sha256 matches the bytes and the request. */
  | 'complete'
  | 'failed_502'
  | 'failed_504'
  /** 200 headers, then the connection ended early and the client saw an error. */
  | 'truncated'
  /** One of our misbehaving clients went away on purpose. */
  | 'client_aborted'
  /** Anything a client must never see: described in the run's violations. */
  | 'violation';

export interface Checked {
  readonly outcome: Outcome;
  /** For a violation: what was wrong. */
  readonly problem?: string;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * A body size from 0 B to 1 MiB, most of them small, as real traffic is: a fifth empty or
 * under 1 KiB, and a tenth between 256 KiB and 1 MiB (past the proxy's 16k request and 64k
 * response memory buffers, so temp files are used).
 */
export function bodySize(random: () => number): number {
  const r = random();
  const between = (low: number, high: number): number => low + Math.floor(random() * (high - low + 1));
  if (r < 0.05) return 0;
  if (r < 0.3) return between(1, KiB);
  if (r < 0.6) return between(KiB, 16 * KiB);
  if (r < 0.8) return between(16 * KiB, 64 * KiB);
  if (r < 0.9) return between(64 * KiB, 256 * KiB);
  return between(256 * KiB, MiB);
}

/** Request bodies are slices of this, at random offsets: no two requests need send the same bytes. */
const BODY_SOURCE = randomBytes(2 * MiB);

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

interface Planned {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT';
  readonly path: string;
  readonly body: Buffer | undefined;
  /** The Content-Length the answer must have, and the bytes of body it carries (none for HEAD). */
  readonly expectedLength: number;
  readonly expectedBytes: number;
  /** The body's sha256, when the client knows it in advance (what it sent to /mirror). */
  readonly expectedSha256: string | undefined;
}

/** GETs of /bytes/N (and a few HEADs), POSTs and PUTs of a body to /mirror, which sends it back. */
export function planRequest(random: () => number): Planned {
  const r = random();
  const size = bodySize(random);
  const get = { path: `/bytes/${size}`, body: undefined, expectedLength: size, expectedSha256: undefined };
  if (r < 0.55) return { ...get, method: 'GET', expectedBytes: size };
  if (r < 0.6) return { ...get, method: 'HEAD', expectedBytes: 0 };
  const offset = Math.floor(random() * (BODY_SOURCE.length - size));
  const body = BODY_SOURCE.subarray(offset, offset + size);
  return { method: r < 0.85 ? 'POST' : 'PUT', path: '/mirror', body, expectedLength: size, expectedBytes: size, expectedSha256: sha256(body) };
}

/**
 * A body read stops because nothing came for this long: the proxy's read_timeout is 60 s
 * and the app answers at once, so a silence this long is a hang, not a slow answer.
 */
const STALL_MS = 20_000;

/** Sends one planned request through `dispatcher` and classifies what came back. */
export async function sendChecked(origin: string, dispatcher: Agent, plan: Planned): Promise<Checked> {
  const what = `${plan.method} ${plan.path}${plan.body === undefined ? '' : ` (${plan.body.length} B body)`}`;
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(`${origin}${plan.path}`, {
      method: plan.method,
      body: plan.body,
      dispatcher,
      headersTimeout: STALL_MS,
      bodyTimeout: STALL_MS,
    });
  } catch (err) {
    // The proxy answers every request it read, with a 502 at worst: a connection that ends
    // with no response at all is a failure the client cannot tell from a network fault.
    return violation(`${what}: no response: ${describe(err)}`);
  }
  const hash = createHash('sha256');
  let received = 0;
  let error: unknown;
  let text = '';
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      received += chunk.length;
      hash.update(chunk);
      if (res.statusCode !== 200 && text.length < 200) text += chunk.toString('latin1');
    }
  } catch (err) {
    error = err;
  }
  const status = res.statusCode;
  if (error instanceof errors.BodyTimeoutError) return violation(`${what}: ${status}, the body stalled after ${received} bytes`);
  if (status === 502 || status === 504) {
    // HEAD: the status and headers only (RFC 9110 §9.3.2).
    const bodyOk = plan.method === 'HEAD' ? received === 0 : text.startsWith(`${status} `);
    if (error === undefined && !bodyOk) return violation(`${what}: ${status} without the proxy's error body: ${text}`);
    return { outcome: status === 502 ? 'failed_502' : 'failed_504' };
  }
  if (status !== 200) return violation(`${what}: status ${status}: ${text}`);

  const declared = Number(res.headers['content-length']);
  const appSha256 = res.headers['x-body-sha256'];
  if (declared !== plan.expectedLength) {
    return violation(`${what}: 200 with content-length ${String(res.headers['content-length'])}, the request asked for ${plan.expectedLength}`);
  }
  if (error !== undefined) {
    // A truncated body is a visible failure only if it is short and the client knew it.
    if (received < plan.expectedBytes) return { outcome: 'truncated' };
    return violation(`${what}: the whole body (${received} B) arrived and yet the client got an error: ${describe(error)}`);
  }
  if (received !== plan.expectedBytes) return violation(`${what}: 200 "complete" with ${received} of ${plan.expectedBytes} bytes`);
  if (plan.method === 'HEAD') return { outcome: 'complete' };
  const got = hash.digest('hex');
  if (appSha256 !== got) return violation(`${what}: 200 complete, but the body's sha256 ${got} is not the app's ${String(appSha256)}`);
  if (plan.expectedSha256 !== undefined && got !== plan.expectedSha256) {
    return violation(`${what}: 200 complete, but the body sent back is not the body sent`);
  }
  return { outcome: 'complete' };
}

export type AbortPoint = 'request_headers' | 'request_body' | 'response';

/**
 * A client that goes away on purpose, on a connection of its own (raw TCP, since an HTTP
 * client will not stop half-way through a request head): during the request head, during
 * the request body, or once the response has begun (sometimes after not reading for a
 * while, so that the proxy holds part of it). Half of them close (FIN), half reset (RST).
 */
export async function abortingClient(port: number, point: AbortPoint, random: () => number): Promise<Checked> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {
    // A reset by the proxy is fine here: this client is leaving anyway.
  });
  const connected = await new Promise<boolean>((resolve) => {
    socket.once('connect', () => resolve(true));
    socket.once('error', () => resolve(false));
  });
  if (!connected) return violation(`an aborting client (${point}) could not even connect to the proxy`);
  const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  const leave = (): void => {
    if (random() < 0.5) socket.resetAndDestroy();
    else socket.destroy();
  };
  const size = Math.max(1, bodySize(random));
  if (point === 'request_headers') {
    const head = `GET /bytes/${size} HTTP/1.1\r\nHost: stress.test\r\nUser-Agent: aborting-client\r\nAccept: */*\r\n\r\n`;
    socket.write(head.slice(0, 1 + Math.floor(random() * (head.length - 2))));
    await wait(random() * 20);
    leave();
    return { outcome: 'client_aborted' };
  }
  if (point === 'request_body') {
    const offset = Math.floor(random() * (BODY_SOURCE.length - size));
    socket.write(`POST /mirror HTTP/1.1\r\nHost: stress.test\r\nContent-Length: ${size}\r\n\r\n`);
    socket.write(BODY_SOURCE.subarray(offset, offset + Math.floor(random() * size)));
    await wait(random() * 20);
    leave();
    return { outcome: 'client_aborted' };
  }
  // During the response: a body large enough to be still on its way.
  const total = 64 * KiB + Math.floor(random() * MiB);
  socket.write(`GET /bytes/${total} HTTP/1.1\r\nHost: stress.test\r\n\r\n`);
  const began = await new Promise<'data' | 'close' | 'stall'>((resolve) => {
    const timer = setTimeout(() => resolve('stall'), STALL_MS);
    for (const event of ['data', 'close'] as const) {
      socket.once(event, () => {
        clearTimeout(timer);
        resolve(event);
      });
    }
  });
  if (began !== 'data') {
    socket.destroy();
    return violation(`GET /bytes/${total}: ${began === 'close' ? 'the connection closed with no response' : 'no response'} (a client that meant to leave mid-response)`);
  }
  if (random() < 0.5) {
    // Stop reading for a while: the proxy keeps what the app sends meanwhile.
    socket.pause();
    await wait(random() * 50);
  }
  leave();
  return { outcome: 'client_aborted' };
}

function violation(problem: string): Checked {
  return { outcome: 'violation', problem };
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return `${e.code ?? 'error'}: ${e.message ?? String(err)}`;
}
