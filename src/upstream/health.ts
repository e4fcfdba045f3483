/**
 * One server's state under active health checks, as nginx Plus's health_check keeps it
 * (ngx_http_upstream_hc_module): `fails` consecutive failed checks make a healthy server
 * unhealthy, `passes` consecutive passed checks make an unhealthy one healthy again. A
 * server starts healthy, or, with `mandatory`, "checking" until its first check decides.
 * Pure: the checks are run and timed elsewhere (src/forward/health-checks.ts).
 */
export type HealthState = 'healthy' | 'unhealthy' | 'checking';

export interface HealthThresholds {
  readonly fails: number;
  readonly passes: number;
  readonly mandatory: boolean;
}

export class HealthCounter {
  #state: HealthState;
  /** Checks in a row with the same outcome as the last one. */
  #streak = 0;
  #lastPassed: boolean | undefined;
  readonly #thresholds: HealthThresholds;

  /** `carried`: the state earlier checks left the server in (a reload); by default it starts afresh. */
  constructor(thresholds: HealthThresholds, carried?: HealthState) {
    this.#thresholds = thresholds;
    this.#state = carried ?? (thresholds.mandatory ? 'checking' : 'healthy');
  }

  get state(): HealthState {
    return this.#state;
  }

  /** Counts one check; returns the new state if it changed. */
  record(passed: boolean): HealthState | undefined {
    this.#streak = passed === this.#lastPassed ? this.#streak + 1 : 1;
    this.#lastPassed = passed;
    const { fails, passes } = this.#thresholds;
    let next: HealthState;
    if (this.#state === 'checking') next = passed ? 'healthy' : 'unhealthy';
    else if (this.#state === 'healthy') next = !passed && this.#streak >= fails ? 'unhealthy' : 'healthy';
    else next = passed && this.#streak >= passes ? 'healthy' : 'unhealthy';
    if (next === this.#state) return undefined;
    this.#state = next;
    return next;
  }
}
