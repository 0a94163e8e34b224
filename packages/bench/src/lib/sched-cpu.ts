/**
 * CPU time of a process to the nanosecond: the sum of its threads' run time from
 * /proc/<pid>/task/<tid>/schedstat (Linux). /proc/<pid>/stat counts in clock ticks (usually
 * 10 ms), too coarse for the cost of one admin call; the scheduler's own account is exact. A
 * thread that has exited is no longer counted, so read it over windows where the process's
 * threads live on (Node's are started once).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Run time of every live thread of `pid`, in µs; undefined once the process is gone. */
export function schedCpuMicros(pid: number): number | undefined {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let ns = 0;
  for (const tid of tids) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return ns / 1000;
}

/** Summed over `pids`; a process that is gone counts 0. */
export function schedCpuMicrosOf(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) sum += schedCpuMicros(pid) ?? 0;
  return sum;
}

/** Whether this machine's kernel keeps per-thread schedstat (CONFIG_SCHEDSTATS or sched_info). */
export function schedstatAvailable(): boolean {
  return schedCpuMicros(process.pid) !== undefined && schedCpuMicros(process.pid)! > 0;
}
