// Identification statistics from the stored MIS events.
export { StatsModule } from './stats.module';
export {
  StatsService,
  StatsError,
  resolveStatsRange,
  DEFAULT_STATS_WINDOW_MS,
  MAX_STATS_SPAN_DAYS,
  type StatsRange,
  type StatsReport,
} from './stats.service';
export {
  aggregateOutcomes,
  summarizeDistribution,
  summarizeDurations,
  DURATION_HISTOGRAM_BITS,
  DURATIONS_REQUEST,
  PERCENTILE_DEFINITION,
  PERCENTILE_RELATIVE_ERROR,
  REFUSAL_RATE_DEFINITION,
  RESULTS,
  type DurationSummary,
  type Stats,
} from './aggregate';
export { quantile, quantileAt, histogramQuantile, type HistogramBucket } from './quantile';
