import {
  EVENTS_CHANNEL,
  parseNotice,
  reconnectDelayMs,
  SESSIONS_CHANNEL,
  Signals,
  type EventsNotice,
  type SessionNotice,
} from './signals';

const CLINIC = '6f1c2a52-5c55-4a8e-9d0c-1d1d3e7b9a10';
const SESSION = 'c3a0b8f4-1111-4c1e-8a47-0f3b2d7a9e21';

describe('parseNotice', () => {
  it('reads the events and sessions payloads', () => {
    expect(
      parseNotice(EVENTS_CHANNEL, JSON.stringify({ c: CLINIC, s: 12, t: 'identification.refused', o: 'abc' })),
    ).toEqual({
      kind: 'events',
      notice: { clinicId: CLINIC, seq: 12, type: 'identification.refused' },
      origin: 'abc',
    });
    expect(parseNotice(SESSIONS_CHANNEL, JSON.stringify({ id: SESSION, st: 'code_pending', o: 'abc' }))).toEqual({
      kind: 'session',
      notice: { sessionId: SESSION, state: 'code_pending' },
      origin: 'abc',
    });
    // seq and type are optional facts: a notice without them still says "look".
    expect(parseNotice(EVENTS_CHANNEL, JSON.stringify({ c: CLINIC }))).toEqual({
      kind: 'events',
      notice: { clinicId: CLINIC, seq: null, type: null },
      origin: null,
    });
  });

  it('ignores anything malformed', () => {
    for (const [channel, payload] of [
      [EVENTS_CHANNEL, 'not json'],
      [EVENTS_CHANNEL, '[]'],
      [EVENTS_CHANNEL, 'null'],
      [EVENTS_CHANNEL, JSON.stringify({ c: 12 })],
      [EVENTS_CHANNEL, JSON.stringify({ c: 'a b' })],
      [SESSIONS_CHANNEL, JSON.stringify({ id: SESSION, st: 'gone' })],
      [SESSIONS_CHANNEL, JSON.stringify({ st: 'expired' })],
      ['other_channel', JSON.stringify({ c: CLINIC })],
      [EVENTS_CHANNEL, undefined],
    ] as const) {
      expect(parseNotice(channel, payload)).toBeNull();
    }
  });
});

describe('reconnectDelayMs', () => {
  it('doubles up to the cap, with jitter in the upper half', () => {
    expect(reconnectDelayMs(0, 250, 10_000, () => 0)).toBe(125);
    expect(reconnectDelayMs(0, 250, 10_000, () => 1)).toBe(250);
    expect(reconnectDelayMs(3, 250, 10_000, () => 1)).toBe(2000);
    expect(reconnectDelayMs(10, 250, 10_000, () => 1)).toBe(10_000);
    expect(reconnectDelayMs(10, 250, 10_000, () => 0)).toBe(5000);
    expect(reconnectDelayMs(1000, 250, 10_000, () => 0.5)).toBe(7500);
  });
});

describe('Signals', () => {
  /** The repositories' in-process signal, as a test double. */
  function source(origin = 'mine') {
    const listeners = new Set<(clinicId: string) => void>();
    return {
      origin,
      onCommitted(l: (clinicId: string) => void) {
        listeners.add(l);
        return () => listeners.delete(l);
      },
      commit: (clinicId: string) => listeners.forEach((l) => l(clinicId)),
      get listeners() {
        return listeners.size;
      },
    };
  }

  it("passes this process's commits on at once (SQLite: that is all there is)", async () => {
    const src = source();
    const signals = new Signals(src);
    const seen: EventsNotice[] = [];
    signals.onEvents((n) => seen.push(n));
    expect(signals.state).toBe('in_process');
    signals.start(); // no listener to open
    src.commit(CLINIC);
    expect(seen).toEqual([{ clinicId: CLINIC, seq: null, type: null }]);
    await signals.close();
    expect(signals.state).toBe('stopped');
    expect(src.listeners).toBe(0);
  });

  it("delivers other processes' notifications and drops its own", () => {
    const signals = new Signals(source('mine'));
    const events: EventsNotice[] = [];
    const sessions: SessionNotice[] = [];
    signals.onEvents((n) => events.push(n));
    const off = signals.onSessionChanged((n) => sessions.push(n));
    signals.deliver(EVENTS_CHANNEL, JSON.stringify({ c: CLINIC, s: 3, t: 'identification.verdict', o: 'mine' }));
    signals.deliver(EVENTS_CHANNEL, JSON.stringify({ c: CLINIC, s: 4, t: 'identification.verdict', o: 'theirs' }));
    signals.deliver(SESSIONS_CHANNEL, JSON.stringify({ id: SESSION, st: 'expired', o: 'mine' }));
    signals.deliver(SESSIONS_CHANNEL, JSON.stringify({ id: SESSION, st: 'finished', o: 'theirs' }));
    signals.deliver(SESSIONS_CHANNEL, '{broken');
    expect(events).toEqual([{ clinicId: CLINIC, seq: 4, type: 'identification.verdict' }]);
    expect(sessions).toEqual([{ sessionId: SESSION, state: 'finished' }]);
    off();
    signals.deliver(SESSIONS_CHANNEL, JSON.stringify({ id: SESSION, st: 'expired', o: 'theirs' }));
    expect(sessions).toHaveLength(1);
  });

  it('keeps delivering when one reader throws', () => {
    const signals = new Signals(source());
    const seen: string[] = [];
    signals.onEvents(() => {
      throw new Error('a reader failed');
    });
    signals.onEvents((n) => seen.push(n.clinicId));
    signals.deliver(EVENTS_CHANNEL, JSON.stringify({ c: CLINIC, o: 'theirs' }));
    expect(seen).toEqual([CLINIC]);
  });
});
