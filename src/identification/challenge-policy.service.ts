import { Inject, Injectable, Logger } from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { parseChallenges, type ChallengeKind } from '../liveness/policy';
import { WORKSTATIONS, type LivenessChallengeSettings, type WorkstationRepository } from '../storage/ports';

/** Where a session's challenges came from. */
export type ChallengeSource = 'workstation' | 'clinic' | 'config';

export interface ResolvedChallenges {
  challenges: ChallengeKind[];
  source: ChallengeSource;
}

/** The stored form of a challenge list: the parser's normalised order, comma-separated. Throws RangeError. */
export function normaliseChallenges(text: string): string {
  return parseChallenges(text).join(',');
}

/**
 * The workstation's setting, else the clinic's, else `fallback` (LIVENESS_CHALLENGES). A stored value that no longer
 * parses (written by a newer version, or by hand) is passed over to the next level and reported to `onInvalid`.
 */
export function resolveChallenges(
  settings: LivenessChallengeSettings | null,
  fallback: readonly ChallengeKind[],
  onInvalid: (level: 'workstation' | 'clinic', err: RangeError) => void = () => undefined,
): ResolvedChallenges {
  for (const level of ['workstation', 'clinic'] as const) {
    const stored = settings?.[level];
    if (stored == null) continue;
    try {
      return { challenges: parseChallenges(stored), source: level };
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      onInvalid(level, err);
    }
  }
  return { challenges: [...fallback], source: 'config' };
}

/**
 * Which liveness challenges a session runs: the workstation's setting ?? the clinic's ?? LIVENESS_CHALLENGES. Per desk
 * because the light challenge needs a screen facing the patient; a desk whose monitor faces the doctor runs
 * `turn,blink` (`faceid workstation challenges`).
 */
@Injectable()
export class ChallengePolicyService {
  private readonly log = new Logger('ChallengePolicy');
  /** LIVENESS_CHALLENGES (checked when the config was loaded). */
  private readonly fallback: readonly ChallengeKind[];

  constructor(
    @Inject(CONFIG) config: Config,
    @Inject(WORKSTATIONS) private readonly workstations: WorkstationRepository,
  ) {
    this.fallback = Object.freeze(parseChallenges(config.LIVENESS_CHALLENGES));
  }

  /** For a session being admitted: its clinic and workstation as consumeToken() returned them. */
  async forSession(clinicId: string, workstationId: string): Promise<ChallengeKind[]> {
    const settings = await this.workstations.livenessChallenges(clinicId, workstationId);
    const onInvalid = (level: string, err: RangeError) =>
      this.log.warn(
        `Workstation ${workstationId}: the ${level}'s liveness challenges are invalid (${err.message}); next level used`,
      );
    return resolveChallenges(settings, this.fallback, onInvalid).challenges;
  }
}
