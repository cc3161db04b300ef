import { Logger } from '@nestjs/common';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
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

  it('never writes frames, images or embeddings that a caller passed in an object', () => {
    const { logger, raw, lines } = capture();
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x11, 0x22, 0x33, 0x44]);
    const embedding = Array.from({ length: 128 }, (_, i) => i / 1000 + 0.123456);
    logger.log(jpeg, 'Upload');
    logger.log({ session: 's-1', frame: 'AAECAwQFBgc=', embedding, image: jpeg, bytes: jpeg }, 'Upload');
    logger.warn({ floats: new Float32Array(512), raw: jpeg.buffer, landmarks: [[1, 2]], sizes: [1, 2, 3] });
    expect(lines().map((l) => l.msg)).toEqual([
      `[binary ${jpeg.length} bytes]`,
      `{"session":"s-1","frame":"[redacted]","embedding":"[redacted]","image":"[redacted]","bytes":"[binary 8 bytes]"}`,
      `{"floats":"[binary 2048 bytes]","raw":"[binary ${jpeg.buffer.byteLength} bytes]","landmarks":"[redacted]","sizes":[1,2,3]}`,
    ]);
    logger.debug({ scores: embedding });
    expect(lines()[3].msg).toBe('{"scores":"[128 numbers]"}');
    const all = raw.join('');
    expect(all).not.toContain('AAECAwQFBgc=');
    expect(all).not.toContain('0.123456');
    expect(all).not.toMatch(/255,216/);
  });

  it('does not format printf-style placeholders in a message', () => {
    const { logger, lines } = capture();
    logger.log('100% of %s %d', 'Ctx');
    expect(lines()[0]).toMatchObject({ context: 'Ctx', msg: '100% of %s %d' });
  });

  it('writes to stdout synchronously: every line is out when the process exits at once', () => {
    // 2,000 lines (about 200 KB, more than a pipe buffer), then process.exit(1) as main.ts does after a fatal line.
    const script = [
      `const { JsonLogger } = require(${JSON.stringify(path.join(__dirname, 'json-logger'))});`,
      `const logger = new JsonLogger('info');`,
      `logger.debug('hidden');`,
      `for (let i = 0; i < 2000; i++) logger.log('line ' + i + ' ' + 'x'.repeat(64), 'Child');`,
      `logger.fatal('Invalid configuration', 'Bootstrap');`,
      `process.exit(1);`,
    ].join('\n');
    const run = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
      cwd: path.join(__dirname, '..'),
      env: { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true' },
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(1);
    const out = run.stdout.split('\n');
    expect(out.pop()).toBe('');
    const parsed = out.map((l) => JSON.parse(l) as LogLine);
    expect(parsed).toHaveLength(2001);
    expect(parsed[0]).toEqual({ time: expect.any(String), level: 'info', context: 'Child', msg: expect.any(String) });
    expect(parsed[1999].msg).toMatch(/^line 1999 /);
    expect(parsed[2000]).toMatchObject({ level: 'fatal', context: 'Bootstrap', msg: 'Invalid configuration' });
  });
});
