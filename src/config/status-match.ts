/**
 * The `status` test of nginx Plus's `match` block (ngx_http_upstream_hc_module), for
 * `upstream.health_check.status`: codes and ranges, optionally negated with `!`.
 *
 *   200          status is 200
 *   200 204      status is 200 or 204
 *   200-399      status is in the range from 200 to 399 (the default: "2xx or 3xx")
 *   301-303 307  status is 301, 302, 303 or 307
 *   ! 500-599    status is not in the range from 500 to 599
 */

export interface StatusMatch {
  /** `!`: the status must be outside every range. */
  readonly negated: boolean;
  /** Inclusive ranges; a single code is a range of one. */
  readonly ranges: ReadonlyArray<readonly [number, number]>;
  /** As written, for log lines: "200-399". */
  readonly text: string;
}

/** RFC 9110 §15: status codes are three digits, 100 to 599. */
const LOWEST_STATUS = 100;
const HIGHEST_STATUS = 599;

/** Parses the text of a `status` test; the error names the offending word. */
export function parseStatusMatch(text: string): StatusMatch | { error: string } {
  let words = text.trim().split(/\s+/).filter((word) => word !== '');
  // nginx writes the negation as its own word (`status ! 500`); "!500" is accepted too.
  const negated = words[0]?.startsWith('!') ?? false;
  if (negated) words = [words[0]!.slice(1), ...words.slice(1)].filter((word) => word !== '');
  if (words.length === 0) return { error: `no status codes in "${text}"` };
  const ranges: Array<readonly [number, number]> = [];
  for (const word of words) {
    const match = /^(\d{3})(?:-(\d{3}))?$/.exec(word);
    if (match === null) return { error: `invalid status "${word}"` };
    const low = Number(match[1]);
    const high = match[2] === undefined ? low : Number(match[2]);
    if (low < LOWEST_STATUS || high > HIGHEST_STATUS) return { error: `invalid status "${word}" (codes are 100 to 599)` };
    if (low > high) return { error: `invalid status range "${word}" (the first code is larger than the second)` };
    ranges.push([low, high]);
  }
  return { negated, ranges, text: text.trim() };
}

export function statusMatches(match: StatusMatch, status: number): boolean {
  const inRange = match.ranges.some(([low, high]) => status >= low && status <= high);
  return match.negated ? !inRange : inRange;
}
