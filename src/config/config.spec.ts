import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, configTableMarkdown, defaultDataDir, describeConfig, loadConfig } from './config';

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
    // Each module's keys are checked in their own tests below; describeConfig() checks that every key is documented.
    expect(loadConfig({})).toMatchObject({
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
      HOST: '::1',
      LOG_LEVEL: ' DEBUG ',
      FACEID_MODEL_DIR: 'some/models',
      ENGINE_WORKERS: '2',
      ENGINE_DETECT_THRESHOLD: '.55',
      ENGINE_THREADS_PER_JOB: '1',
    });
    expect(config).toMatchObject({
      PORT: 0,
      HOST: '::1',
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

  it('derives FACE_SESSIONS_MAX from the engine: 5 sessions a worker, no more than the engine holds; 0 = no limit', () => {
    expect(loadConfig({ ENGINE_WORKERS: '2' }).FACE_SESSIONS_MAX).toBe(10);
    expect(loadConfig({ ENGINE_WORKERS: '1' }).FACE_SESSIONS_MAX).toBe(5);
    // The engine holds ENGINE_WORKERS + ENGINE_QUEUE calls, one per session.
    expect(loadConfig({ ENGINE_WORKERS: '2', ENGINE_QUEUE: '3' }).FACE_SESSIONS_MAX).toBe(5);
    expect(loadConfig({ ENGINE_WORKERS: '2', FACE_SESSIONS_MAX: '3' }).FACE_SESSIONS_MAX).toBe(3);
    expect(loadConfig({ FACE_SESSIONS_MAX: '0' }).FACE_SESSIONS_MAX).toBe(0);
    expect(() => loadConfig({ FACE_SESSIONS_MAX: '-1' })).toThrow(/FACE_SESSIONS_MAX/);
  });

  it('reads the webhook host list: names and *.domain patterns, lower case; anything else is refused', () => {
    expect(loadConfig({}).WEBHOOK_ALLOWED_HOSTS).toEqual([]);
    expect(loadConfig({ WEBHOOK_ALLOWED_HOSTS: ' MIS.clinic.kz , *.emr.kz,' }).WEBHOOK_ALLOWED_HOSTS).toEqual([
      'mis.clinic.kz',
      '*.emr.kz',
    ]);
    expect(issuesOf({ WEBHOOK_ALLOWED_HOSTS: 'https://mis.clinic.kz/' }).map((i) => i.key)).toEqual([
      'WEBHOOK_ALLOWED_HOSTS',
    ]);
  });

  it('reads the private webhook destinations: names, patterns, addresses and ranges; nothing by default', () => {
    expect(loadConfig({}).WEBHOOK_ALLOWED_PRIVATE_HOSTS).toEqual([]);
    expect(
      loadConfig({
        WEBHOOK_ALLOWED_PRIVATE_HOSTS: ' MIS.hospital.lan, *.emr.internal ,127.0.0.1,10.20.0.0/16,[::1],fd00::/8,',
      }).WEBHOOK_ALLOWED_PRIVATE_HOSTS,
    ).toEqual(['mis.hospital.lan', '*.emr.internal', '127.0.0.1', '10.20.0.0/16', '[::1]', 'fd00::/8']);
    for (const bad of ['https://mis.lan/', '127.1', '10.0.0.0/33', '::1/129', 'mis.lan/8', '2130706433']) {
      expect(issuesOf({ WEBHOOK_ALLOWED_PRIVATE_HOSTS: bad }).map((i) => i.key)).toEqual([
        'WEBHOOK_ALLOWED_PRIVATE_HOSTS',
      ]);
    }
  });

  it('takes a metrics token of 16 or more printable characters, and never echoes it', () => {
    expect(loadConfig({}).METRICS_TOKEN).toBeUndefined();
    expect(loadConfig({ METRICS_TOKEN: 'a'.repeat(16) }).METRICS_TOKEN).toBe('a'.repeat(16));
    expect(issuesOf({ METRICS_TOKEN: 'short' })).toEqual([{ key: 'METRICS_TOKEN', expects: expect.any(String) }]);
    expect(issuesOf({ METRICS_TOKEN: 'has a space in it here' })).toEqual([
      { key: 'METRICS_TOKEN', expects: expect.any(String) },
    ]);
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
    expect(table[2]).toMatch(/^\| `FACEID_PROFILE` \| development \| /);
    expect(table[3]).toMatch(/^\| `PORT` \| 3000 \| /);
  });
});

