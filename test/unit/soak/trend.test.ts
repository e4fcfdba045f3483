import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../helpers/seeded-random.js';
import { theilSenSlope, trendOf } from '../../soak/lib/trend.js';

/** A series sampled every 10 s for `minutes`, its value at t given by `value`. */
function series(minutes: number, value: (t: number, random: () => number) => number, seed = 1): { t: number; value: number }[] {
  const random = seededRandom(seed);
  return Array.from({ length: (minutes * 60) / 10 }, (_, i) => {
    const t = (i + 1) * 10;
    return { t, value: value(t, random) };
  });
}

const MiB = 1024 * 1024;
const heapTolerance = { relative: 0.1, absolute: 5 * MiB };

describe('the soak verdict: does a series trend upward', () => {
  it('takes the median of pairwise slopes, so one outlier does not move it', () => {
    const line = [0, 1, 2, 3, 4, 5, 6, 7].map((t) => ({ t, value: 2 * t }));
    expect(theilSenSlope(line)).toBe(2);
    line[3] = { t: 3, value: 1000 };
    expect(theilSenSlope(line)).toBe(2);
  });

  it('a flat series with noise does not trend', () => {
    const flat = series(30, (_t, random) => 100 * MiB + (random() - 0.5) * 20 * MiB);
    const trend = trendOf(flat, 300, heapTolerance);
    expect(trend.upward).toBe(false);
    expect(Math.abs(trend.rise)).toBeLessThan(3 * MiB);
  });

  it('a sawtooth (a heap between collections) with a flat floor does not trend', () => {
    // Grows 1 MiB per sample, collected back to 20 MiB every 7 samples.
    const sawtooth = series(30, (t) => 20 * MiB + ((t / 10) % 7) * MiB);
    expect(trendOf(sawtooth, 300, heapTolerance).upward).toBe(false);
  });

  it('growth that stops during the warm-up is not a leak', () => {
    const warmingUp = series(30, (t, random) => Math.min(t, 240) * 0.2 * MiB + random() * MiB);
    const trend = trendOf(warmingUp, 300, heapTolerance);
    expect(trend.upward).toBe(false);
    expect(trend.max).toBeGreaterThan(trend.first + 40 * MiB);
  });

  it('a steady leak under the noise is found, fast or slow', () => {
    const leaking = series(30, (t, random) => 100 * MiB + (t / 60) * 300 * 1024 * 10 + (random() - 0.5) * 20 * MiB);
    // 3 MiB a minute for 25 judged minutes: 75 MiB, far past 10% of the median.
    expect(trendOf(leaking, 300, heapTolerance).upward).toBe(true);
    const slow = series(30, (t, random) => 30 * MiB + (t / 60) * 300 * 1024 + (random() - 0.5) * 4 * MiB);
    // 300 KiB a minute for 25 minutes: 7.3 MiB, past the 5 MiB floor.
    const trend = trendOf(slow, 300, heapTolerance);
    expect(trend.upward).toBe(true);
    expect(trend.rise / MiB).toBeGreaterThan(6);
    expect(trend.rise / MiB).toBeLessThan(9);
  });

  it('a descriptor leaked every few minutes is found; descriptors that follow the load are not', () => {
    const tolerance = { relative: 0, absolute: 5 };
    const busy = series(30, (_t, random) => 30 + Math.floor(random() * 12));
    expect(trendOf(busy, 300, tolerance).upward).toBe(false);
    const leaking = series(30, (t, random) => 30 + Math.floor(random() * 12) + Math.floor(t / 180));
    expect(trendOf(leaking, 300, tolerance).upward).toBe(true);
  });

  it('reports the first, judged start, end and largest values, and judges nothing from too few samples', () => {
    const values = [{ t: 10, value: 5 }, { t: 20, value: 9 }, { t: 30, value: 7 }, { t: 40, value: 8 }];
    const trend = trendOf(values, 20, { relative: 0, absolute: 0 });
    expect(trend).toMatchObject({ first: 5, start: 9, end: 8, max: 9, judged: 3 });
    expect(trendOf(values.slice(0, 3), 20, { relative: 0, absolute: 0 })).toMatchObject({ judged: 2, rise: 0, upward: false });
  });
});
