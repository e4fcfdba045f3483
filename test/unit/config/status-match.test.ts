import { describe, expect, it } from 'vitest';
import { parseStatusMatch, type StatusMatch, statusMatches } from '../../../src/config/status-match.js';

function parsed(text: string): StatusMatch {
  const match = parseStatusMatch(text);
  if ('error' in match) throw new Error(match.error);
  return match;
}

describe('parseStatusMatch: nginx Plus match { status ... }', () => {
  it.each([
    ['200', { negated: false, ranges: [[200, 200]], text: '200' }],
    ['200 204', { negated: false, ranges: [[200, 200], [204, 204]], text: '200 204' }],
    ['200-399', { negated: false, ranges: [[200, 399]], text: '200-399' }],
    ['301-303 307', { negated: false, ranges: [[301, 303], [307, 307]], text: '301-303 307' }],
    ['! 500-599', { negated: true, ranges: [[500, 599]], text: '! 500-599' }],
    ['!500', { negated: true, ranges: [[500, 500]], text: '!500' }],
    ['  200  ', { negated: false, ranges: [[200, 200]], text: '200' }],
  ])('%j', (text, expected) => {
    expect(parseStatusMatch(text)).toEqual(expected);
  });

  it.each([
    ['399-200', 'invalid status range "399-200" (the first code is larger than the second)'],
    ['2xx', 'invalid status "2xx"'],
    ['200-', 'invalid status "200-"'],
    ['99', 'invalid status "99"'],
    ['600', 'invalid status "600" (codes are 100 to 599)'],
    ['200-600', 'invalid status "200-600" (codes are 100 to 599)'],
    ['', 'no status codes in ""'],
    ['!', 'no status codes in "!"'],
  ])('rejects %j', (text, error) => {
    expect(parseStatusMatch(text)).toEqual({ error });
  });
});

describe('statusMatches', () => {
  it('ranges are inclusive; several ranges are alternatives', () => {
    const match = parsed('200-299 304');
    expect([199, 200, 250, 299, 300, 304, 305].map((status) => statusMatches(match, status))).toEqual([
      false,
      true,
      true,
      true,
      false,
      true,
      false,
    ]);
  });

  it('! turns the test round', () => {
    const match = parsed('! 500-599');
    expect([200, 404, 499, 500, 503, 599].map((status) => statusMatches(match, status))).toEqual([true, true, true, false, false, false]);
  });
});