describe('auth and template keys', () => {
  const key = (byte: number) => Buffer.alloc(32, byte);

  it('defaults: 120 requests a minute, bootstrap on, no template keys (the key file is used)', () => {
    const c = loadConfig({});
    expect(c.RATE_LIMIT_PER_MINUTE).toBe(120);
    expect(c.FACEID_BOOTSTRAP).toBe(true);
    expect(c.TEMPLATE_KEYS).toBeUndefined();
  });

  it.each([
    ['false', false],
    ['0', false],
    ['No', false],
    ['off', false],
    ['TRUE', true],
    ['1', true],
    ['yes', true],
  ])('reads FACEID_BOOTSTRAP=%s', (value, expected) => {
    expect(loadConfig({ FACEID_BOOTSTRAP: value }).FACEID_BOOTSTRAP).toBe(expected);
  });

  it('reads RATE_LIMIT_PER_MINUTE, 0 meaning no limit', () => {
    expect(loadConfig({ RATE_LIMIT_PER_MINUTE: '0' }).RATE_LIMIT_PER_MINUTE).toBe(0);
    expect(loadConfig({ RATE_LIMIT_PER_MINUTE: '600' }).RATE_LIMIT_PER_MINUTE).toBe(600);
  });

  it('parses TEMPLATE_KEYS in order, base64 or base64url', () => {
    const k1 = key(1).toString('base64');
    const k2 = Buffer.from(Array.from({ length: 32 }, (_, i) => 250 + (i % 6))).toString('base64url');
    const c = loadConfig({ TEMPLATE_KEYS: ` k2025:${k1} , old_1:${k2}` });
    expect(c.TEMPLATE_KEYS).toEqual([
      { id: 'k2025', key: key(1) },
      { id: 'old_1', key: Buffer.from(Array.from({ length: 32 }, (_, i) => 250 + (i % 6))) },
    ]);
  });

  it.each([
    ['FACEID_BOOTSTRAP', 'maybe'],
    ['RATE_LIMIT_PER_MINUTE', '-1'],
    ['RATE_LIMIT_PER_MINUTE', 'many'],
  ])('rejects %s=%s', (k, value) => {
    expect(issuesOf({ [k]: value })).toEqual([{ key: k, value, expects: expect.any(String) }]);
  });

  it.each([
    ['a key without an id', key(1).toString('base64')],
    ['a 16-byte key', `a:${Buffer.alloc(16, 1).toString('base64')}`],
    ['a 33-byte key', `a:${Buffer.alloc(33, 1).toString('base64')}`],
    ['a duplicate id', `a:${key(1).toString('base64')},a:${key(2).toString('base64')}`],
    ['a bad id', `a b:${key(1).toString('base64')}`],
    ['nothing but commas', ',,'],
  ])('rejects TEMPLATE_KEYS with %s, without echoing it', (_name, value) => {
    // A secret: the issue names the key but never holds its value.
    expect(issuesOf({ TEMPLATE_KEYS: value })).toEqual([{ key: 'TEMPLATE_KEYS', expects: expect.any(String) }]);
    expect(() => loadConfig({ TEMPLATE_KEYS: value })).toThrow(/TEMPLATE_KEYS: expected/);
  });
});

