import { AppError } from '../http';
import { DEFAULT_STATS_WINDOW_MS, resolveStatsRange } from './stats.service';

describe('resolveStatsRange', () => {
  const now = new Date('2026-06-01T12:00:00.000Z');

  it('defaults to the 24 hours before now, or before `to`', () => {
    expect(resolveStatsRange({}, now)).toEqual({ from: new Date(now.getTime() - DEFAULT_STATS_WINDOW_MS), to: now });
    expect(resolveStatsRange({ to: '2026-05-01T00:00:00Z' }, now)).toEqual({
      from: new Date('2026-04-30T00:00:00Z'),
      to: new Date('2026-05-01T00:00:00Z'),
    });
    expect(resolveStatsRange({ from: '2026-05-31T00:00:00+05:00' }, now)).toEqual({
      from: new Date('2026-05-30T19:00:00Z'),
      to: now,
    });
  });

  it.each([
    [{ from: '2026-05-01T00:00:00Z', to: '2026-05-01T00:00:00Z' }, 'after from'],
    [{ from: '2026-05-02T00:00:00Z', to: '2026-05-01T00:00:00Z' }, 'after from'],
    [{ from: '2026-06-02T00:00:00Z' }, 'before now'],
    [{ from: '2025-05-30T00:00:00Z', to: '2026-06-01T00:00:00Z' }, '366 days'],
  ])('refuses %j with stats_range_invalid', (query, message) => {
    let err: unknown;
    try {
      resolveStatsRange(query, now);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: 'stats_range_invalid', message: expect.stringContaining(message) });
  });

  it('accepts exactly 366 days', () => {
    expect(resolveStatsRange({ from: '2025-05-31T12:00:00Z' }, now).from).toEqual(new Date('2025-05-31T12:00:00Z'));
  });
});
