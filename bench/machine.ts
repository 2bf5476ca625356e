// How much of the machine other work took during the run: the CPU time all cores spent busy
// (/proc/stat) less what this process, its finished children (the load generators) and the servers
// used. On a shared 2-core machine that is what decides whether the figures mean anything.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { descendantPids } from './servers.js';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** All cores' ticks from /proc/stat: busy (steal included, as other work) and steal alone. */
function machineTicks(): { busy: number; steal: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  const [, user, nice, system, , , irq, softirq, steal] = cpu;
  return { busy: user! + nice! + system! + irq! + softirq! + steal!, steal: steal! };
}

/** All cores' ticks since `started` (a performance.now() reading). */
function capacitySince(started: number): number {
  return ((performance.now() - started) / 1000) * TICKS_PER_SECOND * os.cpus().length;
}

/**
 * Measures the share (0-1) of all cores' time the hypervisor gave to other guests (steal) from now
 * until the returned function is called: on a virtual machine, CPU the registries wanted and did
 * not get. Counted in foreignShare too, but over a whole run it is diluted by the idle stretches,
 * while a burst of it during a 5 s load decides that row.
 */
export function watchSteal(): () => number {
  const started = performance.now();
  const steal = machineTicks().steal;
  return () => {
    const capacity = capacitySince(started);
    return capacity > 0 ? (machineTicks().steal - steal) / capacity : 0;
  };
}

/** utime + stime + cutime + cstime of a process, in ticks (0 once it is gone). */
function processTicks(pid: number | 'self'): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ').map(Number);
    return fields[11]! + fields[12]! + fields[13]! + fields[14]!;
  } catch {
    return 0;
  }
}

export interface CpuWatch {
  /** Share (0-1) of all cores' time since the start that went to processes other than ours. */
  foreignShare(serverPids: number[]): number;
  /** The part of that share the host gave to its other guests (steal). */
  stealShare(): number;
}

/** Call before the servers start; pass their pids at the end, while they still run. */
export function watchCpu(): CpuWatch {
  const started = performance.now();
  const busy = machineTicks().busy;
  const own = processTicks('self');
  return {
    foreignShare(serverPids) {
      const ours = processTicks('self') - own + serverPids.reduce((sum, pid) => sum + processTicks(pid), 0);
      const capacity = capacitySince(started);
      return capacity > 0 ? Math.max(0, machineTicks().busy - busy - ours) / capacity : 0;
    },
    stealShare: watchSteal(),
  };
}

/**
 * CPU time, in ms, that a process and all its descendants have used so far (utime + stime of
 * every thread, and of descendants that exited and were reaped): what a registry's whole process
 * tree costs, whether its database is a child process or runs inside the server. Clock ticks are
 * 10 ms, so a figure is only as good as the CPU time it spans is long.
 */
export function treeCpuMs(pid: number): number {
  return [pid, ...descendantPids(pid)].reduce((sum, p) => sum + processTicks(p), 0) * (1000 / TICKS_PER_SECOND);
}
