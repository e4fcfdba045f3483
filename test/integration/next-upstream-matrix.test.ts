import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { makeStaleSocket } from '../helpers/app-sockets.js';
import { useProxyFixture } from '../helpers/fixture.js';
import {
  conflictingLengthsUpstream,
  invalidHeaderUpstream,
  lengthAndChunkedUpstream,
  partialBodyUpstream,
  slowUpstream,
  statusUpstream,
} from '../helpers/misbehaving-upstreams.js';
import { unacceptingUnixListener } from '../helpers/unaccepting-listener.js';
import { closingUpstream, hangingUpstream } from '../helpers/upstreams.js';

/**
 * nginx's next_upstream matrix (nginx-semantics §1.3–1.8), one row per rule: which
 * failures move a request to the next server, which status and body the client gets, and
 * how many requests every server saw. Each row gets a fresh proxy, so round robin starts
 * at the first server listed (a, then b, then c).
 */

/** How one upstream server behaves. */
type Behaviour =
  /** 200 "ok NAME\n". */
  | 'ok'
  /** No socket file at the address (ENOENT). */
  | 'missing'
  /** A socket file nobody listens on (ECONNREFUSED). */
  | 'stale'
  /** A listener whose queue is full (EAGAIN on a Unix socket). */
  | 'full'
  /** Accepts, reads the request, closes without answering. */
  | 'close'
  /** Accepts, reads the request, never answers. */
  | 'hang'
  /** A header line without a colon. */
  | 'invalid-header'
  /** Content-Length and Transfer-Encoding: chunked together. */
  | 'length+chunked'
  /** Two Content-Length lines that disagree. */
  | 'conflicting-lengths'
  /** Headers with Content-Length 1000, then PARTIAL, then the connection is destroyed. */
  | 'partial-body'
  /** Answers STATUS with "NAME says STATUS\n". */
  | { readonly status: number }
  /** Reads the request, waits `slow` ms, then answers `status` (default 200) with "NAME says STATUS\n". */
  | { readonly slow: number; readonly status?: number };

type Reply =
  /** The body an upstream sent, passed through byte for byte. */
  | string
  /** The proxy's own error page for this status (src/forward/exchange.ts). */
  | { readonly page: 502 | 504 }
  /** The proxy's "no live upstreams" page. */
  | { readonly page: 'no_live' }
  /** Headers went out, then the body stopped short: a prefix of PARTIAL and a client-side error. */
  | 'truncated';

interface Row {
  readonly rule: string;
  readonly servers: readonly Behaviour[];
  /** server-line parameters, by position ("" for none). */
  readonly params?: readonly string[];
  /** `proxy:` settings for this row, on top of DEFAULT_PROXY. */
  readonly proxy?: Readonly<Record<string, string>>;
  readonly method?: string;
  /** Requests sent before the one the row is about, each expected to answer `status`. */
  readonly before?: { readonly count: number; readonly status: number };
  /** What the client gets. */
  readonly status: number;
  readonly reply: Reply;
  /** Requests (or, for raw servers, connections) each server saw, in server order, after all requests. */
  readonly seen: readonly number[];
  /** The access log's $upstream_status for the request the row is about. */
  readonly upstreamStatus?: string;
  /** The access log's $upstream_addr, when it is not simply the servers tried. */
  readonly upstreamAddr?: string;
}

/** A safety net so a row that hangs fails in seconds, not at the test timeout. */
const DEFAULT_PROXY: Readonly<Record<string, string>> = { read_timeout: '5s' };
// undici's coarse timers make a 300ms read_timeout fire after about 1 s; the rows only need it short.
const SHORT_READ = { read_timeout: '300ms' };
const PARTIAL = 'the first bytes of a longer body';

const ERROR_TEXT = {
  502: 'Bad Gateway: the upstream server could not be reached or sent no valid response',
  504: 'Gateway Timeout: the upstream server did not answer in time',
  no_live: 'Bad Gateway: no upstream server is available',
} as const;

const says = (name: string, status: number): string => `${name} says ${status}\n`;

const LISTABLE_STATUSES = [500, 502, 503, 504, 403, 404, 429] as const;

