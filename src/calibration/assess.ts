/**
 * The assessment `faceid calibrate` prints for one clinic: per workstation its figures and flags, and one suggested
 * threshold from the whole clinic's scores. Built from three readings of the histograms (the whole window, its
 * recent days, the days before them), so it is a pure function of counts.
 */
import {
  darkFinding,
  DEFAULT_RULES,
  driftFinding,
  figuresOf,
  numericBins,
  suggestThreshold,
  sumOf,
  type CalibrationFigures,
  type CalibrationRules,
  type DarkFinding,
  type DriftFinding,
  type Histograms,
  type ThresholdSuggestion,
} from './report';

export interface ClinicHistograms {
  /** Per workstation id: the whole window. */
  window: Map<string, Histograms>;
  /** Per workstation id: the last `rules.recentDays` days of it. */
  recent: Map<string, Histograms>;
  /** Per workstation id: the days of the window before those (empty when the window is no longer). */
  earlier: Map<string, Histograms>;
}

export type WorkstationFlag = 'score_drift' | 'dark_or_no_face';

export interface WorkstationAssessment {
  workstationId: string;
  name: string | null;
  figures: CalibrationFigures;
  drift: DriftFinding;
  dark: DarkFinding;
  flags: WorkstationFlag[];
}

export interface ClinicAssessment {
  figures: CalibrationFigures;
  threshold: ThresholdSuggestion;
  workstations: WorkstationAssessment[];
}

const EMPTY: Histograms[] = [];

export function assessClinic(
  h: ClinicHistograms,
  names: ReadonlyMap<string, string>,
  matchThreshold: number,
  rules: CalibrationRules = DEFAULT_RULES,
): ClinicAssessment {
  const whole = sumOf(h.window.values());
  const ids = [...new Set([...h.window.keys(), ...h.recent.keys()])].sort((a, b) =>
    (names.get(a) ?? a).localeCompare(names.get(b) ?? b),
  );
  const workstations = ids.map((id): WorkstationAssessment => {
    const own = sumOf(h.window.has(id) ? [h.window.get(id)!] : EMPTY);
    const others = sumOf([...h.window].filter(([other]) => other !== id).map(([, x]) => x));
    const figures = figuresOf(own, matchThreshold, rules);
    const match = (x: Histograms | undefined) => numericBins('score.match', x?.get('score.match') ?? new Map());
    const drift = driftFinding(
      { recent: match(h.recent.get(id)), earlier: match(h.earlier.get(id)), clinicOthers: match(others) },
      rules,
    );
    const dark = darkFinding(figures, rules);
    const flags: WorkstationFlag[] = [];
    if (drift.flagged) flags.push('score_drift');
    if (dark.flagged) flags.push('dark_or_no_face');
    return { workstationId: id, name: names.get(id) ?? null, figures, drift, dark, flags };
  });
  return {
    figures: figuresOf(whole, matchThreshold, rules),
    threshold: suggestThreshold(
      {
        match: numericBins('score.match', whole.get('score.match')),
        noMatch: numericBins('score.no_match', whole.get('score.no_match')),
        threshold: matchThreshold,
      },
      rules,
    ),
    workstations,
  };
}
