import type { NextUpstreamToken } from '../config/types.js';
import type { FailureKind } from './classify.js';

/** A failed attempt as proxy_next_upstream names it: a failure kind or a listed status. */
export type NextUpstreamCause = FailureKind | 'http_500' | 'http_502' | 'http_503' | 'http_504' | 'http_403' | 'http_404' | 'http_429';

const STATUS_CAUSES: ReadonlyMap<number, NextUpstreamCause> = new Map([
  [500, 'http_500'],
  [502, 'http_502'],
  [503, 'http_503'],
  [504, 'http_504'],
  [403, 'http_403'],
  [404, 'http_404'],
  [429, 'http_429'],
]);

/** The cause a response status stands for, if next_upstream lists it (ngx_http_upstream_test_next). */
export function statusCause(status: number, mask: ReadonlySet<NextUpstreamToken>): NextUpstreamCause | undefined {
  const cause = STATUS_CAUSES.get(status);
  return cause !== undefined && mask.has(cause as NextUpstreamToken) ? cause : undefined;
}

/**
 * POST, LOCK and PATCH may have changed something on the server: once the request was
 * sent they move on only with `non_idempotent` ([UP] ngx_http_upstream_next).
 */
const NON_IDEMPOTENT_METHODS = new Set(['POST', 'LOCK', 'PATCH']);

export interface RetryQuestion {
  readonly cause: NextUpstreamCause;
  readonly mask: ReadonlySet<NextUpstreamToken>;
  readonly method: string;
  /** Whether any of the request reached the upstream (connect failures: false). */
  readonly requestSent: boolean;
  /** Attempts still allowed (nginx peer.tries after this one). */
  readonly triesLeft: number;
  /** ms since the first attempt, against next_upstream_timeout (0 = unlimited). */
  readonly elapsedMs: number;
  readonly nextUpstreamTimeoutMs: number;
  /** The body can be sent again from its first byte. */
  readonly bodyReplayable: boolean;
}

/** nginx's decision to pass a failed request to the next server ([UP] ngx_http_upstream_next). */
export function shouldTryNext(q: RetryQuestion): boolean {
  if (q.triesLeft <= 0 || !q.mask.has(q.cause as NextUpstreamToken)) return false;
  if (q.requestSent && NON_IDEMPOTENT_METHODS.has(q.method) && !q.mask.has('non_idempotent')) return false;
  if (!q.bodyReplayable) return false;
  return q.nextUpstreamTimeoutMs === 0 || q.elapsedMs < q.nextUpstreamTimeoutMs;
}

/**
 * Whether the cause counts against the server's max_fails: error, timeout and
 * invalid_header always; a listed 5xx or 429 too; 403 and 404 never (NGX_PEER_NEXT).
 */
export function countsAsFailure(cause: NextUpstreamCause): boolean {
  return cause !== 'http_403' && cause !== 'http_404';
}

/** The status the client gets when the last failure ends the request ([UP] ngx_http_upstream_next). */
export function statusForCause(cause: NextUpstreamCause | 'no_live'): number {
  switch (cause) {
    case 'timeout':
    case 'http_504':
      return 504;
    case 'http_500':
      return 500;
    case 'http_503':
      return 503;
    case 'http_403':
      return 403;
    case 'http_404':
      return 404;
    case 'http_429':
      return 429;
    default:
      return 502;
  }
}
