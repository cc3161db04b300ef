// Identification statistics from the stored MIS events.
export { StatsModule } from './stats.module';
export {
  StatsService,
  resolveStatsRange,
  DEFAULT_STATS_WINDOW_MS,
  MAX_STATS_SPAN_DAYS,
  type StatsRange,
  type StatsReport,
} from './stats.service';
export {
  aggregateOutcomes,
  quantile,
  summarizeDurations,
  PERCENTILE_DEFINITION,
  REFUSAL_RATE_DEFINITION,
  RESULTS,
  type DurationSummary,
  type Stats,
} from './aggregate';
