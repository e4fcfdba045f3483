/**
 * What the kernel says about a process: its CPU time (utime + stime of every thread, from
 * /proc/PID/stat) and its peak resident set (VmHWM, from /proc/PID/status). CPU time is
 * the fairest per-request figure on a shared 2-core machine: it does not depend on who
 * else was runnable, only on the work the process did.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User + system CPU time of the whole process (all its threads), in microseconds. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of proc(5), counted from field 3 (state) here.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1e6) / clockTicks();
}

/** Peak resident set size so far (VmHWM), in bytes; undefined once the process is gone. */
export function peakRssBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
    return match === null ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

/**
 * Time one CPU spent running processes so far (user, nice, system, and steal by the
 * hypervisor; from /proc/stat), in microseconds. Interrupt and softirq time are left out:
 * on loopback they are the benchmark's own packets. With the servers pinned to that CPU,
 * the rest is someone else's: how much a run was disturbed on a shared machine.
 */
export function cpuBusyMicros(cpu: string): number {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${cpu} `));
  if (line === undefined) return NaN;
  // user nice system idle iowait irq softirq steal
  const [user, nice, system, , , , , steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user! + nice! + system! + steal!;
  return (busy * 1e6) / clockTicks();
}

/**
 * `pid` and every process descended from it (a sockproxy primary and its workers), from
 * the parent pid of each process in /proc.
 */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid), counted from after the command name's closing parenthesis.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // The process exited while /proc was read.
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []));
  return tree;
}

/** User + system CPU time of a process and its descendants (the primary and its workers), in microseconds. */
export function treeCpuMicros(pid: number): number {
  let total = 0;
  for (const member of processTree(pid)) {
    try {
      total += cpuMicros(member);
    } catch {
      // Gone since the tree was read.
    }
  }
  return total;
}

/** The sum of the peak resident sets of a process and its descendants; undefined once it is gone. */
export function treePeakRssBytes(pid: number): number | undefined {
  const own = peakRssBytes(pid);
  if (own === undefined) return undefined;
  return processTree(pid)
    .slice(1)
    .reduce((sum, member) => sum + (peakRssBytes(member) ?? 0), own);
}
