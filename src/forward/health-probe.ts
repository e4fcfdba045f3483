import { Client } from 'undici';
import type { SocketAddress } from '../config/types.js';
import { type StatusMatch, statusMatches } from '../config/status-match.js';
import { classifyUpstreamError, PHASE_ACTION, type Phase } from './classify.js';

/** What one health check sends. */
export interface ProbeRequest {
  readonly uri: string;
  /** The Host header (see HealthChecks: the upstream name, as nginx's $proxy_host). */
  readonly host: string;
  /** For the whole check: connect, response headers and body. */
  readonly timeoutMs: number;
  readonly status: StatusMatch;
}

export type ProbeResult =
  | { readonly passed: true; readonly status: number }
  | {
      readonly passed: false;
      /** nginx's words for what went wrong, without the "while …" part. */
      readonly message: string;
      /** nginx's "while …" action: "connecting to upstream", "checking status code", … */
      readonly action: string;
      readonly severity: 'crit' | 'error';
    };

/**
 * nginx Plus's match examines "only the first 256k of the response body"; past that the
 * rest is not waited for.
 */
const BODY_READ_LIMIT_BYTES = 256 * 1024;

const TIMED_OUT = 'upstream timed out (110: Connection timed out)';

/**
 * One health check of one server: `GET uri` over undici, on a connection of its own that
 * is closed when the check ends (`Connection: close`, and the client destroyed). A new
 * connection each time, not one kept alive between checks: a kept connection would pass
 * while new ones fail (a removed socket file leaves established connections working, a
 * full accept backlog refuses only new ones), and an app closing its idle keep-alive
 * connections (Gunicorn's 2 s, with a 5 s interval) would make checks fail for nothing.
 * It fails on a connect error, on any error before the response is read, when `timeoutMs`
 * passes first, and on a status outside `status`. `signal` ends it at once (the proxy closes).
 */
export async function probe(address: SocketAddress, name: string, request: ProbeRequest, signal: AbortSignal): Promise<ProbeResult> {
  const client = new Client(address.kind === 'unix' ? 'http://localhost' : `http://${hostPort(address)}`, {
    ...(address.kind === 'unix' ? { socketPath: address.path } : {}),
    // The deadline below covers the whole check; undici's own timeouts never fire first.
    connectTimeout: request.timeoutMs,
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  let phase: Phase = 'connecting';
  client.once('connect', () => {
    if (phase === 'connecting') phase = 'reading_header';
  });
  let timedOut = false;
  const stop = (): void => {
    client.destroy().catch(() => {});
  };
  const deadline = setTimeout(() => {
    timedOut = true;
    stop();
  }, request.timeoutMs);
  signal.addEventListener('abort', stop);
  try {
    const response = await client.request({
      method: 'GET',
      path: request.uri,
      headers: { host: request.host, connection: 'close' },
    });
    phase = 'reading_body';
    let bytes = 0;
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes >= BODY_READ_LIMIT_BYTES) break;
    }
    if (statusMatches(request.status, response.statusCode)) return { passed: true, status: response.statusCode };
    return {
      passed: false,
      message: `upstream sent status ${response.statusCode}, which does not match "${request.status.text}"`,
      action: 'checking status code',
      severity: 'error',
    };
  } catch (error) {
    if (timedOut) return { passed: false, message: TIMED_OUT, action: PHASE_ACTION[phase], severity: 'error' };
    const failure = classifyUpstreamError(error, phase, name);
    return { passed: false, message: failure.message, action: PHASE_ACTION[phase], severity: failure.severity };
  } finally {
    clearTimeout(deadline);
    signal.removeEventListener('abort', stop);
    // The response was read or abandoned: the connection is never reused.
    await client.destroy().catch(() => {});
  }
}

function hostPort(address: { readonly host: string; readonly port: number }): string {
  return `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
}