describe('WebSocket transport keys', () => {
  it('defaults: ws on the HTTP port, uWS port PORT+1, 256 KiB, same origin and localhost', () => {
    const c = loadConfig({});
    expect(c.WS_TRANSPORT).toBe('ws');
    expect(c.WS_PORT_UWS).toBe(3001);
    expect(c.WS_MAX_PAYLOAD).toBe(262144);
    expect(c.WS_ALLOWED_ORIGINS).toEqual(['self', 'http://localhost:3000', 'http://127.0.0.1:3000']);
    expect(Object.isFrozen(c.WS_ALLOWED_ORIGINS)).toBe(true);
  });

  it('derives its defaults from PORT', () => {
    expect(loadConfig({ PORT: '8080' })).toMatchObject({
      WS_PORT_UWS: 8081,
      WS_ALLOWED_ORIGINS: ['self', 'http://localhost:8080', 'http://127.0.0.1:8080'],
    });
    expect(loadConfig({ PORT: '0' }).WS_PORT_UWS).toBe(0); // any free port for both
  });

  it('parses every key', () => {
    const c = loadConfig({
      WS_TRANSPORT: 'UWS',
      WS_PORT_UWS: '9100',
      WS_MAX_PAYLOAD: '1048576',
      WS_ALLOWED_ORIGINS: ' https://Clinic.example.kz/ , self,http://10.0.0.5:3000,https://clinic.example.kz ',
    });
    expect(c).toMatchObject({ WS_TRANSPORT: 'uws', WS_PORT_UWS: 9100, WS_MAX_PAYLOAD: 1048576 });
    expect(c.WS_ALLOWED_ORIGINS).toEqual(['https://clinic.example.kz', 'self', 'http://10.0.0.5:3000']);
    expect(loadConfig({ WS_ALLOWED_ORIGINS: '*' }).WS_ALLOWED_ORIGINS).toEqual(['*']);
  });

  it.each([
    ['WS_TRANSPORT', 'socketio'],
    ['WS_PORT_UWS', '70000'],
    ['WS_MAX_PAYLOAD', '1000'],
    ['WS_MAX_PAYLOAD', '20000000'],
    ['WS_MAX_PAYLOAD', '256k'],
    ['WS_ALLOWED_ORIGINS', 'clinic.example.kz'],
    ['WS_ALLOWED_ORIGINS', 'https://clinic.example.kz/page'],
    ['WS_ALLOWED_ORIGINS', 'ftp://clinic.example.kz'],
    ['WS_ALLOWED_ORIGINS', ',,'],
  ])('rejects %s=%s', (key, value) => {
    expect(issuesOf({ [key]: value })).toEqual([{ key, value, expects: expect.any(String) }]);
  });
});

describe('storage keys', () => {
  it('defaults: SQLite in the per-user data folder', () => {
    const c = loadConfig({});
    expect(c.DATABASE_URL).toBeUndefined();
    const xdg = process.env.XDG_DATA_HOME;
    const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.local', 'share');
    expect(c.FACEID_DATA_DIR).toBe(path.join(base, 'faceid-gateway'));
  });

  it('follows XDG_DATA_HOME when it is absolute', () => {
    expect(defaultDataDir({ XDG_DATA_HOME: '/srv/data' })).toBe(path.join('/srv/data', 'faceid-gateway'));
    expect(defaultDataDir({ XDG_DATA_HOME: 'relative' })).toBe(
      path.join(os.homedir(), '.local', 'share', 'faceid-gateway'),
    );
  });

  it('reads FACEID_DATA_DIR as an absolute path', () => {
    expect(loadConfig({ FACEID_DATA_DIR: 'var/faceid' }).FACEID_DATA_DIR).toBe(path.resolve('var/faceid'));
  });

  it.each([
    'postgres://faceid:secret@db.local:5432/faceid',
    'postgresql://postgres@127.0.0.1/faceid?sslmode=require',
    'postgresql:///faceid?host=/var/run/postgresql',
    'file:/var/lib/faceid/faceid.db',
  ])('accepts DATABASE_URL=%s', (url) => {
    expect(loadConfig({ DATABASE_URL: url }).DATABASE_URL).toBe(url);
  });

  it.each(['mysql://root@localhost/faceid', 'postgres://', 'faceid.db', 'file:'])(
    'rejects DATABASE_URL=%s without echoing it (a secret)',
    (url) => {
      expect(issuesOf({ DATABASE_URL: url })).toEqual([{ key: 'DATABASE_URL', expects: expect.any(String) }]);
      expect(() => loadConfig({ DATABASE_URL: url })).toThrow(/DATABASE_URL: expected a postgres/);
    },
  );
});

