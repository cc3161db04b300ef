import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, configTableMarkdown, describeConfig, loadConfig } from './config';

function issuesOf(env: NodeJS.ProcessEnv): ConfigError['issues'] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('runs with nothing set', () => {
    const workers = Math.min(os.availableParallelism(), 64);
    expect(loadConfig({})).toEqual({
      PORT: 3000,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      FACEID_MODEL_DIR: undefined,
      ENGINE_WORKERS: workers,
      ENGINE_QUEUE: workers * 4,
      ENGINE_DETECT_THRESHOLD: 0.7,
      ENGINE_THREADS_PER_JOB: Math.min(2, os.availableParallelism()),
    });
  });

  it('treats blank variables as unset and ignores unrelated ones', () => {
    const config = loadConfig({ PORT: '  ', HOST: '', PATH: '/bin', SOMETHING_ELSE: 'x' });
    expect(config.PORT).toBe(3000);
    expect(config.HOST).toBe('127.0.0.1');
    expect(config).not.toHaveProperty('PATH');
  });

  it('parses every key', () => {
    const config = loadConfig({
      PORT: '0',
      HOST: '0.0.0.0',
      LOG_LEVEL: ' DEBUG ',
      FACEID_MODEL_DIR: 'some/models',
      ENGINE_WORKERS: '2',
      ENGINE_DETECT_THRESHOLD: '.55',
      ENGINE_THREADS_PER_JOB: '1',
    });
    expect(config).toEqual({
      PORT: 0,
      HOST: '0.0.0.0',
      LOG_LEVEL: 'debug',
      FACEID_MODEL_DIR: path.resolve('some/models'),
      ENGINE_WORKERS: 2,
      ENGINE_QUEUE: 8, // follows the workers actually configured
      ENGINE_DETECT_THRESHOLD: 0.55,
      ENGINE_THREADS_PER_JOB: 1,
    });
    expect(loadConfig({ ENGINE_QUEUE: '0' }).ENGINE_QUEUE).toBe(0);
    expect(loadConfig({ HOST: '::1' }).HOST).toBe('::1');
  });

  it('returns a frozen object', () => {
    expect(Object.isFrozen(loadConfig({}))).toBe(true);
  });

  it.each([
    ['PORT', '65536'],
    ['PORT', '-1'],
    ['PORT', '3000abc'],
    ['PORT', '30.5'],
    ['HOST', 'local host'],
    ['LOG_LEVEL', 'loud'],
    ['ENGINE_WORKERS', '0'],
    ['ENGINE_WORKERS', '65'],
    ['ENGINE_QUEUE', '-4'],
    ['ENGINE_DETECT_THRESHOLD', '0'],
    ['ENGINE_DETECT_THRESHOLD', '1'],
    ['ENGINE_DETECT_THRESHOLD', '-0.5'],
    ['ENGINE_DETECT_THRESHOLD', 'high'],
  ])('rejects %s=%s', (key, value) => {
    expect(issuesOf({ [key]: value })).toEqual([{ key, value, expects: expect.any(String) }]);
  });

  it('lists every bad key at once, saying what each expects', () => {
    const env = { PORT: 'eighty', LOG_LEVEL: 'loud', ENGINE_WORKERS: '0', HOST: '0.0.0.0' };
    expect(issuesOf(env).map((i) => i.key)).toEqual(['PORT', 'LOG_LEVEL', 'ENGINE_WORKERS']);
    expect(() => loadConfig(env)).toThrow(
      [
        'Invalid configuration:',
        '  - PORT="eighty": expected an integer from 0 to 65535 (0 = any free port)',
        '  - LOG_LEVEL="loud": expected one of fatal, error, warn, info, debug, verbose',
        '  - ENGINE_WORKERS="0": expected an integer from 1 to 64',
      ].join('\n'),
    );
  });
});

describe('describeConfig', () => {
  it('documents every key of the config, in order', () => {
    const rows = describeConfig();
    expect(rows.map((r) => r.key)).toEqual(Object.keys(loadConfig({})));
    for (const row of rows) {
      expect(row.default).not.toBe('');
      expect(row.expects).not.toBe('');
      expect(row.description).not.toBe('');
    }
  });

  it('renders a markdown table with one row per key', () => {
    const table = configTableMarkdown().split('\n');
    expect(table).toHaveLength(2 + describeConfig().length);
    expect(table[2]).toMatch(/^\| `PORT` \| 3000 \| /);
  });
});
