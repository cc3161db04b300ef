import {
  binIndex,
  binRange,
  dominantFrameState,
  faceVerdictBins,
  failedChallenge,
  failureCause,
  isDarkFailure,
  METRICS,
  numericBin,
  outcomeBins,
  type FaceVerdictFacts,
  type NumericMetricSpec,
} from './bins';

const live = { passive: null, blink: true, light: true, turn: null };
const quality = {
  fullFrames: 2,
  faceSize: 33.4,
  brightness: 118.2,
  sharpness: 140.7,
  frames: { ok: 30, no_face: 2, too_dark: 1 },
};
const facts = (over: Partial<FaceVerdictFacts>): FaceVerdictFacts => ({
  result: 'match',
  score: 0.7312,
  liveness: live,
  reason: null,
  quality,
  ...over,
});
const asMap = (incs: Array<{ metric: string; bin: string; count: number }>) =>
  Object.fromEntries(incs.map((i) => [`${i.metric}=${i.bin}`, i.count]));

describe('numeric bins', () => {
  it('scores: 0.01 wide, the lower edge as label, negatives in [-1, 0), 1 in the last', () => {
    expect(numericBin('score.match', 0.7312)).toBe('0.73');
    expect(numericBin('score.match', 0.46)).toBe('0.46');
    expect(numericBin('score.match', 0.4599)).toBe('0.45');
    // Every two-decimal value lands in its own bin, however the float was made.
    for (let i = 0; i < 100; i++) expect(numericBin('score.match', i / 100)).toBe((i / 100).toFixed(2));
    expect(numericBin('score.match', 0.29)).toBe('0.29');
    expect(numericBin('score.match', 0.1 + 0.2)).toBe('0.30');
    expect(numericBin('score.match', -0.2)).toBe('-1.00');
    expect(numericBin('score.match', -5)).toBe('-1.00');
    expect(numericBin('score.match', 0)).toBe('0.00');
    expect(numericBin('score.match', 1)).toBe('0.99');
    expect(numericBin('score.match', Number.NaN)).toBeNull();
    expect((METRICS['score.match'] as NumericMetricSpec).edges).toHaveLength(101);
  });

  it('quality: face size, brightness and sharpness bins, open above where the scale is', () => {
    expect(numericBin('quality.face_size', 33.4)).toBe('32');
    expect(numericBin('quality.face_size', 10)).toBe('0');
    expect(numericBin('quality.face_size', 500)).toBe('128');
    expect(numericBin('quality.brightness', 118.2)).toBe('112');
    expect(numericBin('quality.brightness', 255)).toBe('240');
    expect(numericBin('quality.sharpness', 14.9)).toBe('0');
    expect(numericBin('quality.sharpness', 15)).toBe('15');
    expect(numericBin('quality.sharpness', 99999)).toBe('2000');
    expect(numericBin('liveness.passive', 0.95)).toBe('0.9');
    expect(() => numericBin('outcome', 1)).toThrow();
  });

  it('labels map back to their ranges; unknown labels to nothing', () => {
    const score = METRICS['score.match'] as NumericMetricSpec;
    expect(binRange(score, '0.46')).toEqual({ index: 47, lo: 0.46, hi: 0.47 });
    expect(binRange(score, '-1.00')).toEqual({ index: 0, lo: -1, hi: 0 });
    expect(binRange(score, '0.99')).toEqual({ index: 100, lo: 0.99, hi: 1 });
    expect(binRange(score, '0.465')).toBeNull();
    const size = METRICS['quality.face_size'] as NumericMetricSpec;
    expect(binRange(size, '128')).toEqual({ index: 10, lo: 128, hi: Infinity });
    expect(binIndex(size, 127.99)).toBe(9);
  });
});

