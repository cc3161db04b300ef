export { MetricsModule } from './metrics.module';
export { MetricsService, type FaceidMetrics, type AnalysisCall } from './metrics.service';
