import { readFileSync } from 'node:fs';

const MiB = 1024 * 1024;

/** A process's resident set size in bytes, from /proc/PID/status (VmRSS, in kB). */
export function readRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

export interface RssReport {
  readonly before: number;
  readonly peak: number;
  readonly growth: number;
  readonly samples: number;
}

/**
 * Samples a process's RSS every `intervalMs` from now until stop(); `before` is the
 * reading taken when sampling starts.
 */
export function sampleRss(pid: number, intervalMs = 100): { stop(): RssReport } {
  const before = readRss(pid);
  let peak = before;
  let samples = 1;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, readRss(pid));
      samples++;
    } catch {
      // The process is gone; the test will notice through its own requests.
    }
  }, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      try {
        peak = Math.max(peak, readRss(pid));
        samples++;
      } catch {
        // as above
      }
      return { before, peak, growth: peak - before, samples };
    },
  };
}

export function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}