describe('LIVENESS_CHALLENGES', () => {
  it('defaults to light,blink and stores a given set normalised, in run order', () => {
    expect(loadConfig({}).LIVENESS_CHALLENGES).toBe('light,blink');
    expect(loadConfig({ LIVENESS_CHALLENGES: ' Turn , blink ' }).LIVENESS_CHALLENGES).toBe('turn,blink');
    expect(loadConfig({ LIVENESS_CHALLENGES: 'blink,turn,light' }).LIVENESS_CHALLENGES).toBe('light,turn,blink');
  });

  it.each(['light', 'blink', 'turn', 'light,turn', 'blink,blink,light', 'light,blink,sparkle', ',,'])(
    'refuses %j (blink always stays, with light or turn beside it)',
    (value) => {
      expect(issuesOf({ LIVENESS_CHALLENGES: value })).toEqual([
        { key: 'LIVENESS_CHALLENGES', value: value.trim(), expects: expect.stringContaining('includes blink') },
      ]);
    },
  );
});

describe('FACEID_PROFILE', () => {
  const production = { FACEID_PROFILE: 'production', SMS_HTTP_URL: 'https://sms.example.kz/send' };

  it('starts a fresh clone in development, with the demo clinic and the dev outbox', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      FACEID_PROFILE: 'development',
      SMS_ADAPTER: 'dev',
      FACEID_BOOTSTRAP: true,
      HOST: '127.0.0.1',
    });
  });

  it.each(['127.0.0.1', '127.1.2.3', 'localhost', '::1'])('development listens on loopback %s', (host) => {
    expect(loadConfig({ HOST: host }).HOST).toBe(host);
  });

  it.each(['0.0.0.0', '192.168.1.20', '::', 'desk-server'])(
    'development refuses HOST=%s and says what to change',
    (host) => {
      expect(issuesOf({ HOST: host })).toEqual([
        { key: 'HOST', value: host, expects: expect.stringContaining('FACEID_PROFILE=production') },
      ]);
    },
  );

  it('production defaults to the SMS gateway and no demo clinic, and may serve other machines', () => {
    const c = loadConfig({ ...production, HOST: '0.0.0.0' });
    expect(c).toMatchObject({
      FACEID_PROFILE: 'production',
      SMS_ADAPTER: 'http',
      FACEID_BOOTSTRAP: false,
      HOST: '0.0.0.0',
    });
  });

  it('production refuses every demo convenience at once, naming the setting to change', () => {
    const issues = issuesOf({
      ...production,
      SMS_ADAPTER: 'dev',
      FACEID_BOOTSTRAP: 'true',
      WS_ALLOWED_ORIGINS: '*',
      WEBHOOK_ALLOW_HTTP: 'true',
    });
    expect(issues.map((i) => i.key)).toEqual([
      'SMS_ADAPTER',
      'FACEID_BOOTSTRAP',
      'WS_ALLOWED_ORIGINS',
      'WEBHOOK_ALLOW_HTTP',
    ]);
    expect(issues[0].expects).toMatch(/SMS_ADAPTER=http/);
    expect(() => loadConfig({ ...production, SMS_ADAPTER: 'dev' })).toThrow(
      /SMS_ADAPTER="dev": expected http in the production profile/,
    );
  });

  it('refuses an unknown profile', () => {
    expect(issuesOf({ FACEID_PROFILE: 'staging' })).toEqual([
      { key: 'FACEID_PROFILE', value: 'staging', expects: 'one of development, production' },
    ]);
  });
});
