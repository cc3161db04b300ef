import { Logger } from '@nestjs/common';
import { JsonLogger, type LogLine } from './json-logger';

function capture(level: ConstructorParameters<typeof JsonLogger>[0] = 'verbose') {
  const raw: string[] = [];
  const logger = new JsonLogger(level, (line) => raw.push(line));
  const lines = () => raw.map((l) => (expect(l.endsWith('\n')).toBe(true), JSON.parse(l) as LogLine));
  return { logger, raw, lines };
}

describe('JsonLogger', () => {
  it('writes one JSON object per line with time, level, context and msg', () => {
    const { logger, raw, lines } = capture();
    logger.log('started', 'Bootstrap');
    logger.warn('slow');
    expect(raw.every((l) => l.indexOf('\n') === l.length - 1)).toBe(true);
    const [a, b] = lines();
    expect(a).toEqual({ time: expect.any(String), level: 'info', context: 'Bootstrap', msg: 'started' });
    expect(new Date(a.time).toISOString()).toBe(a.time);
    expect(b).toEqual({ time: expect.any(String), level: 'warn', msg: 'slow' });
  });

  it('drops lines below its level', () => {
    const { logger, lines } = capture('warn');
    logger.verbose('v');
    logger.debug('d');
    logger.log('i');
    logger.warn('w');
    logger.error('e');
    logger.fatal('f');
    expect(lines().map((l) => l.level)).toEqual(['warn', 'error', 'fatal']);
  });

  it('follows Nest level lists', () => {
    const { logger, lines } = capture('info');
    logger.setLogLevels(['error', 'fatal']);
    logger.log('hidden');
    logger.error('shown');
    logger.setLogLevels(['log', 'debug', 'error']);
    logger.debug('shown too');
    expect(lines().map((l) => l.msg)).toEqual(['shown', 'shown too']);
  });

  it('keeps an error code and, for errors, the stack', () => {
    const { logger, lines } = capture();
    const err = Object.assign(new Error('no models'), { code: 'model_missing' });
    logger.error(err, undefined, 'Engine');
    logger.warn(err, 'Engine');
    const [e, w] = lines();
    expect(e).toMatchObject({ level: 'error', context: 'Engine', msg: 'no models', code: 'model_missing' });
    expect(e.stack).toContain('no models');
    expect(w).toEqual({
      time: expect.any(String),
      level: 'warn',
      context: 'Engine',
      msg: 'no models',
      code: 'model_missing',
    });
  });

  it('tells a stack from a context', () => {
    const { logger, lines } = capture();
    logger.error('boom', 'Error: boom\n    at x', 'Ctx');
    logger.error('boom', 'Error: boom\n    at y');
    const [a, b] = lines();
    expect(a).toMatchObject({ context: 'Ctx', stack: 'Error: boom\n    at x' });
    expect(b.context).toBeUndefined();
    expect(b.stack).toBe('Error: boom\n    at y');
  });

  it('serialises objects and survives cycles', () => {
    const { logger, lines } = capture();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    logger.log({ a: 1 });
    logger.log(cyclic);
    expect(lines().map((l) => l.msg)).toEqual(['{"a":1}', '[object Object]']);
  });

  it('is the sink of Nest Logger instances', () => {
    const { logger, lines } = capture();
    Logger.overrideLogger(logger);
    try {
      new Logger('Sessions').log('opened');
      new Logger('Sessions').error('failed');
    } finally {
      Logger.overrideLogger(false);
    }
    expect(lines()).toEqual([
      expect.objectContaining({ level: 'info', context: 'Sessions', msg: 'opened' }),
      expect.objectContaining({ level: 'error', context: 'Sessions', msg: 'failed' }),
    ]);
  });
});
