// Field calibration without images: fixed-bin histograms per clinic, workstation and UTC day (bins.ts), what they
// say (report.ts), `GET /calibration`, and `faceid calibrate` (src/cli/calibrate.ts).
export { CalibrationModule } from './calibration.module';
export {
  CalibrationService,
  CalibrationError,
  resolveDayRange,
  DEFAULT_CALIBRATION_DAYS,
  MAX_CALIBRATION_DAYS,
  type CalibrationReport,
  type CalibrationSummary,
  type DayRange,
} from './calibration.service';
export {
  METRICS,
  METRIC_NAMES,
  FRAME_STATES,
  DARK_CAUSES,
  faceVerdictBins,
  outcomeBins,
  failureCause,
  numericBin,
  type FaceVerdictFacts,
  type Metric,
} from './bins';
export {
  DEFAULT_RULES,
  Histograms,
  byWorkstation,
  sumOf,
  numericBins,
  binQuantile,
  scoreSummary,
  figuresOf,
  binsOf,
  suggestThreshold,
  driftFinding,
  darkFinding,
  addDays,
  dayOf,
  daysBetween,
  type CalibrationRules,
  type CalibrationFigures,
  type NumericBin,
  type ThresholdSuggestion,
  type DriftFinding,
  type DarkFinding,
} from './report';
export {
  assessClinic,
  type ClinicHistograms,
  type ClinicAssessment,
  type WorkstationAssessment,
  type WorkstationFlag,
} from './assess';
