/** The results: per-row medians, ratios, the targets, and their Markdown form. */

export interface Rep {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The contender's CPU time (utime + stime) over the run, per response, in µs. */
  readonly cpuUsPerRequest: number;
  /** The upstream's own CPU per response (for `direct` the same process). */
  readonly upstreamCpuUsPerRequest: number;
  /** Connections the upstream accepted during the run, per 1000 requests it served. */
  readonly upstreamConnectionsPer1k: number;
  /**
   * Busy time on the server CPU not spent by the contender or the upstream, as a % of the
   * run: other processes on a shared machine. Undefined without pinning.
   */
  readonly foreignServerCpuPct: number | undefined;
  readonly errors: number;
  readonly errorDetail: string;
}

export interface Row {
  readonly scenario: string;
  readonly contender: string;
  readonly label: string;
  /** Why the row did not run (nginx missing). */
  skipped?: string;
  /** Why it failed: a wrong answer, a crash, socket errors, non-2xx responses. */
  error?: string;
  readonly reps: Rep[];
  rps?: number;
  p50Ms?: number;
  p99Ms?: number;
  cpuUsPerRequest?: number;
  upstreamCpuUsPerRequest?: number;
  upstreamConnectionsPer1k?: number;
  foreignServerCpuPct?: number;
  /** VmHWM at the end of the scenario (the process served warm-up and every repetition). */
  peakRssMB?: number;
  ratios: {
    rpsVsNginx?: number;
    cpuVsNginx?: number;
    p99VsNginx?: number;
    rpsVsDirect?: number;
  };
}

export interface Target {
  readonly target: string;
  readonly scenario: string;
  readonly limit: string;
  readonly measured?: number;
  readonly unit: string;
  readonly met?: boolean;
  readonly note?: string;
}

export interface ScenarioInfo {
  readonly id: string;
  readonly title: string;
}

const fmt = (value: number | undefined, digits: number): string =>
  value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);
const ratio = (value: number | undefined): string => (value === undefined || !Number.isFinite(value) ? '–' : `${value.toFixed(2)}×`);
const thousands = (value: number | undefined): string =>
  value === undefined || !Number.isFinite(value) ? '–' : Math.round(value).toLocaleString('en-US');

export function find(rows: readonly Row[], scenario: string, contender: string): Row | undefined {
  const row = rows.find((r) => r.scenario === scenario && r.contender === contender);
  return row === undefined || row.skipped !== undefined || row.error !== undefined ? undefined : row;
}

/** Fills each row's ratios to the same scenario's nginx and direct rows. */
export function computeRatios(rows: Row[]): void {
  for (const row of rows) {
    if (row.rps === undefined) continue;
    const nginx = find(rows, row.scenario, 'nginx');
    const direct = find(rows, row.scenario, 'direct');
    if (nginx?.rps !== undefined) {
      row.ratios.rpsVsNginx = row.rps / nginx.rps;
      row.ratios.cpuVsNginx = row.cpuUsPerRequest! / nginx.cpuUsPerRequest!;
      row.ratios.p99VsNginx = row.p99Ms! / nginx.p99Ms!;
    }
    if (direct?.rps !== undefined) row.ratios.rpsVsDirect = row.rps / direct.rps;
  }
}

function quotient(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : a / b;
}

