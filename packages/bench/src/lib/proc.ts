/**
 * Reads a process's CPU time and resident memory from /proc (Linux only). CPU is utime+stime of
 * all the process's threads, in microseconds; the kernel counts it in clock ticks (usually 10 ms),
 * so windows shorter than a second are coarse.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

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

/** User and system CPU time of `pid` in µs, from /proc/<pid>/stat; undefined once the process is gone. */
function cpuTimes(pid: number): { user: number; sys: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces; fields after its closing paren are plain.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14 and stime field 15.
  const perTick = 1e6 / clockTicks();
  return { user: Number(rest[11]) * perTick, sys: Number(rest[12]) * perTick };
}

/** CPU time (user + system) consumed so far by `pid`, in µs; undefined once the process is gone. */
export function cpuMicros(pid: number): number | undefined {
  const t = cpuTimes(pid);
  return t && t.user + t.sys;
}

/** System (kernel) CPU time consumed so far by `pid` (stime), in µs; undefined once the process is gone. */
export function sysCpuMicros(pid: number): number | undefined {
  return cpuTimes(pid)?.sys;
}

/** Resident set size of `pid` in bytes (VmRSS), or undefined once the process is gone. */
export function rssBytes(pid: number): number | undefined {
  return statusField(pid, 'VmRSS');
}

/** Peak resident set size of `pid` in bytes (VmHWM). */
export function peakRssBytes(pid: number): number | undefined {
  return statusField(pid, 'VmHWM');
}

function statusField(pid: number, name: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
  return match ? Number(match[1]) * 1024 : undefined;
}

/** A CPU meter over a set of processes: `lap()` gives the CPU % of one core since the last lap. */
export class CpuMeter {
  private lastCpu: number;
  private lastAt: number;
  private readonly startCpu: number;
  private readonly startAt: number;

  constructor(private readonly pids: readonly number[]) {
    this.startCpu = this.lastCpu = this.read();
    this.startAt = this.lastAt = performance.now();
  }

  private read(): number {
    let sum = 0;
    for (const pid of this.pids) sum += cpuMicros(pid) ?? 0;
    return sum;
  }

  /** CPU % of one core since the previous lap (or construction). */
  lap(): number {
    const cpu = this.read();
    const at = performance.now();
    const pct = pctOf(cpu - this.lastCpu, at - this.lastAt);
    this.lastCpu = cpu;
    this.lastAt = at;
    return pct;
  }

  /** CPU µs and wall ms since construction. */
  total(): { cpuMicros: number; wallMs: number; pct: number } {
    const cpu = this.read() - this.startCpu;
    const wallMs = performance.now() - this.startAt;
    return { cpuMicros: cpu, wallMs, pct: pctOf(cpu, wallMs) };
  }
}

function pctOf(cpuMicros: number, wallMs: number): number {
  return wallMs > 0 ? (cpuMicros / (wallMs * 1000)) * 100 : 0;
}

/** Machine-wide CPU time from /proc/stat, µs: busy (user…softirq) and steal, summed over cores. */
export function machineCpuMicros(): { busy: number; steal: number } {
  let text: string;
  try {
    text = readFileSync('/proc/stat', 'utf8');
  } catch {
    return { busy: 0, steal: 0 };
  }
  const fields = text.slice(0, text.indexOf('\n')).trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is inside user.
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  const toMicros = 1e6 / clockTicks();
  return { busy: (user + nice + system + irq + softirq) * toMicros, steal: steal * toMicros };
}
