import { HttpException } from '@nestjs/common';
import type { EngineService, EngineStatus } from '../engine';
import { HealthController } from './health.controller';

const stats = { workers: 2, queueSize: 8, inFlight: 1, queued: 0, completed: 5, failed: 1, rejected: 0 };
const READY: EngineStatus = { ready: true, stats, opencv: '4.6.0' };

function controllerWith(
  status: EngineStatus,
  fleet: { draining?: boolean; reachable?: boolean; signals?: 'in_process' | 'listening' | 'connecting' } = {},
): HealthController {
  return new HealthController(
    { status: () => status } as unknown as EngineService,
    { ping: async () => fleet.reachable ?? true, signals: { state: fleet.signals ?? 'listening' } as never },
    { draining: fleet.draining ?? false },
  );
}

async function refusal(fn: () => unknown): Promise<{ status: number; body: unknown }> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HttpException);
    return { status: (err as HttpException).getStatus(), body: (err as HttpException).getResponse() };
  }
  throw new Error('expected a refusal');
}

describe('HealthController', () => {
  it('returns the engine counters when the engine is ready', () => {
    const body = controllerWith(READY).health();
    expect(body).toEqual({
      status: 'ok',
      engine: { workers: 2, queued: 0, inFlight: 1, completed: 5, failed: 1, rejected: 0 },
      opencv: '4.6.0',
      uptimeSeconds: expect.any(Number),
    });
    expect(Number.isInteger(body.uptimeSeconds)).toBe(true);
  });

  it('answers 503 with the engine error code otherwise', async () => {
    expect(await refusal(() => controllerWith({ ready: false, code: 'model_missing' }).health())).toEqual({
      status: 503,
      body: { status: 'error', code: 'model_missing' },
    });
  });

  it('stays alive (200) while draining or without the database: that is readiness', () => {
    expect(controllerWith(READY, { draining: true, reachable: false }).health().status).toBe('ok');
  });
});

describe('HealthController readiness', () => {
  it('is ready with a reachable database, an engine and no drain', async () => {
    expect(await controllerWith(READY).ready()).toEqual({
      status: 'ok',
      draining: false,
      database: 'ok',
      engine: 'ok',
      signals: 'listening',
    });
  });

  it('answers 503 while draining, without the database, or without an engine, saying which', async () => {
    expect(await refusal(() => controllerWith(READY, { draining: true }).ready())).toEqual({
      status: 503,
      body: { status: 'error', code: 'draining', draining: true, database: 'ok', engine: 'ok', signals: 'listening' },
    });
    expect(await refusal(() => controllerWith(READY, { reachable: false, signals: 'connecting' }).ready())).toEqual({
      status: 503,
      body: {
        status: 'error',
        code: 'database_unreachable',
        draining: false,
        database: 'unreachable',
        engine: 'ok',
        signals: 'connecting',
      },
    });
    expect(await refusal(() => controllerWith({ ready: false, code: 'engine_closed' }).ready())).toMatchObject({
      status: 503,
      body: { code: 'engine_closed', engine: 'engine_closed' },
    });
    // Draining is named first: the balancer should move work away whatever else is wrong.
    expect(await refusal(() => controllerWith(READY, { draining: true, reachable: false }).ready())).toMatchObject({
      body: { code: 'draining' },
    });
  });
});
