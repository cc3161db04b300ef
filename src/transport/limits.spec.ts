import { ConnectionGuard, isRefusal, TokenBucket } from './limits';

describe('TokenBucket', () => {
  it('starts full, spends one token a take, and refills at its rate up to its capacity', () => {
    const b = new TokenBucket(3, 10, 0); // 3 tokens, 10 a second = one per 100 ms
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false]);
    expect(b.take(99)).toBe(false); // 0.99 of a token
    expect(b.take(100)).toBe(true);
    expect(b.take(10_000)).toBe(true); // refilled, but never past the capacity
    expect([b.take(10_000), b.take(10_000), b.take(10_000)]).toEqual([true, true, false]);
  });

  it('gains nothing from a clock that goes backwards', () => {
    const b = new TokenBucket(1, 1, 1000);
    expect(b.take(1000)).toBe(true);
    expect(b.take(0)).toBe(false);
    expect(b.take(1999)).toBe(false);
    expect(b.take(2000)).toBe(true);
  });
});

describe('isRefusal', () => {
  it("counts refusals of what the client sent, not the server's own failures", () => {
    for (const code of [
      'protocol_bad_message',
      'protocol_bad_magic',
      'frame_corrupt',
      'frame_too_complex',
      'frame_rate_exceeded',
    ]) {
      expect(isRefusal(code)).toBe(true);
    }
    for (const code of [
      'internal',
      'invalid_argument',
      'engine_closed',
      'session_refused',
      'session_finished',
      'client_unsupported',
    ]) {
      expect(isRefusal(code)).toBe(false);
    }
  });
});

describe('ConnectionGuard', () => {
  const limits = { messagesPerSecond: 5, errorsPerMinute: 3, sendBufferMax: 1000 };

  it('allows messagesPerSecond messages at once, then one per 1/messagesPerSecond s', () => {
    const clock = { t: 0 };
    const g = new ConnectionGuard(limits, () => clock.t);
    const burst = Array.from({ length: 1000 }, () => g.message());
    expect(burst.filter(Boolean)).toHaveLength(5);
    expect(burst.slice(0, 5).every(Boolean)).toBe(true);
    clock.t += 200;
    expect([g.message(), g.message()]).toEqual([true, false]);
  });

  it('allows errorsPerMinute error replies at once, then one per 60/errorsPerMinute s', () => {
    const clock = { t: 0 };
    const g = new ConnectionGuard(limits, () => clock.t);
    expect(Array.from({ length: 1000 }, () => g.errorReply()).filter(Boolean)).toHaveLength(3);
    clock.t += 19_999;
    expect(g.errorReply()).toBe(false);
    clock.t += 1;
    expect([g.errorReply(), g.errorReply()]).toEqual([true, false]);
  });

  it('lets bytes be queued up to sendBufferMax, counting what already waits, and records the peak', () => {
    const g = new ConnectionGuard(limits, () => 0);
    expect(g.mayQueue(0, 1000)).toBe(true);
    expect(g.mayQueue(600, 400)).toBe(true);
    expect(g.mayQueue(601, 400)).toBe(false);
    expect(g.mayQueue(0, 1001)).toBe(false);
    expect(g.peakBuffered).toBe(1000);
  });
});
