import { CHALLENGE_KINDS, ChallengeSet, formatChallenges, parseChallenges } from './policy';

describe('parseChallenges', () => {
  it('accepts the three sets in any order, case and spacing, and returns them in run order', () => {
    expect(parseChallenges('light,blink')).toEqual(['light', 'blink']);
    expect(parseChallenges('blink,light')).toEqual(['light', 'blink']);
    expect(parseChallenges('turn,blink')).toEqual(['turn', 'blink']);
    expect(parseChallenges(' Blink , TURN, light ')).toEqual(['light', 'turn', 'blink']);
  });

  it('refuses sets without blink, with blink alone, or with unknown, empty or repeated entries', () => {
    expect(() => parseChallenges('light,turn')).toThrow(/leaves out blink/);
    expect(() => parseChallenges('blink')).toThrow(/needs light or turn/);
    expect(() => parseChallenges('light,blink,smile')).toThrow(/unknown challenge "smile"/);
    expect(() => parseChallenges('')).toThrow(/unknown challenge ""/);
    expect(() => parseChallenges('light,,blink')).toThrow(RangeError);
    expect(() => parseChallenges('light,blink,light')).toThrow(/listed twice/);
  });

  it('formats the normalised text form', () => {
    expect(formatChallenges(['blink', 'turn', 'light'])).toBe('light,turn,blink');
    expect(() => formatChallenges(['blink'])).toThrow(RangeError);
    expect(CHALLENGE_KINDS).toEqual(['blink', 'light', 'turn']);
  });
});

describe('ChallengeSet', () => {
  it('parses text to the normalised list, and reports a bad set as an issue', () => {
    expect(ChallengeSet.parse('blink,turn')).toEqual(['turn', 'blink']);
    const r = ChallengeSet.safeParse('turn');
    expect(r.success).toBe(false);
    expect(r.error!.issues[0].message).toMatch(/leaves out blink/);
    expect(ChallengeSet.safeParse(3).success).toBe(false);
  });
});
