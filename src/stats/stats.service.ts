import { Inject, Injectable } from '@nestjs/common';
import { AppError } from '../http';
import { EVENTS, type EventRepository } from '../storage/ports';
import { aggregateOutcomes, DURATIONS_REQUEST, type Stats } from './aggregate';

/** A statistics window the service refuses (400). */
export class StatsError extends AppError {
  static override readonly status = { stats_range_invalid: 400 };

  constructor(code: 'stats_range_invalid', message: string) {
    super(code, message);
    this.name = 'StatsError';
  }
}

/** The window when the caller names no bound. */
export const DEFAULT_STATS_WINDOW_MS = 24 * 60 * 60 * 1000;
/** The longest window one request may ask for (a leap year), so a query stays bounded. */
export const MAX_STATS_SPAN_DAYS = 366;

export interface StatsRange {
  from: Date;
  to: Date;
}

export interface StatsReport extends Stats {
  from: string;
  to: string;
}

/**
 * The window [from, to): `to` defaults to now, `from` to 24 h before `to`. Throws 400 `stats_range_invalid` when
 * to <= from or the span is longer than MAX_STATS_SPAN_DAYS. The timestamps are ISO 8601 (checked at the edge).
 */
export function resolveStatsRange(query: { from?: string; to?: string }, now: Date): StatsRange {
  const to = query.to === undefined ? now : new Date(query.to);
  const from = query.from === undefined ? new Date(to.getTime() - DEFAULT_STATS_WINDOW_MS) : new Date(query.from);
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) {
    throw new StatsError('stats_range_invalid', 'from and to must be ISO 8601 timestamps.');
  }
  if (to.getTime() <= from.getTime()) {
    throw new StatsError(
      'stats_range_invalid',
      query.to === undefined ? 'from must be before now (to defaults to now).' : 'to must be after from.',
    );
  }
  if (to.getTime() - from.getTime() > MAX_STATS_SPAN_DAYS * 24 * 60 * 60 * 1000) {
    throw new StatsError('stats_range_invalid', `The window may span at most ${MAX_STATS_SPAN_DAYS} days.`);
  }
  return { from, to };
}

/** Statistics of one clinic, from its stored MIS events only (never templates, frames or scores). */
@Injectable()
export class StatsService {
  constructor(@Inject(EVENTS) private readonly events: EventRepository) {}

  async forClinic(clinicId: string, query: { from?: string; to?: string }, now = new Date()): Promise<StatsReport> {
    const { from, to } = resolveStatsRange(query, now);
    // Two aggregate queries, each its own turn on the storage queue (SQLite): the window's rows never reach memory.
    const counts = await this.events.outcomeCounts(clinicId, from, to);
    const durations = await this.events.verdictDurations(clinicId, from, to, DURATIONS_REQUEST);
    const stats = aggregateOutcomes(counts, durations);
    return { from: from.toISOString(), to: to.toISOString(), ...stats };
  }
}
