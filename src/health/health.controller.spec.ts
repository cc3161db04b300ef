import { HttpException } from '@nestjs/common';
import type { EngineService, EngineStatus } from '../engine';
import { HealthController } from './health.controller';

function controllerWith(status: EngineStatus): HealthController {
  return new HealthController({ status: () => status } as unknown as EngineService);
}

describe('HealthController', () => {
  it('returns the engine counters when the engine is ready', () => {
    const stats = { workers: 2, queueSize: 8, inFlight: 1, queued: 0, completed: 5, failed: 1, rejected: 0 };
    const body = controllerWith({ ready: true, stats, opencv: '4.6.0' }).health();
    expect(body).toEqual({
      status: 'ok',
      engine: { workers: 2, queued: 0, inFlight: 1, completed: 5, failed: 1, rejected: 0 },
      opencv: '4.6.0',
      uptimeSeconds: expect.any(Number),
    });
    expect(Number.isInteger(body.uptimeSeconds)).toBe(true);
  });

  it('answers 503 with the engine error code otherwise', () => {
    let thrown: unknown;
    try {
      controllerWith({ ready: false, code: 'model_missing' }).health();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(HttpException);
    expect((thrown as HttpException).getStatus()).toBe(503);
    expect((thrown as HttpException).getResponse()).toEqual({ status: 'error', code: 'model_missing' });
  });
});
