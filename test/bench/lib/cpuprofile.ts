/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and aggregates self time by function and
 * source location, and by where the code comes from (sockproxy, undici, pino, Node's own
 * JavaScript, GC, native), so the hot path can be read without DevTools.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface Entry {
  readonly name: string;
  readonly where: string;
  readonly category: string;
  readonly selfMs: number;
  /** Share of the busy time (all samples but "(idle)"), %. */
  readonly pct: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly top: readonly Entry[];
  readonly categories: readonly { category: string; selfMs: number; pct: number }[];
}

function shorten(url: string, root: string): string {
  let u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm !== -1) return u.slice(nm + '/node_modules/'.length);
  if (u.startsWith(root)) u = u.slice(root.length);
  return u;
}

function categorise(functionName: string, url: string): string {
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(program)') return 'native, outside JS ((program))';
  if (url === '') return 'native / builtins';
  if (url.startsWith('node:')) return "Node's own JS (node:*)";
  if (url.includes('/node_modules/undici/')) return 'undici';
  if (/\/node_modules\/(pino|sonic-boom|thread-stream|fast-redact|quick-format-unescaped|on-exit-leak-free|atomic-sleep|safe-stable-stringify)/.test(url)) return 'pino';
  if (url.includes('/node_modules/')) return 'other packages';
  if (url.includes('/dist/')) return 'sockproxy (dist/)';
  return 'other';
}

export function summarise(file: string, root: string, topN = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  // timeDeltas[i] is the time since the previous sample: it belongs to sample i - 1.
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i + 1] ?? 0;
    self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + delta);
  }
  const entries = new Map<string, { name: string; where: string; category: string; us: number }>();
  const categories = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const { callFrame } = byId.get(id)!;
    total += us;
    if (callFrame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const name = callFrame.functionName || '(anonymous)';
    const where = callFrame.url === '' ? '' : `${shorten(callFrame.url, root)}:${callFrame.lineNumber + 1}`;
    const category = categorise(callFrame.functionName, callFrame.url);
    const key = `${name} ${where}`;
    const entry = entries.get(key) ?? { name, where, category, us: 0 };
    entry.us += us;
    entries.set(key, entry);
    categories.set(category, (categories.get(category) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number): number => (busy > 0 ? (us * 100) / busy : 0);
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    busyMs: busy / 1000,
    top: [...entries.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map((e) => ({ name: e.name, where: e.where, category: e.category, selfMs: e.us / 1000, pct: pct(e.us) })),
    categories: [...categories.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([category, us]) => ({ category, selfMs: us / 1000, pct: pct(us) })),
  };
}

export function markdownSummary(title: string, s: ProfileSummary): string {
  const lines = [
    `### ${title}`,
    '',
    `${s.busyMs.toFixed(0)} ms busy of ${s.totalMs.toFixed(0)} ms sampled (idle ${((s.idleMs * 100) / Math.max(1, s.totalMs)).toFixed(0)}%); shares are of the busy time.`,
    '',
    '| # | self % | self ms | function | where |',
    '|--:|--:|--:|---|---|',
    ...s.top.map((e, i) => `| ${i + 1} | ${e.pct.toFixed(1)} | ${e.selfMs.toFixed(0)} | \`${e.name}\` | ${e.where === '' ? '(native)' : `\`${e.where}\``} |`),
    '',
    '| by origin | self % |',
    '|---|--:|',
    ...s.categories.map((c) => `| ${c.category} | ${c.pct.toFixed(1)} |`),
    '',
  ];
  return lines.join('\n');
}
