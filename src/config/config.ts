import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'verbose'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The whole runtime configuration. Keys are the environment variable names, so docs and code match 1:1. */
export interface Config {
  readonly PORT: number;
  readonly HOST: string;
  readonly LOG_LEVEL: LogLevel;
  /** Undefined = the engine's own default (see src/engine/models.ts). */
  readonly FACEID_MODEL_DIR: string | undefined;
  readonly ENGINE_WORKERS: number;
  readonly ENGINE_QUEUE: number;
  readonly ENGINE_DETECT_THRESHOLD: number;
  readonly ENGINE_THREADS_PER_JOB: number;
}

/** The engine refuses more workers than this (see FaceEngine.open). */
const MAX_WORKERS = 64;

interface Setting<T> {
  /** Parses the trimmed, non-empty value of the variable. */
  schema: z.ZodType<T>;
  /** What a valid value looks like, for error messages and the README. */
  expects: string;
  /** Earlier keys are already resolved, so a default may depend on them. */
  default: (resolved: Partial<Config>) => T;
  /** The default as documented (it may depend on the machine). */
  defaultText: string;
  description: string;
  /** Never echo the value in errors (for keys such as database URLs and API keys). */
  secret?: boolean;
}

const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^[+-]?\d+$/)
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/** Object order matters: defaults are resolved top to bottom. */
const SETTINGS: { [K in keyof Config]: Setting<Config[K]> } = {
  PORT: {
    schema: int(0, 65535),
    expects: 'an integer from 0 to 65535 (0 = any free port)',
    default: () => 3000,
    defaultText: '3000',
    description: 'HTTP port to listen on.',
  },
  HOST: {
    schema: z.string().regex(/^[A-Za-z0-9.:%-]+$/),
    expects: 'an IP address or host name, e.g. 127.0.0.1 or 0.0.0.0',
    default: () => '127.0.0.1',
    defaultText: '127.0.0.1',
    description:
      'Interface to listen on. The default accepts local connections only; set 0.0.0.0 (or the LAN address) ' +
      'deliberately to serve other machines.',
  },
  LOG_LEVEL: {
    schema: z
      .string()
      .transform((s) => s.toLowerCase())
      .pipe(z.enum(LOG_LEVELS)),
    expects: `one of ${LOG_LEVELS.join(', ')}`,
    default: () => 'info',
    defaultText: 'info',
    description: 'Lowest level written to the JSON log on stdout.',
  },
  FACEID_MODEL_DIR: {
    schema: z.string().transform((p) => path.resolve(p)),
    expects: 'a folder path',
    default: () => undefined,
    defaultText: '(per-user cache)',
    description:
      'Folder holding the fetched ONNX models (`npm run models`). Unset: ' +
      '$XDG_CACHE_HOME/faceid-gateway/models, else ~/.cache/faceid-gateway/models.',
  },
  ENGINE_WORKERS: {
    schema: int(1, MAX_WORKERS),
    expects: `an integer from 1 to ${MAX_WORKERS}`,
    default: () => Math.min(os.availableParallelism(), MAX_WORKERS),
    defaultText: 'number of CPU cores',
    description: 'Face analyses run in parallel; each worker holds its own copy of the networks.',
  },
  ENGINE_QUEUE: {
    schema: int(0, 100_000),
    expects: 'an integer from 0 to 100000',
    default: (c) => (c.ENGINE_WORKERS ?? 1) * 4,
    defaultText: 'ENGINE_WORKERS * 4',
    description: 'Analyses that may wait for a worker; beyond that the engine answers `busy` at once.',
  },
  ENGINE_DETECT_THRESHOLD: {
    schema: z
      .string()
      .regex(/^\d*\.?\d+$/)
      .transform(Number)
      .pipe(z.number().gt(0).lt(1)),
    expects: 'a number between 0 and 1 (exclusive)',
    default: () => 0.7,
    defaultText: '0.7',
    description: 'Face detector score threshold. Lower finds more faces, and more false ones.',
  },
  ENGINE_THREADS_PER_JOB: {
    schema: int(1, 64),
    expects: 'an integer from 1 to 64',
    default: () => Math.min(2, os.availableParallelism()),
    defaultText: 'min(2, CPU cores)',
    description:
      'OpenCV threads per analysis. 2 lowers the latency of one call; 1 gives the most analyses per second ' +
      'when every worker is busy.',
  },
};

export interface ConfigIssue {
  key: string;
  /** Absent for secret keys. */
  value?: string;
  expects: string;
}

/** Thrown at startup when the environment holds invalid values; lists every bad key at once. */
export class ConfigError extends Error {
  readonly code = 'config_invalid';

  constructor(readonly issues: readonly ConfigIssue[]) {
    super(
      'Invalid configuration:\n' +
        issues
          .map((i) => `  - ${i.key}${i.value === undefined ? '' : `=${JSON.stringify(i.value)}`}: expected ${i.expects}`)
          .join('\n'),
    );
    this.name = 'ConfigError';
  }
}

/**
 * Builds the frozen config from an environment. Unset or blank variables take their defaults,
 * so a fresh clone runs with nothing set.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const resolved: Record<string, unknown> = {};
  const issues: ConfigIssue[] = [];
  for (const [key, setting] of Object.entries(SETTINGS) as [keyof Config, Setting<unknown>][]) {
    const raw = env[key]?.trim();
    if (raw === undefined || raw === '') {
      resolved[key] = setting.default(resolved as Partial<Config>);
      continue;
    }
    const parsed = setting.schema.safeParse(raw);
    if (parsed.success) resolved[key] = parsed.data;
    else issues.push({ key, value: setting.secret ? undefined : raw, expects: setting.expects });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return Object.freeze(resolved as unknown as Config);
}

export interface ConfigRow {
  key: string;
  default: string;
  expects: string;
  description: string;
}

/** One row per key, in declaration order: the source of the README's configuration table. */
export function describeConfig(): ConfigRow[] {
  return Object.entries(SETTINGS).map(([key, s]) => ({
    key,
    default: s.defaultText,
    expects: s.expects,
    description: s.description,
  }));
}

/** The README table, generated so docs cannot drift from the schema. */
export function configTableMarkdown(): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const lines = ['| Variable | Default | Accepts | Description |', '|---|---|---|---|'];
  for (const r of describeConfig()) {
    lines.push(`| \`${r.key}\` | ${cell(r.default)} | ${cell(r.expects)} | ${cell(r.description)} |`);
  }
  return lines.join('\n');
}
