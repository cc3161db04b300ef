import { Logger, type ExecutionContext } from '@nestjs/common';
import type { Config } from '../config';
import { DrainGuard } from './drain.guard';
import { DrainService, DrainingError } from './drain.service';

const config = { DRAIN_TIMEOUT_S: 30 } as Config;

beforeAll(() => Logger.overrideLogger(false));
afterAll(() => Logger.overrideLogger(['log', 'error', 'warn', 'debug', 'verbose']));

describe('DrainService', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('serves until drain() begins, then waits for the tracked work to end', async () => {
    const drain = new DrainService(config);
    let sessions = 2;
    drain.track('face sessions', () => sessions);
    expect(drain.draining).toBe(false);
    let result: unknown;
    const done = drain.drain('SIGTERM').then((r) => (result = r));
    expect(drain.draining).toBe(true);
    await jest.advanceTimersByTimeAsync(5000);
    expect(result).toBeUndefined(); // two sessions still run (fake time: nothing else can happen)
    expect(drain.running()).toEqual({ 'face sessions': 2 });
    sessions = 0;
    await jest.advanceTimersByTimeAsync(100);
    await done;
    expect(result).toEqual({ waitedMs: expect.any(Number), left: 0, ended: 'idle' });
  });

  it('ends the wait at DRAIN_TIMEOUT_S, or at once on cutShort()', async () => {
    const drain = new DrainService(config);
    drain.track('face sessions', () => 1);
    const timedOut = drain.drain('SIGTERM');
    await jest.advanceTimersByTimeAsync(30_000);
    expect(await timedOut).toEqual({ waitedMs: 30_000, left: 1, ended: 'timeout' });

    const other = new DrainService(config);
    other.track('face sessions', () => 1);
    const cut = other.drain('SIGTERM');
    await jest.advanceTimersByTimeAsync(1000);
    other.cutShort();
    expect(await cut).toMatchObject({ left: 1, ended: 'cut_short' });
  });

  it('returns at once with nothing running, and a zero timeout does not wait', async () => {
    const drain = new DrainService(config);
    expect(await drain.drain('SIGTERM')).toMatchObject({ left: 0, ended: 'idle' });
    const zero = new DrainService({ DRAIN_TIMEOUT_S: 0 } as Config);
    zero.track('face sessions', () => 3);
    expect(await zero.drain('SIGTERM')).toMatchObject({ left: 3, ended: 'timeout' });
  });

  it('forgets work whose tracker was removed', () => {
    const drain = new DrainService(config);
    const untrack = drain.track('face sessions', () => 4);
    expect(drain.running()).toEqual({ 'face sessions': 4 });
    untrack();
    expect(drain.running()).toEqual({});
  });
});

describe('DrainGuard', () => {
  function context(method: string, routePath: string): ExecutionContext {
    const req = { method, route: { path: routePath }, path: routePath };
    return { getType: () => 'http', switchToHttp: () => ({ getRequest: () => req }) } as unknown as ExecutionContext;
  }

  it('refuses only new sessions while draining, 503 with Retry-After', () => {
    const drain = new DrainService(config);
    const guard = new DrainGuard(drain);
    expect(guard.canActivate(context('POST', '/sessions'))).toBe(true);
    drain.begin('test');
    let thrown: unknown;
    try {
      guard.canActivate(context('POST', '/sessions'));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(DrainingError);
    expect(thrown).toMatchObject({ code: 'draining', retryAfterSeconds: 2 });
    expect((thrown as DrainingError).status).toBe(503);
    // A running session goes on: its refusal, its code, reading it, the events.
    expect(guard.canActivate(context('POST', '/sessions/:id/refusal'))).toBe(true);
    expect(guard.canActivate(context('POST', '/sessions/:id/code'))).toBe(true);
    expect(guard.canActivate(context('GET', '/sessions/:id'))).toBe(true);
    expect(guard.canActivate(context('GET', '/events'))).toBe(true);
  });
});