const ROWS: readonly Row[] = [
  // --- error: connect failures (nothing sent, so even a POST moves on) -------------------
  {
    rule: 'error: missing socket file → next server',
    servers: ['missing', 'ok'],
    status: 200,
    reply: 'ok b\n',
    seen: [0, 1],
    upstreamStatus: '502, 200',
  },
  {
    rule: 'error: stale socket file (ECONNREFUSED) → next server',
    servers: ['stale', 'ok'],
    status: 200,
    reply: 'ok b\n',
    seen: [0, 1],
    upstreamStatus: '502, 200',
  },
  {
    rule: 'error: full backlog (EAGAIN) → next server',
    servers: ['full', 'ok'],
    status: 200,
    reply: 'ok b\n',
    seen: [0, 1],
    upstreamStatus: '502, 200',
  },
  {
    rule: 'error: connect failure (missing socket), POST → next server: nothing was sent',
    servers: ['missing', 'ok'],
    method: 'POST',
    status: 200,
    reply: 'ok b\n',
    seen: [0, 1],
    upstreamStatus: '502, 200',
  },
  // --- error: accepted, then closed before any answer (the request was sent) ------------
  ...['GET', 'PUT', 'DELETE'].map(
    (method): Row => ({
      rule: `error: accept-then-close, ${method} → next server`,
      servers: ['close', 'ok'],
      method,
      status: 200,
      reply: 'ok b\n',
      seen: [1, 1],
      upstreamStatus: '502, 200',
    }),
  ),
  ...['POST', 'PATCH'].map(
    (method): Row => ({
      rule: `error: accept-then-close, ${method} → 502, not retried without non_idempotent`,
      servers: ['close', 'ok'],
      method,
      status: 502,
      reply: { page: 502 },
      seen: [1, 0],
      upstreamStatus: '502',
    }),
  ),
  {
    rule: 'error: accept-then-close, POST with non_idempotent → next server',
    servers: ['close', 'ok'],
    method: 'POST',
    proxy: { next_upstream: 'error timeout non_idempotent' },
    status: 200,
    reply: 'ok b\n',
    seen: [1, 1],
    upstreamStatus: '502, 200',
  },
  // --- timeout -------------------------------------------------------------------------
  {
    rule: 'timeout: hang past read_timeout, GET → next server',
    servers: ['hang', 'ok'],
    proxy: SHORT_READ,
    status: 200,
    reply: 'ok b\n',
    seen: [1, 1],
    upstreamStatus: '504, 200',
  },
  {
    rule: 'timeout: slow headers past read_timeout → next server',
    servers: [{ slow: 3_000 }, 'ok'],
    proxy: SHORT_READ,
    status: 200,
    reply: 'ok b\n',
    seen: [1, 1],
    upstreamStatus: '504, 200',
  },
  {
    rule: 'timeout: slow headers within read_timeout → the slow server answers',
    servers: [{ slow: 100 }, 'ok'],
    proxy: { read_timeout: '2s' },
    status: 200,
    reply: says('a', 200),
    seen: [1, 0],
    upstreamStatus: '200',
  },
  {
    rule: 'timeout: the last server hangs too → 504',
    servers: ['hang', 'hang'],
    proxy: SHORT_READ,
    status: 504,
    reply: { page: 504 },
    seen: [1, 1],
    upstreamStatus: '504, 504',
  },
  {
    rule: 'timeout: next_upstream "error" (no timeout) + hang → 504, no second attempt',
    servers: ['hang', 'ok'],
    proxy: { ...SHORT_READ, next_upstream: 'error' },
    status: 504,
    reply: { page: 504 },
    seen: [1, 0],
    upstreamStatus: '504',
  },
  {
    rule: 'timeout: POST hang past read_timeout → 504, not retried without non_idempotent',
    servers: ['hang', 'ok'],
    method: 'POST',
    proxy: SHORT_READ,
    status: 504,
    reply: { page: 504 },
    seen: [1, 0],
    upstreamStatus: '504',
  },
  // --- invalid_header --------------------------------------------------------------------
  ...(
    [
      ['an invalid header line', 'invalid-header'],
      ['Content-Length with Transfer-Encoding', 'length+chunked'],
      ['conflicting duplicate Content-Length', 'conflicting-lengths'],
    ] as const
  ).flatMap(([what, behaviour]): Row[] => [
    {
      rule: `invalid_header: ${what}, invalid_header listed → next server`,
      servers: [behaviour, 'ok'],
      proxy: { next_upstream: 'error timeout invalid_header' },
      status: 200,
      reply: 'ok b\n',
      seen: [1, 1],
      upstreamStatus: '502, 200',
    },
    {
      // Not in the default "error timeout": one attempt, 502.
      rule: `invalid_header: ${what}, default next_upstream → 502, one attempt`,
      servers: [behaviour, 'ok'],
      status: 502,
      reply: { page: 502 },
      seen: [1, 0],
      upstreamStatus: '502',
    },
  ]),
  {
    rule: 'invalid_header: listed, but a POST was sent → 502 without non_idempotent',
    servers: ['invalid-header', 'ok'],
    method: 'POST',
    proxy: { next_upstream: 'error timeout invalid_header' },
    status: 502,
    reply: { page: 502 },
    seen: [1, 0],
    upstreamStatus: '502',
  },
  {
    rule: 'invalid_header: the last server sends an invalid header too → 502',
    servers: ['invalid-header', 'invalid-header'],
    proxy: { next_upstream: 'error timeout invalid_header' },
    status: 502,
    reply: { page: 502 },
    seen: [1, 1],
    upstreamStatus: '502, 502',
  },
  // --- listed and unlisted statuses ------------------------------------------------------
  ...LISTABLE_STATUSES.flatMap((status): Row[] => [
    {
      rule: `http_${status} listed → next server`,
      servers: [{ status }, 'ok'],
      proxy: { next_upstream: `error timeout http_${status}` },
      status: 200,
      reply: 'ok b\n',
      seen: [1, 1],
      upstreamStatus: `${status}, 200`,
    },
    {
      rule: `http_${status} listed, every server answers it → the last server's own ${status} and body`,
      servers: [{ status }, { status }],
      proxy: { next_upstream: `error timeout http_${status}` },
      status,
      reply: says('b', status),
      seen: [1, 1],
      upstreamStatus: `${status}, ${status}`,
    },
    {
      rule: `${status} not listed → passed through as is, one attempt`,
      servers: [{ status }, 'ok'],
      status,
      reply: says('a', status),
      seen: [1, 0],
      upstreamStatus: String(status),
    },
  ]),
  {
    rule: 'http_502 listed, three servers: a and b answer 502, c serves',
    servers: [{ status: 502 }, { status: 502 }, 'ok'],
    proxy: { next_upstream: 'error timeout http_502' },
    status: 200,
    reply: 'ok c\n',
    seen: [1, 1, 1],
    upstreamStatus: '502, 502, 200',
  },
  {
    rule: 'http_503 listed, but a POST: statuses are retried only with non_idempotent',
    servers: [{ status: 503 }, 'ok'],
    method: 'POST',
    proxy: { next_upstream: 'error timeout http_503' },
    status: 503,
    reply: says('a', 503),
    seen: [1, 0],
    upstreamStatus: '503',
  },
  // --- failure accounting (max_fails=1 fail_timeout=30s on a) ----------------------------
  ...([403, 404] as const).map(
    (status): Row => ({
      rule: `counting: http_${status} listed does not count against the server, it keeps getting requests`,
      servers: [{ status }, 'ok'],
      params: ['max_fails=1 fail_timeout=30s', ''],
      proxy: { next_upstream: `error timeout http_${status}` },
      before: { count: 3, status: 200 },
      status: 200,
      reply: 'ok b\n',
      // Round robin over a, b: requests 1 and 3 start on a and move to b; 2 and 4 go to b.
      seen: [2, 4],
    }),
  ),
  {
    rule: 'counting: http_500 listed counts: the server is skipped for fail_timeout after one',
    servers: [{ status: 500 }, 'ok'],
    params: ['max_fails=1 fail_timeout=30s', ''],
    proxy: { next_upstream: 'error timeout http_500' },
    before: { count: 3, status: 200 },
    status: 200,
    reply: 'ok b\n',
    seen: [1, 4],
    upstreamStatus: '200',
  },
  // --- next_upstream_tries / next_upstream_timeout ---------------------------------------
  {
    rule: 'next_upstream_tries 2, three failing servers → exactly 2 attempts',
    servers: ['close', 'close', 'close'],
    proxy: { next_upstream_tries: '2' },
    status: 502,
    reply: { page: 502 },
    seen: [1, 1, 0],
    upstreamStatus: '502, 502',
  },
  {
    rule: 'next_upstream_tries unlimited, three failing servers → 3 attempts',
    servers: ['close', 'close', 'close'],
    status: 502,
    reply: { page: 502 },
    seen: [1, 1, 1],
    upstreamStatus: '502, 502, 502',
  },
  {
    rule: 'next_upstream_timeout 200ms, first server times out after 300ms → 504, no second attempt',
    servers: ['hang', 'ok'],
    proxy: { ...SHORT_READ, next_upstream_timeout: '200ms' },
    status: 504,
    reply: { page: 504 },
    seen: [1, 0],
    upstreamStatus: '504',
  },
  {
    rule: 'next_upstream_timeout 200ms, a listed 503 after 300ms → passed through, no second attempt',
    servers: [{ slow: 300, status: 503 }, 'ok'],
    proxy: { next_upstream: 'error timeout http_503', next_upstream_timeout: '200ms' },
    status: 503,
    reply: says('a', 503),
    seen: [1, 0],
    upstreamStatus: '503',
  },
  {
    rule: 'next_upstream_timeout 5s, first server times out after 300ms → next server',
    servers: ['hang', 'ok'],
    proxy: { ...SHORT_READ, next_upstream_timeout: '5s' },
    status: 200,
    reply: 'ok b\n',
    seen: [1, 1],
    upstreamStatus: '504, 200',
  },
  // --- off -------------------------------------------------------------------------------
  {
    rule: 'off: an error is final',
    servers: ['close', 'ok'],
    proxy: { next_upstream: 'off' },
    status: 502,
    reply: { page: 502 },
    seen: [1, 0],
    upstreamStatus: '502',
  },
  {
    rule: 'off: a connect failure is final',
    servers: ['missing', 'ok'],
    proxy: { next_upstream: 'off' },
    status: 502,
    reply: { page: 502 },
    seen: [0, 0],
    upstreamStatus: '502',
  },
  // --- the status of the last failure ------------------------------------------------------
  {
    rule: 'last failure decides: timeout then error → 502',
    servers: ['hang', 'close'],
    proxy: SHORT_READ,
    status: 502,
    reply: { page: 502 },
    seen: [1, 1],
    upstreamStatus: '504, 502',
  },
  {
    rule: 'last failure decides: error then timeout → 504',
    servers: ['close', 'hang'],
    proxy: SHORT_READ,
    status: 504,
    reply: { page: 504 },
    seen: [1, 1],
    upstreamStatus: '502, 504',
  },
  {
    rule: 'no live upstreams → 502 without connecting anywhere',
    servers: ['close', 'close'],
    params: ['fail_timeout=30s', 'fail_timeout=30s'],
    before: { count: 1, status: 502 },
    status: 502,
    reply: { page: 'no_live' },
    // The one connection each is from the request before; the row's request made none.
    seen: [1, 1],
    upstreamStatus: '502',
    upstreamAddr: 'backend',
  },
  // --- after the response headers ----------------------------------------------------------
  {
    rule: 'mid-body failure: never retried, the client sees the truncation',
    servers: ['partial-body', 'ok'],
    proxy: { next_upstream: 'error timeout invalid_header non_idempotent' },
    status: 200,
    reply: 'truncated',
    seen: [1, 0],
    upstreamStatus: '200',
  },
];