/** The section 2, each as a ratio measured in the same run. */
export function evaluateTargets(rows: readonly Row[], scenarios: readonly ScenarioInfo[]): Target[] {
  const targets: Target[] = [];
  const has = (id: string): boolean => scenarios.some((s) => s.id === id);
  const atMost = (target: string, scenario: string, measured: number | undefined, limit: number, why: string): void => {
    if (!has(scenario)) return;
    targets.push({
      target,
      scenario,
      limit: `≤ ${limit}×`,
      unit: '×',
      ...(measured === undefined ? { note: why } : { measured, met: measured <= limit }),
    });
  };
  const atLeast = (target: string, scenario: string, measured: number | undefined, limit: number, why: string): void => {
    if (!has(scenario)) return;
    targets.push({
      target,
      scenario,
      limit: `≥ ${limit}×`,
      unit: '×',
      ...(measured === undefined ? { note: why } : { measured, met: measured >= limit }),
    });
  };
  const sp = (scenario: string): Row | undefined => find(rows, scenario, 'sockproxy');
  const noNginx = 'no nginx row';
  for (const [scenario, limit] of [
    ['get-13', 2.0],
    ['get-16k', 2.5],
    ['post-64k', 2.5],
  ] as const) {
    atMost('proxy CPU per request ÷ nginx', scenario, sp(scenario)?.ratios.cpuVsNginx, limit, noNginx);
  }
  for (const scenario of ['get-13', 'get-16k', 'post-64k']) {
    const vs = find(rows, scenario, 'http-proxy');
    atLeast('throughput ÷ http-proxy', scenario, quotient(sp(scenario)?.rps, vs?.rps), 1.6, 'no http-proxy row');
  }
  for (const scenario of ['get-13', 'get-16k', 'post-64k']) {
    atMost('p99 latency ÷ nginx', scenario, sp(scenario)?.ratios.p99VsNginx, 2, noNginx);
  }
  for (const scenario of ['get-13', 'get-16k', 'post-64k']) {
    const logged = find(rows, scenario, 'sockproxy-log');
    atLeast('access log on: throughput ÷ log off', scenario, quotient(logged?.rps, sp(scenario)?.rps), 0.9, 'row missing');
  }
  for (const scenario of ['get-13', 'get-16k', 'post-64k']) {
    const tcp = find(rows, scenario, 'sockproxy-tcp');
    atLeast('Unix-socket path ÷ TCP path (throughput)', scenario, quotient(sp(scenario)?.rps, tcp?.rps), 1.1, 'row missing');
  }
  if (has('get-13-c1000')) {
    const row = rows.find((r) => r.scenario === 'get-13-c1000' && r.contender === 'sockproxy');
    const rss = row?.peakRssMB;
    targets.push({
      target: '1,000 keep-alive clients: peak RSS',
      scenario: 'get-13-c1000',
      limit: '≤ 150 MB',
      unit: 'MB',
      ...(rss === undefined ? { note: 'row missing' } : { measured: rss, met: rss <= 150 }),
    });
    const errors = row === undefined ? undefined : row.reps.reduce((sum, rep) => sum + rep.errors, 0);
    targets.push({
      target: '1,000 keep-alive clients: errors',
      scenario: 'get-13-c1000',
      limit: '0',
      unit: '',
      ...(errors === undefined || row?.error !== undefined
        ? { note: row?.error ?? 'row missing', met: false }
        : { measured: errors, met: errors === 0 }),
    });
  }
  return targets;
}

export function markdownTable(rows: readonly Row[], scenarios: readonly ScenarioInfo[]): string {
  const lines = [
    '| scenario | contender | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MB | req/s ÷ nginx | CPU ÷ nginx | p99 ÷ nginx | req/s ÷ direct | upstream conns /1k req | other load % |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const scenario of scenarios) {
    for (const row of rows.filter((r) => r.scenario === scenario.id)) {
      const label = row.contender === 'sockproxy' ? `**${row.label}**` : row.label;
      if (row.skipped !== undefined || row.error !== undefined) {
        const why = row.skipped !== undefined ? `skipped: ${row.skipped}` : `ERROR: ${row.error!.split('\n')[0]}`;
        lines.push(`| ${scenario.title} | ${label} | ${why} | | | | | | | | | | |`);
        continue;
      }
      lines.push(
        `| ${scenario.title} | ${label} | ${thousands(row.rps)} | ${fmt(row.p50Ms, 2)} | ${fmt(row.p99Ms, 2)} | ${fmt(row.cpuUsPerRequest, 1)} | ${fmt(row.peakRssMB, 0)} | ${ratio(row.ratios.rpsVsNginx)} | ${ratio(row.ratios.cpuVsNginx)} | ${ratio(row.ratios.p99VsNginx)} | ${ratio(row.ratios.rpsVsDirect)} | ${fmt(row.upstreamConnectionsPer1k, 1)} | ${fmt(row.foreignServerCpuPct, 0)} |`,
      );
    }
  }
  return lines.join('\n');
}

export function markdownTargets(targets: readonly Target[]): string {
  const lines = ['| target | scenario | measured | limit | met |', '|---|---|--:|--:|---|'];
  for (const t of targets) {
    const measured =
      t.measured === undefined ? '–' : t.unit === '×' ? `${t.measured.toFixed(2)}×` : `${t.measured.toFixed(0)}${t.unit === 'MB' ? ' MB' : ''}`;
    const met = t.met === undefined ? `not measured (${t.note})` : t.met ? 'yes' : '**no**';
    lines.push(`| ${t.target} | ${t.scenario} | ${measured} | ${t.limit} | ${met} |`);
  }
  return lines.join('\n');
}
