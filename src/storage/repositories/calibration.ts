import type { Db, Tx } from '../db';
import { Prisma } from '../generated/sqlite/client';
import type { CalibrationCount, CalibrationIncrement, CalibrationRepository } from '../ports';

/** The UTC day of `at`, YYYY-MM-DD: the day a verdict's calibration counts go to. */
export const utcDay = (at: Date): string => at.toISOString().slice(0, 10);

/**
 * Adds `increments` to the calibration bins of one workstation and day, inside the caller's transaction (the verdict's).
 * One INSERT ... ON CONFLICT DO UPDATE (SQLite 3.24+ and PostgreSQL alike): concurrent verdicts of a desk add up in
 * the database instead of racing on a read-then-write. The same bin twice is merged first (PostgreSQL refuses to
 * update a row twice in one statement), and the rows go in key order, so two transactions take the bins' row locks in
 * the same order. What the bins are is src/calibration's business: storage only counts.
 */
export async function incrementCalibration(
  tx: Tx,
  key: { clinicId: string; workstationId: string; day: string },
  increments: readonly CalibrationIncrement[],
): Promise<void> {
  const merged = new Map<string, CalibrationIncrement>();
  for (const inc of increments) {
    if (!(Number.isInteger(inc.count) && inc.count > 0)) continue;
    const id = `${inc.metric}\u0000${inc.bin}`;
    const seen = merged.get(id);
    if (seen) seen.count += inc.count;
    else merged.set(id, { metric: inc.metric, bin: inc.bin, count: inc.count });
  }
  if (merged.size === 0) return;
  const rows = [...merged.values()].sort((a, b) =>
    a.metric === b.metric ? (a.bin < b.bin ? -1 : a.bin > b.bin ? 1 : 0) : a.metric < b.metric ? -1 : 1,
  );
  const values = rows.map(
    (r) => Prisma.sql`(${key.clinicId}, ${key.workstationId}, ${key.day}, ${r.metric}, ${r.bin}, ${r.count})`,
  );
  await tx.$executeRaw`INSERT INTO "CalibrationBin" ("clinicId", "workstationId", "day", "metric", "bin", "count")
    VALUES ${Prisma.join(values)}
    ON CONFLICT ("clinicId", "workstationId", "day", "metric", "bin")
    DO UPDATE SET "count" = "CalibrationBin"."count" + excluded."count"`;
}

export class PrismaCalibrationRepository implements CalibrationRepository {
  constructor(private readonly db: Db) {}

  totals(clinicId: string, range: { fromDay: string; toDay: string }): Promise<CalibrationCount[]> {
    return this.db.run(async (c) => {
      // Days are YYYY-MM-DD strings: their order is the calendar's. Summed in the database (GROUP BY), so a long
      // window costs one row per workstation, metric and bin.
      const rows = await c.calibrationBin.groupBy({
        by: ['workstationId', 'metric', 'bin'],
        where: { clinicId, day: { gte: range.fromDay, lte: range.toDay } },
        _sum: { count: true },
        orderBy: [{ workstationId: 'asc' }, { metric: 'asc' }, { bin: 'asc' }],
      });
      return rows.map((r) => ({
        workstationId: r.workstationId,
        metric: r.metric,
        bin: r.bin,
        count: Number(r._sum.count ?? 0),
      }));
    });
  }
}