describe('the next_upstream matrix', () => {
  const fx = useProxyFixture();

  interface Server {
    readonly address: string;
    /** Requests it saw; for servers that count connections, connections. */
    seen(): number;
  }

  async function server(behaviour: Behaviour, name: string): Promise<Server> {
    const path = fx.tmp.path(`${name}.sock`);
    const requestsOf = (up: { requests: unknown[] }) => () => up.requests.length;
    if (typeof behaviour === 'object') {
      const status = behaviour.status ?? 200;
      const up = fx.track(
        'slow' in behaviour
          ? await slowUpstream(path, behaviour.slow, status, says(name, status))
          : await statusUpstream(path, status, says(name, status)),
      );
      return { address: up.address, seen: requestsOf(up) };
    }
    switch (behaviour) {
      case 'ok': {
        const up = await fx.ok(name);
        return { address: up.address, seen: requestsOf(up) };
      }
      case 'missing':
        // Nothing there to see a request.
        return { address: `unix:${path}`, seen: () => 0 };
      case 'stale':
        await makeStaleSocket(path);
        return { address: `unix:${path}`, seen: () => 0 };
      case 'full': {
        const listener = await unacceptingUnixListener(path);
        fx.onCleanup(() => listener.stop());
        await listener.fill();
        // It never accepts: nothing can reach it.
        return { address: listener.address, seen: () => 0 };
      }
      case 'close': {
        const up = fx.track(await closingUpstream(path));
        return { address: up.address, seen: up.connections };
      }
      case 'hang': {
        const up = fx.track(await hangingUpstream(path));
        return { address: up.address, seen: requestsOf(up) };
      }
      case 'invalid-header':
      case 'length+chunked':
      case 'conflicting-lengths':
      case 'partial-body': {
        const make = {
          'invalid-header': invalidHeaderUpstream,
          'length+chunked': lengthAndChunkedUpstream,
          'conflicting-lengths': conflictingLengthsUpstream,
          'partial-body': (p: string) => partialBodyUpstream(p, 1_000, PARTIAL),
        }[behaviour];
        const up = fx.track(await make(path));
        return { address: up.address, seen: up.connections };
      }
    }
  }

  async function send(method: string, requestId: string) {
    const body = method === 'GET' || method === 'DELETE' ? undefined : `${method} body`;
    const res = await request(`${fx.proxy!.url}/matrix`, { method, body, headers: { 'x-request-id': requestId } });
    let text = '';
    let error: unknown;
    try {
      for await (const chunk of res.body) text += (chunk as Buffer).toString('latin1');
    } catch (err) {
      error = err;
    }
    return { status: res.statusCode, headers: res.headers, text, error };
  }

  function yamlProxy(settings: Readonly<Record<string, string>>): string {
    return `proxy:\n${Object.entries(settings)
      .map(([key, value]) => `  ${key}: ${JSON.stringify(value)}\n`)
      .join('')}`;
  }

  it.each(ROWS.map((row, index) => ({ ...row, index })))('$rule', async (row) => {
    const names = ['a', 'b', 'c'];
    const servers: Server[] = [];
    for (const [i, behaviour] of row.servers.entries()) servers.push(await server(behaviour, names[i]!));
    await fx.start(
      servers.map((s, i) => `${s.address}${row.params?.[i] ? ` ${row.params[i]}` : ''}`),
      yamlProxy({ ...DEFAULT_PROXY, ...row.proxy }),
    );
    const method = row.method ?? 'GET';

    for (let n = 0; n < (row.before?.count ?? 0); n++) {
      const before = await send(method, `matrix-${row.index}-before-${n}`);
      expect(before.status, `request ${n + 1} before the row's own`).toBe(row.before!.status);
    }

    const requestId = `matrix-${row.index}`;
    const res = await send(method, requestId);
    expect(res.status).toBe(row.status);
    if (row.reply === 'truncated') {
      expect(res.error, 'the client must notice the body stopped short').toBeDefined();
      expect(PARTIAL.startsWith(res.text), `received ${JSON.stringify(res.text)}`).toBe(true);
      expect(res.headers['content-length']).toBe('1000');
    } else if (typeof res.error !== 'undefined') {
      throw res.error;
    } else if (typeof row.reply === 'string') {
      expect(res.text).toBe(row.reply);
    } else {
      expect(res.headers['x-request-id']).toBe(requestId);
      expect(res.text).toBe(`${row.reply.page === 'no_live' ? 502 : row.reply.page} ${ERROR_TEXT[row.reply.page]}\nrequest_id: ${requestId}\n`);
    }
    expect(servers.map((s) => s.seen())).toEqual(row.seen);

    if (row.upstreamStatus !== undefined || row.upstreamAddr !== undefined) {
      const access = await fx.proxy!.waitForLog((line) => line.request_id === requestId && 'status' in line);
      expect(access.status).toBe(row.status);
      if (row.upstreamStatus !== undefined) expect(access.upstream_status).toBe(row.upstreamStatus);
      if (row.upstreamAddr !== undefined) expect(access.upstream_addr).toBe(row.upstreamAddr);
    }
  });
});
