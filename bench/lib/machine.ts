import * as fs from 'node:fs';
import * as os from 'node:os';

/**
 * How busy the whole machine was during a measurement, from /proc/stat (Linux), so that the CPU other processes
 * took (other people's jobs on a shared machine) can be shown beside each figure. Null elsewhere.
 */

export interface CpuSnapshot {
  busy: number;
  total: number;
  /** This process's own CPU at the same moment. */
  self: NodeJS.CpuUsage;
}

export function cpuSnapshot(): CpuSnapshot | null {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already inside user)
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
    const busy = user + nice + system + irq + softirq + (steal ?? 0);
    return { busy, total: busy + idle + iowait, self: process.cpuUsage() };
  } catch {
    return null;
  }
}

/**
 * CPU used by everything else on the machine between two snapshots, as % of one core: the machine's busy time
 * minus this process and the `known` processes (their CPU % over the same window).
 */
export function otherCpuPercent(before: CpuSnapshot | null, after: CpuSnapshot | null, known: number[]): number {
  if (!before || !after || after.total <= before.total) return NaN;
  const cores = os.availableParallelism();
  const machine = ((after.busy - before.busy) / (after.total - before.total)) * cores * 100;
  const wallMs = ((after.total - before.total) / cores) * (1000 / 100); // /proc/stat counts in 1/100 s per core
  const selfMs = (after.self.user - before.self.user + after.self.system - before.self.system) / 1000;
  const self = wallMs > 0 ? (selfMs / wallMs) * 100 : 0;
  return Math.max(0, machine - self - known.reduce((a, b) => a + b, 0));
}
