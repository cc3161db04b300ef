import { MetricsService } from '../metrics';
import { IdentificationError } from './errors';
import {
  FACE_TOKEN_HOLD_MS,
  FaceCapacity,
  INITIAL_SESSION_MS,
  RETRY_MAX_MS,
  RETRY_MIN_MS,
  WAITING_DUE_MS,
  WAITING_GRACE_MS,
} from './face-capacity';

/** A FaceCapacity on a clock the test moves by hand. */
function capacity(limit: number, metrics?: MetricsService) {
  const clock = { t: 1_000_000 };
  const c = new FaceCapacity({ FACE_SESSIONS_MAX: limit }, metrics, () => clock.t);
  return { c, clock };
}

const inAMinute = () => new Date(Date.now() + 60_000);

/** A face token issued to this patient: reserved, then held by session `id`. */
function issue(c: FaceCapacity, id: string, patient = id, clinic = 'clinic-1') {
  c.reserve(clinic, patient).hold(id, inAMinute());
}

function refusal(fn: () => unknown): IdentificationError {
  try {
    fn();
  } catch (err) {
    if (err instanceof IdentificationError) return err;
    throw err;
  }
  throw new Error('not refused');
}

describe('FaceCapacity', () => {
  it('refuses the third face session at a capacity of 2, with when to come back, and admits again once one ends', () => {
    const { c } = capacity(2);
    issue(c, 's1');
    issue(c, 's2');
    const err = refusal(() => c.reserve('clinic-1', 'p3'));
    expect(err.code).toBe('capacity_exceeded');
    expect(err.details?.retryAfterMs).toBeGreaterThanOrEqual(RETRY_MIN_MS);
    expect(err.retryAfterSeconds).toBeGreaterThan(0);

    c.streaming('s1', 'clinic-1', 's1');
    expect(c.usage()).toMatchObject({ limit: 2, streaming: 1, held: 1 });
    expect(() => c.reserve('clinic-1', 'p3')).toThrow(IdentificationError);
    c.release('s1'); // its verdict
    expect(c.usage()).toMatchObject({ limit: 2, streaming: 0, held: 1 });
    issue(c, 's3', 'p3');
    expect(() => c.reserve('clinic-1', 'p4')).toThrow(IdentificationError);
  });

  it('counts a token issued and not used yet for FACE_TOKEN_HOLD_MS at most', () => {
    const { c, clock } = capacity(1);
    issue(c, 's1');
    expect(() => c.reserve('clinic-1', 'p2')).toThrow(IdentificationError);
    clock.t += FACE_TOKEN_HOLD_MS - 1;
    expect(() => c.reserve('clinic-1', 'p2')).toThrow(IdentificationError);
    clock.t += 1;
    issue(c, 's2', 'p2');
    // The first token, used late, is admitted all the same (and counted): the limit is for new tokens.
    c.streaming('s1', 'clinic-1', 's1');
    expect(c.usage()).toMatchObject({ limit: 1, streaming: 1, held: 1 });
  });

  it('holds no longer than the token lives', () => {
    const { c, clock } = capacity(1);
    c.reserve('clinic-1', 'p1').hold('s1', new Date(Date.now() + 5_000));
    clock.t += 5_000;
    expect(c.usage().held).toBe(0);
  });

  it('gives the place back when issuing the token fails', async () => {
    const { c } = capacity(1);
    await expect(c.admit('clinic-1', 'p1', () => Promise.reject(new Error('database down')))).rejects.toThrow(
      'database down',
    );
    expect(c.usage()).toMatchObject({ limit: 1, streaming: 0, held: 0 });
    const issued = await c.admit('clinic-1', 'p1', async () => ({ sessionId: 's1', expiresAt: inAMinute() }));
    expect(issued.sessionId).toBe('s1');
    expect(() => c.reserve('clinic-1', 'p2')).toThrow(IdentificationError);
  });

  it('counts a reservation while its token is being issued', () => {
    const { c } = capacity(1);
    const place = c.reserve('clinic-1', 'p1');
    expect(() => c.reserve('clinic-1', 'p2')).toThrow(IdentificationError);
    place.cancel();
    expect(() => c.reserve('clinic-1', 'p2')).not.toThrow();
  });

  it("does not count the patient's own unused token, which the new one supersedes", () => {
    const { c } = capacity(1);
    issue(c, 's1', 'p1');
    // The desk reloaded the page: a new token for the same patient supersedes the first.
    const place = c.reserve('clinic-1', 'p1');
    c.tokensSuperseded('clinic-1', 'p1');
    place.hold('s2', inAMinute());
    expect(c.usage()).toMatchObject({ limit: 1, streaming: 0, held: 1 });
    // Another clinic's patient with the same id is somebody else.
    expect(() => c.reserve('clinic-2', 'p1')).toThrow(IdentificationError);
    // Streaming sessions of the patient count (they are not superseded).
    c.streaming('s2', 'clinic-1', 'p1');
    expect(() => c.reserve('clinic-1', 'p1')).toThrow(IdentificationError);
  });

  it('frees the place of a token refused before use (the code path) and of a session ended elsewhere', () => {
    const { c } = capacity(2);
    issue(c, 's1');
    issue(c, 's2');
    c.release('s1');
    c.release('s1'); // idempotent
    c.release('unknown');
    expect(c.usage()).toMatchObject({ limit: 2, streaming: 0, held: 1 });
  });

  it('counts a session whose token came from another gateway', () => {
    const { c } = capacity(1);
    c.streaming('elsewhere', 'clinic-1', 'p9');
    expect(() => c.reserve('clinic-1', 'p1')).toThrow(IdentificationError);
    c.release('elsewhere');
    expect(() => c.reserve('clinic-1', 'p1')).not.toThrow();
  });

  it('gives back the place of a token used on another gateway of the fleet, or ended there', () => {
    let listener: ((n: { sessionId: string; state: 'connected' | 'finished' | 'code_pending' }) => void) | undefined;
    const signals = {
      onSessionChanged: (l: typeof listener) => {
        listener = l;
        return () => (listener = undefined);
      },
    };
    const c = new FaceCapacity({ FACE_SESSIONS_MAX: 3 }, undefined, () => 0, signals as never);
    c.onApplicationBootstrap();
    issue(c, 's1');
    issue(c, 's2');
    issue(c, 's3');
    c.streaming('s3', 'clinic-1', 's3');
    listener!({ sessionId: 's1', state: 'connected' }); // streams on another gateway, counted there
    listener!({ sessionId: 's2', state: 'code_pending' }); // refused on another gateway
    listener!({ sessionId: 's3', state: 'connected' }); // its own: no change
    expect(c.usage()).toMatchObject({ streaming: 1, held: 0 });
    listener!({ sessionId: 's3', state: 'finished' });
    expect(c.usage()).toMatchObject({ streaming: 0, held: 0 });
    c.beforeApplicationShutdown();
    expect(listener).toBeUndefined();
  });

  it('spaces the times it hands out by half the expected interval between two sessions ending', () => {
    const { c, clock } = capacity(2);
    c.streaming('s1', 'clinic-1', 'p1');
    clock.t += 1_000;
    c.streaming('s2', 'clinic-1', 'p2');
    // Expected: s1 ends at 3 s (INITIAL_SESSION_MS) after its start, i.e. in 2 s; then one end every 1.5 s, and desks
    // are asked back twice as often.
    const waits = [3, 4, 5, 6].map(
      (p) => refusal(() => c.reserve('clinic-1', `p${p}`)).details!.retryAfterMs as number,
    );
    const interval = INITIAL_SESSION_MS / 2 / 2;
    expect(waits).toEqual([2_000, 2_000 + interval, 2_000 + 2 * interval, 2_000 + 3 * interval]);
    // Never sooner than RETRY_MIN_MS, never later than RETRY_MAX_MS.
    clock.t += 10_000;
    expect(refusal(() => c.reserve('clinic-1', 'p3')).details!.retryAfterMs).toBe(RETRY_MIN_MS);
    for (let i = 0; i < 100; i++) refusal(() => c.reserve('clinic-1', `q${i}`));
    expect(refusal(() => c.reserve('clinic-1', 'p3')).details!.retryAfterMs).toBe(RETRY_MAX_MS);
  });

  it('keeps a place that frees up for the desks told to come back, not for a new visit', () => {
    const { c, clock } = capacity(1);
    c.streaming('s1', 'clinic-1', 'p1');
    const wait = refusal(() => c.reserve('clinic-1', 'p2')).details!.retryAfterMs as number;
    expect(c.usage().waiting).toBe(1);
    c.release('s1');
    // p2's desk is due back within WAITING_DUE_MS: the place is its, a new visit (the desk that just finished, with
    // its next patient) waits its turn.
    clock.t += Math.max(0, wait - WAITING_DUE_MS);
    expect(refusal(() => c.reserve('clinic-1', 'p3')).code).toBe('capacity_exceeded');
    clock.t += WAITING_DUE_MS;
    issue(c, 's2', 'p2');
    expect(c.usage()).toMatchObject({ held: 1, waiting: 1 }); // p3 waits now
  });

  it('admits a new visit while the desks told to wait are not due back yet, and forgets a desk that did not come back', () => {
    const { c, clock } = capacity(1);
    c.streaming('s1', 'clinic-1', 'p1');
    const waits = Array.from(
      { length: 12 },
      (_, i) => refusal(() => c.reserve('clinic-1', `w${i}`)).details!.retryAfterMs as number,
    );
    expect(Math.min(...waits)).toBeGreaterThan(WAITING_DUE_MS); // s1 is expected to end in INITIAL_SESSION_MS
    expect(c.usage().waiting).toBe(12);
    // s1 ends early: nobody is due back within WAITING_DUE_MS, so the freed place goes to whoever asks.
    c.release('s1');
    issue(c, 's2', 'p9');
    clock.t += Math.max(...waits) + WAITING_GRACE_MS; // nobody came back
    expect(c.usage().waiting).toBe(0);
  });

  it('learns the length of a session from those that ended', () => {
    const { c, clock } = capacity(1);
    for (let i = 0; i < 30; i++) {
      c.streaming(`s${i}`, 'clinic-1', `p${i}`);
      clock.t += 1_000;
      c.release(`s${i}`);
    }
    expect(c.expectedSessionMs()).toBeGreaterThan(1_000);
    expect(c.expectedSessionMs()).toBeLessThan(1_010);
  });

  it('admits everything with FACE_SESSIONS_MAX=0', () => {
    const { c } = capacity(0);
    for (let i = 0; i < 50; i++) issue(c, `s${i}`);
    expect(c.usage()).toMatchObject({ limit: 0, streaming: 0, held: 50 });
  });

  it('reports its places and refusals in /metrics', async () => {
    const metrics = new MetricsService();
    const { c } = capacity(1, metrics);
    issue(c, 's1');
    c.streaming('s1', 'clinic-1', 's1');
    expect(() => c.reserve('clinic-1', 'p2')).toThrow(IdentificationError);
    const text = await metrics.registry.metrics();
    expect(text).toContain('faceid_face_sessions_max 1');
    expect(text).toContain('faceid_face_sessions{state="streaming"} 1');
    expect(text).toContain('faceid_face_sessions{state="held"} 0');
    expect(text).toContain('faceid_face_sessions_refused_total 1');
  });
});
