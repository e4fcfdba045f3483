import { describe, expect, it } from 'vitest';
import { HealthCounter, type HealthState } from '../../../src/upstream/health.js';

/** The state after each check of `outcomes` (true = passed). */
function states(counter: HealthCounter, outcomes: boolean[]): HealthState[] {
  return outcomes.map((passed) => {
    counter.record(passed);
    return counter.state;
  });
}

describe('HealthCounter: nginx Plus health_check fails= and passes=', () => {
  it('starts healthy; fails=1, passes=1 follow every check', () => {
    const counter = new HealthCounter({ fails: 1, passes: 1, mandatory: false });
    expect(counter.state).toBe('healthy');
    expect(states(counter, [true, false, false, true])).toEqual(['healthy', 'unhealthy', 'unhealthy', 'healthy']);
  });

  it('fails=3: out after three failed checks in a row, a pass in between starts the count again', () => {
    const counter = new HealthCounter({ fails: 3, passes: 1, mandatory: false });
    expect(states(counter, [false, false, true, false, false, false])).toEqual([
      'healthy',
      'healthy',
      'healthy',
      'healthy',
      'healthy',
      'unhealthy',
    ]);
  });

  it('passes=2: back after two passed checks in a row, a failure in between starts the count again', () => {
    const counter = new HealthCounter({ fails: 1, passes: 2, mandatory: false });
    expect(states(counter, [false, true, false, true, true])).toEqual(['unhealthy', 'unhealthy', 'unhealthy', 'unhealthy', 'healthy']);
  });

  it('the passes that brought it back do not count against the next fails, nor the failures against the next passes', () => {
    const counter = new HealthCounter({ fails: 2, passes: 2, mandatory: false });
    expect(states(counter, [false, false, true, true, false, true, false, false])).toEqual([
      'healthy',
      'unhealthy',
      'unhealthy',
      'healthy',
      'healthy',
      'healthy',
      'healthy',
      'unhealthy',
    ]);
  });

  it('record() returns the new state only when it changes', () => {
    const counter = new HealthCounter({ fails: 1, passes: 1, mandatory: false });
    expect([counter.record(true), counter.record(false), counter.record(false), counter.record(true)]).toEqual([
      undefined,
      'unhealthy',
      undefined,
      'healthy',
    ]);
  });

  it('mandatory: "checking" until the first check, which decides whatever passes= and fails= say', () => {
    const passing = new HealthCounter({ fails: 3, passes: 3, mandatory: true });
    expect(passing.state).toBe('checking');
    expect(passing.record(true)).toBe('healthy');
    const failing = new HealthCounter({ fails: 3, passes: 2, mandatory: true });
    expect(failing.record(false)).toBe('unhealthy');
    // From then on, the usual rule.
    expect(states(failing, [true, true])).toEqual(['unhealthy', 'healthy']);
  });
});
