/**
 * nginx's value syntaxes for times, sizes and counts, as pure functions. They take the
 * text nginx would see (a YAML number is first turned back into its text, so `1.5` and
 * `-1` are rejected as nginx rejects them) and return a result instead of throwing, so the
 * loader can attach a file position to the message.
 */

export type ParseResult<T> = { readonly value: T } | { readonly error: string };

/** Durations are used as Node timer delays; setTimeout fires at once for anything larger (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * ngx_parse_time(line, 0) ("msec mode"): `500ms`, `60s`, `1m30s`, `1h`, `2d`, `1w`,
 * optionally separated by spaces, units in decreasing order, each at most once; a trailing
 * bare number is seconds (`1m30` = 90 s, `60` = 60 s). Returns milliseconds.
 */
export function parseDurationMs(text: string | number): ParseResult<number> {
  const ms = parseTime(String(text), false);
  return ms === undefined ? { error: `invalid duration "${text}"` } : { value: ms };
}

/**
 * ngx_parse_time(line, 1) ("seconds mode"), which nginx uses for `fail_timeout`: the same
 * syntax without `ms` (`500ms` is invalid, not 0.5 s) and with `M` (30 days) and `y`
 * (365 days) allowed. Returns whole seconds.
 */
export function parseDurationSeconds(text: string | number): ParseResult<number> {
  const seconds = parseTime(String(text), true);
  return seconds === undefined ? { error: `invalid duration "${text}"` } : { value: seconds };
}

/**
 * ngx_parse_offset (client_max_body_size): digits with an optional `k`/`K`, `m`/`M`,
 * `g`/`G` suffix, powers of 1024. No sign, fraction or space (`1.5m`, `1 m`, `1mb` are invalid).
 */
export function parseSize(text: string | number): ParseResult<number> {
  const source = String(text);
  const scale = SIZE_SCALES[source.slice(-1).toLowerCase()];
  const digits = scale === undefined ? source : source.slice(0, -1);
  const count = atoi(digits);
  if (count === undefined || count * (scale ?? 1) > Number.MAX_SAFE_INTEGER) {
    return { error: `invalid size "${text}"` };
  }
  return { value: count * (scale ?? 1) };
}

/** ngx_atoi: unsigned decimal digits only (no sign, so `-1` is invalid), non-empty, no overflow. */
export function parseInteger(text: string | number): ParseResult<number> {
  const value = atoi(String(text));
  return value === undefined ? { error: `invalid number "${text}"` } : { value };
}

/** The value, or undefined for an error: for callers that word their own message. */
export function valueOf<T>(result: ParseResult<T>): T | undefined {
  return 'value' in result ? result.value : undefined;
}

const SIZE_SCALES: Readonly<Record<string, number>> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

function atoi(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/**
 * Units in the order ngx_parse_time requires them; `y` and `M` exist only in seconds mode
 * (msec mode starts past them), `ms` only in msec mode.
 */
const TIME_UNITS: ReadonlyArray<{
  readonly unit: string;
  readonly ms: number;
  readonly secondsMode: boolean;
  readonly msecMode: boolean;
}> = [
  { unit: 'y', ms: 365 * 24 * 3600_000, secondsMode: true, msecMode: false },
  { unit: 'M', ms: 30 * 24 * 3600_000, secondsMode: true, msecMode: false },
  { unit: 'w', ms: 7 * 24 * 3600_000, secondsMode: true, msecMode: true },
  { unit: 'd', ms: 24 * 3600_000, secondsMode: true, msecMode: true },
  { unit: 'h', ms: 3600_000, secondsMode: true, msecMode: true },
  { unit: 'm', ms: 60_000, secondsMode: true, msecMode: true },
  { unit: 's', ms: 1000, secondsMode: true, msecMode: true },
  { unit: 'ms', ms: 1, secondsMode: false, msecMode: true },
];

/** Returns seconds (seconds mode) or milliseconds (msec mode); undefined where nginx returns NGX_ERROR. */
function parseTime(text: string, secondsMode: boolean): number | undefined {
  const part = /(\d+)(ms|[yMwdhms]) */y;
  let next = 0; // index into TIME_UNITS: each unit must come after the previous one
  let totalMs = 0;
  while (part.lastIndex < text.length) {
    const start = part.lastIndex;
    const match = part.exec(text);
    if (!match) {
      part.lastIndex = start;
      break;
    }
    const index = TIME_UNITS.findIndex((u) => u.unit === match[2]);
    const unit = TIME_UNITS[index]!;
    if (index < next || !(secondsMode ? unit.secondsMode : unit.msecMode)) return undefined;
    next = index + 1;
    totalMs += Number(match[1]) * unit.ms;
  }
  // ngx_parse_time adds a trailing number without a unit as seconds, whatever came before it.
  const rest = text.slice(part.lastIndex);
  if (rest === '' ? part.lastIndex === 0 : !/^\d+$/.test(rest)) return undefined;
  if (rest !== '') totalMs += Number(rest) * 1000;
  const total = secondsMode ? totalMs / 1000 : totalMs;
  return Number.isSafeInteger(total) ? total : undefined;
}
