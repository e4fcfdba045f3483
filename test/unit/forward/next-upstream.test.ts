import { describe, expect, it } from 'vitest';
import type { NextUpstreamToken } from '../../../src/config/types.js';
import {
  countsAsFailure,
  type RetryQuestion,
  shouldTryNext,
  statusCause,
  statusForCause,
} from '../../../src/forward/next-upstream.js';

const mask = (...tokens: NextUpstreamToken[]): ReadonlySet<NextUpstreamToken> => new Set(tokens);
const base: RetryQuestion = {
  cause: 'error',
  mask: mask('error', 'timeout'),
  method: 'GET',
  requestSent: true,
  triesLeft: 1,
  elapsedMs: 0,
  nextUpstreamTimeoutMs: 0,
  bodyReplayable: true,
};

describe('shouldTryNext (ngx_http_upstream_next)', () => {
  it.each([
    ['GET after send, error listed', {}, true],
    ['no tries left', { triesLeft: 0 }, false],
    ['cause not listed', { cause: 'invalid_header' as const }, false],
    ['off', { mask: mask() }, false],
    ['POST after send', { method: 'POST' }, false],
    ['PATCH after send', { method: 'PATCH' }, false],
    ['LOCK after send', { method: 'LOCK' }, false],
    ['PUT after send', { method: 'PUT' }, true],
    ['DELETE after send', { method: 'DELETE' }, true],
    ['POST connect failure', { method: 'POST', requestSent: false }, true],
    ['POST with non_idempotent', { method: 'POST', mask: mask('error', 'non_idempotent') }, true],
    ['next_upstream_timeout passed', { elapsedMs: 1000, nextUpstreamTimeoutMs: 1000 }, false],
    ['next_upstream_timeout not yet', { elapsedMs: 999, nextUpstreamTimeoutMs: 1000 }, true],
    ['body no longer replayable', { method: 'PUT', bodyReplayable: false }, false],
    ['listed status', { cause: 'http_503' as const, mask: mask('http_503') }, true],
  ])('%s', (_name, change, expected) => {
    expect(shouldTryNext({ ...base, ...change })).toBe(expected);
  });
});

describe('status mapping', () => {
  it('maps a response status to its token only when listed', () => {
    expect(statusCause(503, mask('http_503'))).toBe('http_503');
    expect(statusCause(503, mask('error'))).toBeUndefined();
    expect(statusCause(501, mask('http_500'))).toBeUndefined();
  });

  it('answers from the last failure, as nginx does', () => {
    expect(statusForCause('timeout')).toBe(504);
    expect(statusForCause('http_504')).toBe(504);
    expect(statusForCause('error')).toBe(502);
    expect(statusForCause('invalid_header')).toBe(502);
    expect(statusForCause('http_502')).toBe(502);
    expect(statusForCause('no_live')).toBe(502);
    expect(statusForCause('http_503')).toBe(503);
    expect(statusForCause('http_404')).toBe(404);
  });

  it('403 and 404 never count against the server', () => {
    expect(countsAsFailure('http_403')).toBe(false);
    expect(countsAsFailure('http_404')).toBe(false);
    expect(countsAsFailure('http_500')).toBe(true);
    expect(countsAsFailure('error')).toBe(true);
  });
});