describe('what a face verdict counts', () => {
  it('a match: its outcome, score bin, challenges, frame quality and frame states; no failure', () => {
    expect(asMap(faceVerdictBins(facts({})))).toEqual({
      'outcome=face:match': 1,
      'score.match=0.73': 1,
      'liveness.blink=pass': 1,
      'liveness.light=pass': 1,
      'quality.face_size=32': 1,
      'quality.brightness=112': 1,
      'quality.sharpness=120': 1,
      'frames=ok': 30,
      'frames=no_face': 2,
      'frames=too_dark': 1,
    });
  });

  it('a no_match counts its score under no_match and a failure', () => {
    const m = asMap(faceVerdictBins(facts({ result: 'no_match', score: 0.4123 })));
    expect(m).toMatchObject({ 'outcome=face:no_match': 1, 'score.no_match=0.41': 1, 'failure=no_match': 1 });
    expect(m['score.match=0.41']).toBeUndefined();
  });

  it('a spoof: the failed challenge fails, the ones not reached are not failures, the reason is the cause', () => {
    const m = asMap(
      faceVerdictBins(
        facts({
          result: 'spoof_suspected',
          score: null,
          liveness: { passive: 0.42, blink: false, light: false, turn: null },
          reason: 'light_no_response',
        }),
      ),
    );
    expect(m).toMatchObject({
      'outcome=face:spoof_suspected': 1,
      'liveness.light=fail': 1,
      'liveness.blink=not_reached': 1,
      'liveness.passive=0.4': 1,
      'failure=spoof_suspected:light_no_response': 1,
    });
    expect(Object.keys(m).some((k) => k.startsWith('score.'))).toBe(false);
    expect(Object.keys(m).some((k) => k.startsWith('liveness.turn'))).toBe(false); // not asked
  });

  it('a timeout: its cause is the state of most analysed frames', () => {
    const dark = {
      ...quality,
      fullFrames: 0,
      faceSize: null,
      brightness: null,
      sharpness: null,
      frames: { too_dark: 40, ok: 3 },
    };
    const m = asMap(
      faceVerdictBins(
        facts({
          result: 'timeout',
          score: null,
          liveness: { passive: null, blink: false, light: false, turn: null },
          quality: dark,
        }),
      ),
    );
    expect(m).toMatchObject({ 'failure=timeout:too_dark': 1, 'liveness.blink=not_reached': 1, 'frames=too_dark': 40 });
    expect(Object.keys(m).some((k) => k.startsWith('quality.'))).toBe(false); // no full frame to measure
    expect(failureCause({ result: 'timeout', reason: null, quality: { ...dark, frames: {} } })).toBe(
      'timeout:no_frames',
    );
    expect(failureCause({ result: 'timeout', reason: null, quality: { ...dark, frames: { ok: 9, no_face: 2 } } })).toBe(
      'timeout:incomplete',
    );
    expect(failureCause({ result: 'timeout', reason: null, quality: null })).toBe('timeout:no_frames');
    expect(failureCause({ result: 'error', reason: 'client_unsupported', quality: null })).toBe(
      'error:client_unsupported',
    );
    expect(failureCause({ result: 'error', reason: null, quality: null })).toBe('error:internal');
    expect(failureCause({ result: 'no_template', reason: null, quality: null })).toBeNull();
  });

  it('no_template: only its outcome (no frames were filmed)', () => {
    const m = faceVerdictBins(
      facts({
        result: 'no_template',
        score: null,
        quality: { fullFrames: 0, faceSize: null, brightness: null, sharpness: null, frames: {} },
      }),
    );
    expect(m).toEqual([{ metric: 'outcome', bin: 'face:no_template', count: 1 }]);
  });

  it('code and sweep verdicts count their outcome only', () => {
    expect(outcomeBins('code', 'locked_out')).toEqual([{ metric: 'outcome', bin: 'code:locked_out', count: 1 }]);
    expect(outcomeBins('none', 'expired')).toEqual([{ metric: 'outcome', bin: 'none:expired', count: 1 }]);
  });

  it('every bin is a known metric with a short label and a positive whole count', () => {
    for (const f of [
      facts({}),
      facts({ result: 'spoof_suspected', score: 0.2, reason: 'no_blink' }),
      facts({ result: 'error', score: null, reason: 'virtual_camera' }),
    ]) {
      for (const inc of faceVerdictBins(f)) {
        expect(inc.metric in METRICS).toBe(true);
        expect(inc.bin.length).toBeGreaterThan(0);
        expect(inc.bin.length).toBeLessThanOrEqual(64);
        expect(Number.isInteger(inc.count) && inc.count > 0).toBe(true);
      }
    }
  });

  it('helpers: challenge of a reason, dominant frame state, dark causes', () => {
    expect(failedChallenge('no_blink')).toBe('blink');
    expect(failedChallenge('turn_flat')).toBe('turn');
    expect(failedChallenge('virtual_camera')).toBeNull();
    expect(dominantFrameState({ no_face: 3, too_dark: 3 })).toBe('no_face'); // ties: the order of FRAME_STATES
    expect(dominantFrameState(undefined)).toBeNull();
    expect(isDarkFailure('timeout:too_dark')).toBe(true);
    expect(isDarkFailure('timeout:no_face')).toBe(true);
    expect(isDarkFailure('timeout:incomplete')).toBe(false);
    expect(isDarkFailure('no_match')).toBe(false);
  });
});
