import { errors } from 'undici';
import { connectFailure, describeErrno } from '../server/errno.js';
import type { TunnelEnding } from '../tunnel.js';

/**
 * The nginx failure types an upstream attempt can end in (NGX_HTTP_UPSTREAM_FT_*).
 * One classification decides everything else: whether the next server is tried, whether
 * it counts against the server, and which status the client gets.
 */
export type FailureKind = 'error' | 'timeout' | 'invalid_header';

/** How far an attempt got; nginx names it in every error line ("while …"). */
export type Phase = 'connecting' | 'sending' | 'reading_header' | 'reading_body';

export const PHASE_ACTION: Readonly<Record<Phase, string>> = {
  connecting: 'connecting to upstream',
  sending: 'sending request to upstream',
  reading_header: 'reading response header from upstream',
  reading_body: 'reading upstream',
};

export interface UpstreamFailure {
  readonly kind: FailureKind;
  /** nginx's words, without the "while …" part. */
  readonly message: string;
  /** nginx logs connect() errors other than refused/unreachable at [crit] (ngx_event_connect_peer). */
  readonly severity: 'crit' | 'error';
}

const TIMED_OUT = 'upstream timed out (110: Connection timed out)';

/** Maps an undici (or socket) error to nginx's failure type and log wording, by `err.code`. */
export function classifyUpstreamError(error: unknown, phase: Phase, upstream: string): UpstreamFailure {
  const err = error as NodeJS.ErrnoException;
  const code = err?.code ?? '';
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'SOCKPROXY_SEND_TIMEOUT':
      return { kind: 'timeout', message: TIMED_OUT, severity: 'error' };
    case 'SOCKPROXY_INVALID_HEADER':
      return { kind: 'invalid_header', message: 'upstream sent invalid header', severity: 'error' };
    case 'UND_ERR_HEADERS_OVERFLOW':
      return { kind: 'invalid_header', message: 'upstream sent too big header', severity: 'error' };
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      // undici reports any parse error after a Content-Length header this way: before the
      // headers were complete it is a malformed header block (a duplicate or conflicting
      // Content-Length, Content-Length with Transfer-Encoding), nginx's invalid_header.
      if (phase !== 'reading_body') {
        return { kind: 'invalid_header', message: 'upstream sent invalid header', severity: 'error' };
      }
      return { kind: 'error', message: 'upstream prematurely closed connection', severity: 'error' };
    case 'UND_ERR_SOCKET':
      return { kind: 'error', message: 'upstream prematurely closed connection', severity: 'error' };
  }
  // undici 7's HTTPParserError has no usable code (it is built from a lookup that misses),
  // so it is recognised by class. Before the headers are complete a parse error means the
  // header block was malformed (nginx's invalid_header); in the body, broken framing.
  if (err instanceof errors.HTTPParserError) {
    return phase === 'reading_body'
      ? { kind: 'error', message: 'upstream sent invalid chunked response', severity: 'error' }
      : { kind: 'invalid_header', message: 'upstream sent invalid header', severity: 'error' };
  }
  if (phase === 'connecting') return { kind: 'error', ...connectFailure(err, upstream) };
  if (code === 'EPIPE') return { kind: 'error', message: `send() failed (${describeErrno(err)})`, severity: 'error' };
  if (typeof err?.errno === 'number') {
    return { kind: 'error', message: `recv() failed (${describeErrno(err)})`, severity: 'error' };
  }
  return { kind: 'error', message: String(err?.message ?? err), severity: 'error' };
}

/** nginx's log action once the connection is upgraded (ngx_http_upstream_upgrade). */
export const TUNNEL_ACTION = 'proxying upgraded connection';

/**
 * The error-log line for how a tunnel ended, in nginx's words (without the "while …"
 * part), or undefined when there is nothing to report. nginx reports a timeout through
 * the client's connection, at info level, and an upstream's socket error at error level
 * (ngx_http_upstream_process_upgraded, ngx_connection_error).
 */
export function describeTunnelEnding(ending: TunnelEnding): { level: 'error' | 'info'; message: string } | undefined {
  switch (ending.kind) {
    case 'closed':
    case 'shutdown':
      return undefined;
    case 'idle_timeout':
      return { level: 'info', message: TIMED_OUT };
    case 'send_timeout':
      return { level: 'info', message: ending.side === 'upstream' ? TIMED_OUT : 'client timed out (110: Connection timed out)' };
    case 'error': {
      const { error } = ending;
      const call = error.syscall === 'write' || error.code === 'EPIPE' ? 'send()' : 'recv()';
      const reason = typeof error.errno === 'number' ? describeErrno(error) : String(error.message);
      return { level: ending.side === 'upstream' ? 'error' : 'info', message: `${call} failed (${reason})` };
    }
  }
}
