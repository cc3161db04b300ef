import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { AppError } from '../http';
import { CALIBRATION, KEYS, type CalibrationRepository, type KeyRepository } from '../storage/ports';
import {
  addDays,
  binsOf,
  byWorkstation,
  dayOf,
  daysBetween,
  DEFAULT_RULES,
  figuresOf,
  sumOf,
  type CalibrationFigures,
  type CalibrationRules,
  type Histograms,
} from './report';

/** A calibration window the service refuses (400). */
export class CalibrationError extends AppError {
  static override readonly status = { calibration_range_invalid: 400 };

  constructor(code: 'calibration_range_invalid', message: string) {
    super(code, message);
    this.name = 'CalibrationError';
  }
}

/** The window when the caller names no bound, in UTC days (today included). */
export const DEFAULT_CALIBRATION_DAYS = 30;
/** The longest window one request may ask for. */
export const MAX_CALIBRATION_DAYS = 366;

export interface DayRange {
  fromDay: string;
  toDay: string;
}

/**
 * The UTC days from..to, both included: `to` defaults to today, `from` to DEFAULT_CALIBRATION_DAYS days ending at
 * `to`. 400 `calibration_range_invalid` when from is after to or the window is longer than MAX_CALIBRATION_DAYS.
 */
export function resolveDayRange(query: { from?: string; to?: string }, now: Date): DayRange {
  const toDay = query.to ?? dayOf(now);
  const fromDay = query.from ?? addDays(toDay, -(DEFAULT_CALIBRATION_DAYS - 1));
  if (fromDay > toDay) throw new CalibrationError('calibration_range_invalid', 'from must not be after to.');
  if (daysBetween(fromDay, toDay) > MAX_CALIBRATION_DAYS) {
    throw new CalibrationError(
      'calibration_range_invalid',
      `The window may span at most ${MAX_CALIBRATION_DAYS} days.`,
    );
  }
  return { fromDay, toDay };
}

type Bins = ReturnType<typeof binsOf>;

export interface CalibrationSummary extends CalibrationFigures {
  metrics: Bins;
}

export interface CalibrationReport {
  from: string;
  to: string;
  days: number;
  matchThreshold: number;
  nearMissMargin: number;
  clinic: CalibrationSummary;
  workstations: Array<CalibrationSummary & { workstationId: string; name: string | null }>;
}

const summaryOf = (h: Histograms, threshold: number, rules: CalibrationRules): CalibrationSummary => ({
  ...figuresOf(h, threshold, rules),
  metrics: binsOf(h),
});

/** The calibration histograms of a clinic, per workstation and summed, with the figures derived from them. */
@Injectable()
export class CalibrationService {
  constructor(
    @Inject(CALIBRATION) private readonly calibration: CalibrationRepository,
    @Inject(KEYS) private readonly keys: KeyRepository,
    @Inject(CONFIG) private readonly config: Config,
  ) {}

  async forClinic(
    clinicId: string,
    query: { from?: string; to?: string; workstation?: string },
    now = new Date(),
    rules: CalibrationRules = DEFAULT_RULES,
  ): Promise<CalibrationReport> {
    const range = resolveDayRange(query, now);
    const perDesk = byWorkstation(await this.calibration.totals(clinicId, range));
    const names = new Map((await this.keys.list('workstation', clinicId, now)).map((w) => [w.id, w.name]));
    const threshold = this.config.MATCH_THRESHOLD;
    return {
      from: range.fromDay,
      to: range.toDay,
      days: daysBetween(range.fromDay, range.toDay),
      matchThreshold: threshold,
      nearMissMargin: rules.nearMissMargin,
      // Always the whole clinic, also when one workstation is asked for: its figures are compared with these.
      clinic: summaryOf(sumOf(perDesk.values()), threshold, rules),
      workstations: [...perDesk]
        .filter(([id]) => query.workstation === undefined || id === query.workstation)
        .map(([workstationId, h]) => ({
          workstationId,
          name: names.get(workstationId) ?? null,
          ...summaryOf(h, threshold, rules),
        })),
    };
  }
}
