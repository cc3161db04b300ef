import { z } from 'zod';

export const CHALLENGE_KINDS = ['blink', 'light', 'turn'] as const;
export type ChallengeKind = (typeof CHALLENGE_KINDS)[number];

/** The order challenges run in: the light first (the patient looks at the screen anyway), the blink last. */
const RUN_ORDER: readonly ChallengeKind[] = ['light', 'turn', 'blink'];

export const CHALLENGES_EXPECTS =
  'a comma list of blink, light and turn that includes blink and light or turn (e.g. light,blink)';

/**
 * Parses a challenge set such as `light,blink` (config, clinic and workstation settings). Blink always stays, and
 * one of light (needs a screen facing the patient) or turn goes with it. Returned in run order: light, turn, blink.
 */
export function parseChallenges(s: string): ChallengeKind[] {
  const quoted = JSON.stringify(s);
  const seen = new Set<ChallengeKind>();
  for (const item of s.split(',').map((x) => x.trim().toLowerCase())) {
    if (!(CHALLENGE_KINDS as readonly string[]).includes(item)) {
      throw new RangeError(`unknown challenge ${JSON.stringify(item)} in ${quoted}: expected ${CHALLENGES_EXPECTS}`);
    }
    const kind = item as ChallengeKind;
    if (seen.has(kind)) throw new RangeError(`challenge ${kind} is listed twice in ${quoted}`);
    seen.add(kind);
  }
  if (!seen.has('blink')) {
    throw new RangeError(`${quoted} leaves out blink, which always runs: expected ${CHALLENGES_EXPECTS}`);
  }
  if (!seen.has('light') && !seen.has('turn')) {
    throw new RangeError(`${quoted} needs light or turn beside blink: a blink alone is easy to replay`);
  }
  return RUN_ORDER.filter((k) => seen.has(k));
}

/** The normalised text form stored in the database (`light,turn,blink` order). */
export function formatChallenges(kinds: readonly ChallengeKind[]): string {
  return parseChallenges(kinds.join(',')).join(',');
}

/** A challenge set as text (environment, database column), parsed to its normalised list. */
export const ChallengeSet = z.string().transform((s, ctx): ChallengeKind[] => {
  try {
    return parseChallenges(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
