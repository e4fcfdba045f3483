/**
 * Whether a series sampled over a long run trends upward: the soak's verdict on the proxy's
 * memory, descriptors and event-loop delay (issue 8 §4).
 *
 * Each series is noisy by nature: the heap is a sawtooth between collections, descriptors
 * follow the requests in flight, event-loop delay jumps when the machine is busy. So the
 * slope is the Theil–Sen estimator (the median of the slopes between every pair of
 * samples), which a few outliers or a sawtooth's teeth do not move, where a least-squares
 * line would follow them. The first minutes are left out: V8 grows its heap and compiles
 * hot code then, and a pool fills once; growth that stops is not a leak.
 *
 * A series trends upward when its slope, over the judged part of the run, adds up to more
 * than a tolerance: a share of its median or an absolute amount, whichever is larger. A
 * leak of a few bytes per request shows as a steady climb that passes it in a long run;
 * noise around a flat line does not.
 */

export interface Sample {
  /** Seconds since the run started. */
  readonly t: number;
  readonly value: number;
}

export interface Tolerance {
  /** A share of the judged samples' median (0.1 for 10%). */
  readonly relative: number;
  /** In the series' own unit. */
  readonly absolute: number;
}

export interface Trend {
  /** The first sample of the run, the first judged one (after the warm-up), the last, and the largest. */
  readonly first: number;
  readonly start: number;
  readonly end: number;
  readonly max: number;
  /** Of the judged samples. */
  readonly median: number;
  /** Theil–Sen slope per hour, over the judged samples. */
  readonly slopePerHour: number;
  /** The slope times the judged span: how much the series grew, noise aside. */
  readonly rise: number;
  /** The rise past which the series trends upward. */
  readonly allowedRise: number;
  readonly upward: boolean;
  /** How many samples were judged. */
  readonly judged: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The Theil–Sen slope: the median of the slopes between every two samples (per second). */
export function theilSenSlope(samples: readonly Sample[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < samples.length; i++) {
    for (let j = i + 1; j < samples.length; j++) {
      const dt = samples[j]!.t - samples[i]!.t;
      if (dt > 0) slopes.push((samples[j]!.value - samples[i]!.value) / dt);
    }
  }
  return slopes.length === 0 ? 0 : median(slopes);
}

/**
 * The trend of `samples` (in time order), judging those taken after `warmUpSeconds`. With
 * fewer than three judged samples there is no slope to speak of, and nothing trends.
 */
export function trendOf(samples: readonly Sample[], warmUpSeconds: number, tolerance: Tolerance): Trend {
  if (samples.length === 0) throw new Error('trendOf: no samples');
  const judged = samples.filter((sample) => sample.t >= warmUpSeconds);
  const values = samples.map((sample) => sample.value);
  const judgedValues = judged.map((sample) => sample.value);
  const middle = judged.length === 0 ? median(values) : median(judgedValues);
  const slope = judged.length < 3 ? 0 : theilSenSlope(judged);
  const span = judged.length < 2 ? 0 : judged[judged.length - 1]!.t - judged[0]!.t;
  const rise = slope * span;
  const allowedRise = Math.max(tolerance.relative * Math.abs(middle), tolerance.absolute);
  return {
    first: values[0]!,
    start: (judged[0] ?? samples[0]!).value,
    end: values[values.length - 1]!,
    max: Math.max(...values),
    median: middle,
    slopePerHour: slope * 3600,
    rise,
    allowedRise,
    upward: rise > allowedRise,
    judged: judged.length,
  };
}
