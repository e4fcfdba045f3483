/** Memory readings of a process from /proc/PID/status (Linux). */
import { readFileSync } from 'node:fs';

const MiB = 1024 * 1024;

/** A field of /proc/PID/status given in kB (VmRSS, VmHWM, ...), in bytes. */
function statusBytes(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(status);
  if (match === null) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** A process's resident set size in bytes (VmRSS). */
export function readRss(pid: number): number {
  return statusBytes(pid, 'VmRSS');
}

/** Peak resident memory of a process in bytes (VmHWM), to prove a body was streamed, not held. */
export function peakRssBytes(pid: number): number {
  return statusBytes(pid, 'VmHWM');
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
  const sample = (): void => {
    try {
      peak = Math.max(peak, readRss(pid));
      samples++;
    } catch {
      // The process is gone; the test will notice through its own requests.
    }
  };
  const timer = setInterval(sample, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return { before, peak, growth: peak - before, samples };
    },
  };
}

export function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}
