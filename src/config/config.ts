import { isIP } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { ChallengeSet, CHALLENGES_EXPECTS } from '../liveness/policy';
import { parseTrustedProxies } from './proxies';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'verbose'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The whole runtime configuration. Keys are the environment variable names, so docs and code match 1:1. */
export interface Config {
  readonly FACEID_PROFILE: Profile;
  readonly PORT: number;
  readonly HOST: string;
  readonly LOG_LEVEL: LogLevel;
  /** Undefined = the engine's own default (see src/engine/models.ts). */
  readonly FACEID_MODEL_DIR: string | undefined;
  /** Folder for the embedded database and other local state (absolute). */
  readonly FACEID_DATA_DIR: string;
  /** Undefined = SQLite at FACEID_DATA_DIR/faceid.db; otherwise a postgres(ql):// URL or file:PATH (SQLite). */
  readonly DATABASE_URL: string | undefined;
  readonly ENGINE_WORKERS: number;
  readonly ENGINE_QUEUE: number;
  readonly ENGINE_DETECT_THRESHOLD: number;
  readonly ENGINE_THREADS_PER_JOB: number;
  readonly MATCH_THRESHOLD: number;
  readonly LIVENESS_MIN: number;
  readonly BLINK_WINDOW_MS: number;
  /**
   * The sessions' liveness challenges unless the clinic or workstation has its own: a checked, normalised comma list
   * in run order (`light,blink`, `turn,blink` or `light,turn,blink`); parseChallenges() gives the kinds.
   */
  readonly LIVENESS_CHALLENGES: string;
  readonly SESSION_TIMEOUT_MS: number;
  readonly SESSION_TOKEN_TTL_S: number;
  /** Seconds beyond SESSION_TIMEOUT_MS after which a face session still running is taken for an orphan. */
  readonly SESSION_ORPHAN_GRACE_S: number;
  readonly FACE_ATTEMPTS_MAX: number;
  readonly FACE_ATTEMPTS_WINDOW_MIN: number;
  /** Face sessions this process admits at once (streaming, or holding an unused token); 0 = no limit. */
  readonly FACE_SESSIONS_MAX: number;
  readonly WS_TRANSPORT: WsTransportKind;
  readonly WS_PORT_UWS: number;
  /** Bytes, header included. */
  readonly WS_MAX_PAYLOAD: number;
  /** Normalised origins (`scheme://host[:port]`, lower case), plus the keywords `self` and `*`. */
  readonly WS_ALLOWED_ORIGINS: readonly string[];
  /** Largest identification frame, width x height. */
  readonly WS_FRAME_MAX_PIXELS: number;
  /** Per identification WebSocket: messages a second, error replies a minute, bytes waiting to be sent. */
  readonly WS_MESSAGES_PER_SECOND: number;
  readonly WS_ERRORS_PER_MINUTE: number;
  readonly WS_SEND_BUFFER_MAX: number;
  /** Largest enrollment photo, width x height. */
  readonly ENROLL_MAX_PIXELS: number;
  /** Requests per minute per API key, and failed key checks per client IP; 0 = no limit. */
  readonly RATE_LIMIT_PER_MINUTE: number;
  /** Normalised entries: addresses, address/prefix ranges and the names loopback, linklocal, uniquelocal. */
  readonly TRUSTED_PROXIES: readonly string[];
  readonly FACEID_BOOTSTRAP: boolean;
  /** The operator's token for the /admin HTTP routes; undefined = those routes are disabled. */
  readonly ADMIN_TOKEN: string | undefined;
  /** Template encryption keys, the first for new templates; undefined = the generated key file. */
  readonly TEMPLATE_KEYS: readonly TemplateKeyConfig[] | undefined;
  readonly SMS_ADAPTER: SmsAdapterKind;
  /** The e-government SMS endpoint (SMS_ADAPTER=http). */
  readonly SMS_HTTP_URL: string | undefined;
  readonly SMS_HTTP_TOKEN: string | undefined;
  readonly SMS_HTTP_TIMEOUT_MS: number;
  readonly SMS_HTTP_RETRIES: number;
  readonly CODE_TTL_S: number;
  readonly CODE_ATTEMPTS_MAX: number;
  readonly CODE_RESENDS_MAX: number;
  readonly CODE_PATIENT_FAILURES_MAX: number;
  readonly CODE_WORKSTATION_FAILURES_MAX: number;
  readonly CODE_FAILURES_WINDOW_MIN: number;
  readonly EVENTS_POLL_MS: number;
  readonly WEBHOOK_TIMEOUT_MS: number;
  readonly WEBHOOK_RETRY_BASE_MS: number;
  readonly WEBHOOK_RETRY_MAX_MS: number;
  readonly WEBHOOK_MAX_ATTEMPTS: number;
  /** `https` only, unless http is allowed (development and tests). */
  readonly WEBHOOK_ALLOW_HTTP: boolean;
  /** Host names or `*.domain` patterns, lower case; empty = any host. */
  readonly WEBHOOK_ALLOWED_HOSTS: readonly string[];
  /** Host names, `*.domain` patterns, addresses or CIDR ranges (lower case) that webhooks may reach at private addresses. */
  readonly WEBHOOK_ALLOWED_PRIVATE_HOSTS: readonly string[];
  /** Bearer token /metrics requires; undefined = /metrics is open. */
  readonly METRICS_TOKEN: string | undefined;
  /** Longest wait for running face sessions on SIGTERM before stopping, in seconds. */
  readonly DRAIN_TIMEOUT_S: number;
}

/** One TEMPLATE_KEYS entry: a key id (stored beside each template) and a 32-byte AES-256 key. */
export interface TemplateKeyConfig {
  readonly id: string;
  readonly key: Buffer;
}

/**
 * `kid:base64key[,kid:base64key...]`: key ids unique, keys 32 bytes (base64 or base64url). Also the key file's format
 * (one a line, `#` comments). Returns the keys, or what is wrong (never quoting a key).
 */
export function parseTemplateKeys(text: string): TemplateKeyConfig[] | string {
  const entries = text
    .split('\n')
    .map((line) => line.replace(/#.*$/, '')) // comments (key file)
    .join(',')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (entries.length === 0) return 'no keys';
  const out: TemplateKeyConfig[] = [];
  for (const [i, entry] of entries.entries()) {
    const m = /^([A-Za-z0-9_-]{1,32}):([A-Za-z0-9+/_-]{43}=?)$/.exec(entry);
    if (!m) return `entry ${i + 1} is not kid:base64key with a 32-byte key`;
    if (out.some((k) => k.id === m[1])) return `key id ${m[1]} appears twice`;
    const key = Buffer.from(m[2].replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (key.length !== 32) return `entry ${i + 1}: the key is not 32 bytes`;
    out.push(Object.freeze({ id: m[1], key }));
  }
  return out;
}

const BOOLEAN_WORDS: Record<string, boolean> = {
  true: true,
  false: false,
  '1': true,
  '0': false,
  yes: true,
  no: false,
  on: true,
  off: false,
};

// Builders of a setting's `schema` and `expects` together (spread into the entry): the text that errors and the
// README show is written once, beside the parser it describes.
const booleanWord = {
  schema: z
    .string()
    .transform((s) => s.toLowerCase())
    .refine((s) => s in BOOLEAN_WORDS)
    .transform((s) => BOOLEAN_WORDS[s]),
  expects: 'true or false (also 1/0, yes/no, on/off)',
};

/** development: a fresh clone, one machine, demo conveniences; production: a real deployment, refuses them. */
export const PROFILES = ['development', 'production'] as const;
export type Profile = (typeof PROFILES)[number];

export const SMS_ADAPTERS = ['dev', 'http'] as const;
export type SmsAdapterKind = (typeof SMS_ADAPTERS)[number];

export const WS_TRANSPORTS = ['ws', 'uws'] as const;
export type WsTransportKind = (typeof WS_TRANSPORTS)[number];

/** The engine refuses more workers than this (see FaceEngine.open). */
const MAX_WORKERS = 64;

/**
 * Face sessions per engine worker that FACE_SESSIONS_MAX admits by default. A session at 10 fps asks for about 10
 * analyses a second (a full call now and then, track calls otherwise: 10-18 ms of a worker each on 2 cores), about
 * 0.1-0.2 of a worker; on 2 cores, with the load generator beside the gateway, verdicts per second grew up to 10-12
 * sessions and fell beyond (README, "Benchmarks": admission control). 5 per worker is also what the engine holds at
 * once with its default queue (ENGINE_QUEUE = 4 per worker, plus the one running): a session has one call in flight
 * at most (latest frame wins), so admitted sessions never meet `busy`.
 */
export const FACE_SESSIONS_PER_WORKER = 5;

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

/** A number strictly between 0 and 1 (thresholds). */
const fraction = () => ({
  schema: z
    .string()
    .regex(/^\d*\.?\d+$/)
    .transform(Number)
    .pipe(z.number().gt(0).lt(1)),
  expects: 'a number between 0 and 1 (exclusive)',
});

/** One WS_ALLOWED_ORIGINS entry: `*`, `self`, or an http(s) origin (no path), normalised to lower case. */
const originEntry = z
  .string()
  .transform((s) => s.trim().toLowerCase().replace(/\/$/, ''))
  .pipe(z.union([z.literal('*'), z.literal('self'), z.string().regex(/^https?:\/\/[a-z0-9.\-[\]:]+$/)]));

/** $XDG_DATA_HOME/faceid-gateway, else ~/.local/share/faceid-gateway (a relative XDG_DATA_HOME is ignored, per the spec). */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME?.trim();
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.local', 'share'), 'faceid-gateway');
}

/** postgres:// or postgresql:// (PostgreSQL), or file:PATH (SQLite at that path). */
const databaseUrl = z.string().refine((s) => {
  if (/^file:./i.test(s)) return true;
  if (!/^postgres(ql)?:\/\//i.test(s)) return false;
  try {
    const url = new URL(s);
    return url.hostname !== '' || url.searchParams.has('host'); // a socket folder may be given as ?host=
  } catch {
    return false;
  }
});

/** An integer in [min, max]; the text is built from the same bounds so docs and parser cannot disagree. */
const integer = (min: number, max: number, note?: string) => ({
  schema: z
    .string()
    .regex(/^[+-]?\d+$/)
    .transform(Number)
    .pipe(z.number().int().min(min).max(max)),
  expects: `an integer from ${min} to ${max}${note ? ` (${note})` : ''}`,
});

/** A lower-case host name, or `*.domain` for its subdomains. */
const isHostPattern = (entry: string): boolean => /^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(entry);

/** One WEBHOOK_ALLOWED_PRIVATE_HOSTS entry: a host name, `*.domain`, an IP address, or an address/prefix range. */
function isPrivateHostEntry(entry: string): boolean {
  if (isHostPattern(entry) && !/^[0-9.]+$/.test(entry)) return true;
  const m = /^\[?([0-9a-f:.]+)\]?(?:\/(\d{1,3}))?$/.exec(entry);
  if (!m) return false;
  const family = isIP(m[1]);
  if (family === 0) return false;
  return m[2] === undefined || Number(m[2]) <= (family === 4 ? 32 : 128);
}

/** One of a few words, in any case. */
const oneOf = <const T extends readonly string[]>(words: T) => ({
  schema: z
    .string()
    .transform((s) => s.toLowerCase())
    .pipe(z.enum(words)),
  expects: `one of ${words.join(', ')}`,
});

/** A folder, made absolute against the working directory at start. */
const folderPath = () => ({ schema: z.string().transform((p) => path.resolve(p)), expects: 'a folder path' });

/** A comma list, lower-cased, blanks dropped; refused unless every entry is valid. */
const lowerCaseList = (valid: (entry: string) => boolean) =>
  z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((h) => h.trim().toLowerCase())
        .filter(Boolean),
    )
    .refine((entries) => entries.every(valid))
    .transform((entries) => Object.freeze(entries));

/** A value parsed by a function that returns the entries or what is wrong (the message becomes the zod issue). */
const parsedList = <T>(parse: (text: string) => T[] | string) =>
  z.string().transform((s, ctx) => {
    const list = parse(s);
    if (typeof list === 'string') {
      ctx.addIssue({ code: 'custom', message: list });
      return z.NEVER;
    }
    return Object.freeze(list);
  });

const isPostgresUrl = (url: string | undefined): boolean => /^postgres(ql)?:\/\//i.test(url ?? '');

/** Object order matters: defaults are resolved top to bottom. */
const SETTINGS: { [K in keyof Config]: Setting<Config[K]> } = {
  FACEID_PROFILE: {
    ...oneOf(PROFILES),
    default: () => 'development',
    defaultText: 'development',
    description:
      '`development` (a fresh clone: the demo clinic, the in-memory SMS outbox, local connections only; refuses a ' +
      'HOST other than loopback) or `production` (refuses to start with SMS_ADAPTER=dev, FACEID_BOOTSTRAP=true, ' +
      'WS_ALLOWED_ORIGINS=* or WEBHOOK_ALLOW_HTTP=true, and says which setting to change; SMS_ADAPTER defaults to ' +
      '`http` and FACEID_BOOTSTRAP to false).',
  },
  PORT: {
    ...integer(0, 65535, '0 = any free port'),
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
    ...oneOf(LOG_LEVELS),
    default: () => 'info',
    defaultText: 'info',
    description: 'Lowest level written to the JSON log on stdout.',
  },
  FACEID_MODEL_DIR: {
    ...folderPath(),
    default: () => undefined,
    defaultText: '(per-user cache)',
    description:
      'Folder holding the fetched ONNX models (`npm run models`). Unset: ' +
      '$XDG_CACHE_HOME/faceid-gateway/models, else ~/.cache/faceid-gateway/models.',
  },
  FACEID_DATA_DIR: {
    ...folderPath(),
    default: () => defaultDataDir(),
    defaultText: '(per-user data folder)',
    description:
      'Folder for local state: the embedded SQLite database (faceid.db, created and migrated at start) and other ' +
      'files the service keeps. Unset: $XDG_DATA_HOME/faceid-gateway, else ~/.local/share/faceid-gateway.',
  },
  DATABASE_URL: {
    schema: databaseUrl,
    expects: 'a postgres:// or postgresql:// URL, or file:PATH for an SQLite file',
    default: () => undefined,
    defaultText: '(SQLite in FACEID_DATA_DIR)',
    description:
      'Database. Unset: SQLite (WAL mode) at FACEID_DATA_DIR/faceid.db, for one server. A postgres:// URL selects ' +
      'PostgreSQL, for several gateway processes or hosts. Either is migrated automatically at start.',
    secret: true,
  },
  ENGINE_WORKERS: {
    ...integer(1, MAX_WORKERS),
    default: () => Math.min(os.availableParallelism(), MAX_WORKERS),
    defaultText: 'number of CPU cores',
    description: 'Face analyses run in parallel; each worker holds its own copy of the networks.',
  },
  ENGINE_QUEUE: {
    ...integer(0, 100_000),
    default: (c) => (c.ENGINE_WORKERS ?? 1) * 4,
    defaultText: 'ENGINE_WORKERS * 4',
    description: 'Analyses that may wait for a worker; beyond that the engine answers `busy` at once.',
  },
  ENGINE_DETECT_THRESHOLD: {
    ...fraction(),
    default: () => 0.7,
    defaultText: '0.7',
    description: 'Face detector score threshold. Lower finds more faces, and more false ones.',
  },
  ENGINE_THREADS_PER_JOB: {
    ...integer(1, 64),
    default: () => Math.min(2, os.availableParallelism()),
    defaultText: 'min(2, CPU cores)',
    description:
      'OpenCV threads per analysis. 2 lowers the latency of one call; 1 gives the most analyses per second ' +
      'when every worker is busy.',
  },
  MATCH_THRESHOLD: {
    ...fraction(),
    default: () => 0.46,
    defaultText: '0.46',
    description:
      'Cosine similarity at or above which a face matches the template. 0.46 is the equal-error point of ' +
      '`faceid eval` on the reference face set; calibrate on your own data (README, "Accuracy").',
  },
  LIVENESS_MIN: {
    ...fraction(),
    default: () => 0.01,
    defaultText: '0.01',
    description:
      'Mean passive liveness below which a session is a suspected spoof (reason `passive_low`), where the passive ' +
      'model runs. Sessions no longer run it: it scored live faces and every attack of `faceid pad-eval` alike ' +
      '(docs/liveness.md), and the challenges decide.',
  },
  BLINK_WINDOW_MS: {
    ...integer(500, 60000),
    default: () => 5000,
    defaultText: '5000',
    description: 'How long the patient has to blink once asked, in milliseconds.',
  },
  LIVENESS_CHALLENGES: {
    schema: ChallengeSet.transform((kinds) => kinds.join(',')),
    expects: CHALLENGES_EXPECTS,
    default: () => 'light,blink',
    defaultText: 'light,blink',
    description:
      'Liveness challenges of identification sessions, unless the clinic or the workstation has its own (`faceid ' +
      'clinic challenges`, `faceid workstation challenges`). `light` colours the screen in front of the patient and ' +
      'checks that the face reflects it, so it needs a screen facing the patient; desks whose monitor faces the ' +
      'doctor use `turn,blink` (the patient turns the head when asked). `blink` always stays.',
  },
  SESSION_TIMEOUT_MS: {
    ...integer(1000, 600000),
    default: () => 30000,
    defaultText: '30000',
    description: 'Longest identification session, from connecting to the verdict, in milliseconds.',
  },
  SESSION_TOKEN_TTL_S: {
    ...integer(10, 3600),
    default: () => 180,
    defaultText: '180',
    description: 'Lifetime of a session token (single use), in seconds.',
  },
  SESSION_ORPHAN_GRACE_S: {
    ...integer(1, 3600),
    default: () => 60,
    defaultText: '60',
    description:
      'A face session still running this many seconds after SESSION_TIMEOUT_MS (the longest a session runs) lost ' +
      'its gateway process (killed, crashed, cut off from the database): the session sweep of any gateway ends it ' +
      "`expired`, with its MIS event, so it stops counting against the patient's attempts. A connection that merely " +
      'drops is ended at once by its own gateway. The grace also absorbs clock differences between hosts.',
  },
  FACE_ATTEMPTS_MAX: {
    ...integer(1, 100),
    default: () => 3,
    defaultText: '3',
    description: 'Failed face sessions per patient within the window after which only the code path stays open.',
  },
  FACE_ATTEMPTS_WINDOW_MIN: {
    ...integer(1, 1440),
    default: () => 10,
    defaultText: '10',
    description: 'The window for FACE_ATTEMPTS_MAX, in minutes.',
  },
  FACE_SESSIONS_MAX: {
    ...integer(0, 100_000, '0 = no limit'),
    default: (c) => {
      const workers = c.ENGINE_WORKERS ?? 1;
      return Math.max(1, Math.min(workers * FACE_SESSIONS_PER_WORKER, workers + (c.ENGINE_QUEUE ?? workers * 4)));
    },
    defaultText: `ENGINE_WORKERS * ${FACE_SESSIONS_PER_WORKER}, at most ENGINE_WORKERS + ENGINE_QUEUE`,
    description:
      'Face sessions this gateway process serves at once: connected and streaming frames, or holding a face token ' +
      'not used yet (for at most 30 s, or SESSION_TOKEN_TTL_S if shorter). Beyond it POST /sessions in person by ' +
      'face answers 503 `capacity_exceeded` with Retry-After (seconds) and `retryAfterMs`, spaced so that waiting ' +
      'desks come back one by one as sessions end, instead of every session slowing down until blinks are missed ' +
      'and sessions time out. Sessions by code (remote, or in person by code) are not counted. The default: a ' +
      'session at 10 fps keeps about 0.1-0.2 of an engine worker busy, and on 2 cores verdicts per second stopped ' +
      'growing at 10-12 sessions (README, "Benchmarks"); the engine holds no more calls than ENGINE_WORKERS + ' +
      'ENGINE_QUEUE, one per session. Raise it on faster cores; lower it when other work shares the cores.',
  },
  WS_TRANSPORT: {
    ...oneOf(WS_TRANSPORTS),
    default: () => 'ws',
    defaultText: 'ws',
    description:
      'WebSocket server for identification sessions (`/ws/identify`): `ws` shares the HTTP port; `uws` ' +
      '(uWebSockets.js, more frames per core) listens on WS_PORT_UWS and refuses to start without its native build. ' +
      'Only `ws` is proven to leave no frame bytes in memory: uWS keeps a few recent frames in its native buffers, ' +
      'out of reach of the wiping (docs/protocol.md).',
  },
  WS_PORT_UWS: {
    ...integer(0, 65535, '0 = any free port'),
    default: (c) => (c.PORT ? (c.PORT + 1) % 65536 : 0),
    defaultText: 'PORT + 1 (0 when PORT is 0)',
    description: 'Port of the uWS WebSocket server (WS_TRANSPORT=uws), on HOST. uWS cannot share the HTTP server.',
  },
  WS_MAX_PAYLOAD: {
    ...integer(1024, 16 << 20, 'bytes'),
    default: () => 256 * 1024,
    defaultText: '262144 (256 KiB)',
    description:
      'Largest WebSocket message, frame header included; a larger one closes the connection with 1009. ' +
      '256 KiB holds a 640x480 JPEG or a 320x240 raw RGBA frame.',
  },
  WS_ALLOWED_ORIGINS: {
    schema: z
      .string()
      .transform((s) => s.split(',').filter((e) => e.trim() !== ''))
      .pipe(z.array(originEntry).min(1))
      .transform((list): readonly string[] => Object.freeze([...new Set(list)])),
    expects: 'a comma list of origins (http[s]://host[:port]), `self`, or `*`',
    default: (c) => Object.freeze(['self', `http://localhost:${c.PORT}`, `http://127.0.0.1:${c.PORT}`]),
    defaultText: 'self,http://localhost:PORT,http://127.0.0.1:PORT',
    description:
      'Web pages allowed to open identification WebSockets (their `Origin` header). `self` = the host the ' +
      'request was addressed to (its Host header, any scheme; with WS_TRANSPORT=uws also that host on PORT); ' +
      '`*` allows any page (development only). Clients that send no Origin (non-browser tools) are not limited by it.',
  },
  WS_FRAME_MAX_PIXELS: {
    ...integer(4096, 4096 * 4096, 'pixels'),
    default: () => 1920 * 1080,
    defaultText: '2073600 (1920x1080)',
    description:
      'Largest identification frame, in pixels (width x height, from the JPEG header or the raw frame header); a ' +
      'larger one is refused with `frame_too_large` before it is decoded. JPEG frames are also refused from their ' +
      'markers when progressive, arithmetic-coded or of more than 4 scans (`frame_too_complex`): webcams send ' +
      'baseline JPEG, and each scan of a progressive one is a pass of the decoder over the whole image.',
  },
  WS_MESSAGES_PER_SECOND: {
    ...integer(1, 100_000),
    default: () => 100,
    defaultText: '100',
    description:
      'Messages (frames and control messages) a second allowed per identification WebSocket, bursts up to the same ' +
      'number; the next one closes the connection with 4020 `message_rate_exceeded`. Frames above the `fps.max` the ' +
      'server asks for (15) are already dropped unread, and a flood of them is closed with 4021 (docs/protocol.md).',
  },
  WS_ERRORS_PER_MINUTE: {
    ...integer(1, 100_000),
    default: () => 30,
    defaultText: '30',
    description:
      'Refused messages (each answered with an `error` of a `protocol_*` or `frame_*` code: a malformed control ' +
      'message, a bad or hostile frame) a minute allowed per identification WebSocket, bursts up to the same number; ' +
      'the next one closes the connection with 4008 `protocol_error`, reason `too_many_errors`. Errors of the ' +
      "server's own making do not count.",
  },
  WS_SEND_BUFFER_MAX: {
    ...integer(16 * 1024, 64 << 20, 'bytes'),
    default: () => 256 * 1024,
    defaultText: '262144 (256 KiB)',
    description:
      'Bytes the server may hold waiting to be sent to one identification WebSocket (a client that stopped reading); ' +
      'a send beyond it closes the connection with 4012 `send_buffer_full` instead, and nothing more is queued.',
  },
  ENROLL_MAX_PIXELS: {
    ...integer(4096, 4096 * 4096, 'pixels'),
    default: () => 4096 * 4096,
    defaultText: "16777216 (4096x4096, the engine's own limit)",
    description:
      'Largest enrollment photo, in pixels, read from its JPEG header before it is decoded (`frame_too_large`, 422). ' +
      'Progressive photos are accepted with up to 64 scans; more scans, or an arithmetic-coded JPEG, is ' +
      '`frame_too_complex` (422).',
  },
  RATE_LIMIT_PER_MINUTE: {
    ...integer(0, 1_000_000, '0 = no limit'),
    default: () => 120,
    defaultText: '120',
    description:
      'Requests a minute allowed per API key (each workstation and MIS key has its own budget, bursts up to the same ' +
      'number), and failed key checks a minute per client address (an address that spends them is refused before ' +
      'any key lookup until they refill; requests with a valid key never use them). Beyond it: 429 `rate_limited` ' +
      'with Retry-After. In memory, per process. Behind a reverse proxy set TRUSTED_PROXIES, or every client shares ' +
      "the proxy's address.",
  },
  TRUSTED_PROXIES: {
    schema: parsedList(parseTrustedProxies),
    expects:
      'a comma list of IP addresses, CIDR ranges (10.0.0.0/8, fd00::/8) and the names loopback, linklocal, uniquelocal',
    default: () => Object.freeze([] as string[]),
    defaultText: '(none)',
    description:
      'Reverse proxies (a TLS terminator, a load balancer) in front of the service whose `X-Forwarded-For` is ' +
      "believed: the client address of a request from one of them is the one the proxy forwarded (Express's `trust " +
      'proxy`; also for the events WebSocket). Per-address rate limits and logs use it. Unset: no proxy is trusted ' +
      "and the peer's address counts, whatever the header says; behind a proxy that means every desk shares its " +
      "address. List only the proxies' own addresses (e.g. `loopback` for one on the same host).",
  },
  FACEID_BOOTSTRAP: {
    ...booleanWord,
    default: (c) => c.FACEID_PROFILE !== 'production',
    defaultText: 'true (production: false)',
    description:
      'On a start with an empty database, create a "Demo clinic" with one workstation and one MIS client and print ' +
      'their API keys once in the log, as warning lines (a convenience for a first run: set false in production). ' +
      "Only the keys' hashes are stored, so they are shown this once (`faceid workstation create` and `faceid mis " +
      'create` make more).',
  },
  ADMIN_TOKEN: {
    schema: z
      .string()
      .min(32)
      .max(512)
      .regex(/^[\x21-\x7e]+$/),
    expects: 'at least 32 printable characters without spaces (e.g. `openssl rand -base64 32`)',
    default: () => undefined,
    defaultText: '(none: admin HTTP routes off)',
    description:
      "The operator's bearer token for the HTTP admin routes (`/admin/...`: create, list, rotate and revoke " +
      'workstation and MIS keys; `Authorization: Bearer <token>`, compared in constant time). Unset: those routes ' +
      'answer 404 `admin_disabled` and only the `faceid` admin commands on the host manage keys.',
    secret: true,
  },
  TEMPLATE_KEYS: {
    schema: parsedList(parseTemplateKeys),
    expects:
      'a comma list of kid:base64key (key ids of letters, digits, _ or -; 32-byte keys, e.g. `openssl rand -base64 32`)',
    default: () => undefined,
    defaultText: '(a key generated on first start in FACEID_DATA_DIR/template-keys)',
    description:
      'The key ring: keys that encrypt enrolled face templates and webhook secrets (AES-256-GCM) and from which the ' +
      'one-time code and audit chain keys are derived. The first encrypts new values; all decrypt. To rotate, put ' +
      'the new key first and keep the old ones until every template has been re-enrolled (and as long as the audit ' +
      'entries they keyed are to be verified). Unset: the key file (mode 0600) is used, created on first start; copy ' +
      'its line here to keep using it alongside new keys.',
    secret: true,
  },
  SMS_ADAPTER: {
    ...oneOf(SMS_ADAPTERS),
    default: (c) => (c.FACEID_PROFILE === 'production' ? 'http' : 'dev'),
    defaultText: 'dev (production: http)',
    description:
      'How six-digit codes reach patients: `http` posts to the e-government SMS gateway at SMS_HTTP_URL; `dev` ' +
      'keeps them in an in-memory outbox that the demo page shows (`GET /dev/outbox`; development only). The log ' +
      'notes each message, never its code.',
  },
  SMS_HTTP_URL: {
    schema: z.string().url(),
    expects: 'an http(s) URL',
    default: () => undefined,
    defaultText: '(none)',
    description: 'The SMS gateway endpoint for SMS_ADAPTER=http: it receives `POST {iin, text, reference}` as JSON.',
  },
  SMS_HTTP_TOKEN: {
    schema: z.string().min(1),
    expects: 'a non-empty string',
    default: () => undefined,
    defaultText: '(none)',
    description: 'Sent as `Authorization: Bearer <token>` to SMS_HTTP_URL.',
    secret: true,
  },
  SMS_HTTP_TIMEOUT_MS: {
    ...integer(100, 60000),
    default: () => 5000,
    defaultText: '5000',
    description: 'Timeout of one call to the SMS gateway, in ms.',
  },
  SMS_HTTP_RETRIES: {
    ...integer(0, 5),
    default: () => 2,
    defaultText: '2',
    description: 'Retries of a failed SMS gateway call (timeouts, 5xx, refused connections), with backoff.',
  },
  CODE_TTL_S: {
    ...integer(30, 3600),
    default: () => 300,
    defaultText: '300',
    description: 'Lifetime of a six-digit code, in seconds.',
  },
  CODE_ATTEMPTS_MAX: {
    ...integer(1, 20),
    default: () => 5,
    defaultText: '5',
    description: 'Wrong entries of one code after which its session ends `locked_out`.',
  },
  CODE_RESENDS_MAX: {
    ...integer(0, 5),
    default: () => 2,
    defaultText: '2',
    description:
      "Times the desk may send a session's code again (`POST /sessions/:id/code/resend`, for a lost SMS). The new code " +
      'replaces the old one and gets a new CODE_TTL_S; wrong attempts so far still count.',
  },
  CODE_PATIENT_FAILURES_MAX: {
    ...integer(1, 1000),
    default: () => 10,
    defaultText: '10',
    description: 'Wrong code entries per patient within CODE_FAILURES_WINDOW_MIN after which no new code is sent.',
  },
  CODE_WORKSTATION_FAILURES_MAX: {
    ...integer(1, 10000),
    default: () => 30,
    defaultText: '30',
    description: 'Wrong code entries per workstation within CODE_FAILURES_WINDOW_MIN after which codes are refused.',
  },
  CODE_FAILURES_WINDOW_MIN: {
    ...integer(1, 1440),
    default: () => 60,
    defaultText: '60',
    description: 'The window of the per-patient and per-workstation code caps, in minutes.',
  },
  EVENTS_POLL_MS: {
    ...integer(50, 60000),
    default: (r) => (isPostgresUrl(r.DATABASE_URL) ? 30000 : 1000),
    defaultText: '1000 (PostgreSQL: 30000)',
    description:
      'How often event subscribers and the webhook dispatcher look for events they were not told of. Events of ' +
      'this process wake them at once; with PostgreSQL, so do those of every other gateway and of the `faceid` CLI ' +
      '(LISTEN/NOTIFY), and the poll is only a safety net for notifications lost while the listening connection ' +
      'reconnects. With SQLite it finds what the CLI wrote.',
  },
  WEBHOOK_TIMEOUT_MS: {
    ...integer(100, 60000),
    default: () => 5000,
    defaultText: '5000',
    description: 'Time a webhook receiver has to answer one delivery, in ms.',
  },
  WEBHOOK_RETRY_BASE_MS: {
    ...integer(10, 3600000),
    default: () => 5000,
    defaultText: '5000',
    description: 'First retry delay of a failed delivery; it doubles per attempt, with full jitter.',
  },
  WEBHOOK_RETRY_MAX_MS: {
    ...integer(10, 86400000),
    default: () => 3600000,
    defaultText: '3600000',
    description: 'Longest retry delay, in ms.',
  },
  WEBHOOK_MAX_ATTEMPTS: {
    ...integer(1, 100),
    default: () => 12,
    defaultText: '12',
    description:
      'Failed attempts in a row after which a subscriber is marked dead (it keeps its place; resume it to continue).',
  },
  WEBHOOK_ALLOW_HTTP: {
    ...booleanWord,
    default: () => false,
    defaultText: 'false',
    description: 'Accept plain `http://` webhook URLs (development and tests); otherwise only `https://`.',
  },
  WEBHOOK_ALLOWED_HOSTS: {
    schema: lowerCaseList(isHostPattern),
    expects: 'a comma list of host names or *.domain patterns, e.g. mis.clinic.kz,*.emr.kz',
    default: () => Object.freeze([] as string[]),
    defaultText: '(any host)',
    description:
      'Hosts that webhook URLs may point at (an exact name, or `*.domain` for its subdomains). Set it in production, ' +
      'so an MIS key cannot make the gateway post to other machines of the hospital network.',
  },
  WEBHOOK_ALLOWED_PRIVATE_HOSTS: {
    schema: lowerCaseList(isPrivateHostEntry),
    expects:
      'a comma list of host names, *.domain patterns, IP addresses or CIDR ranges, e.g. mis.hospital.lan,10.20.0.0/16',
    default: () => Object.freeze([] as string[]),
    defaultText: '(none)',
    description:
      'Webhook destinations allowed at non-public addresses. Otherwise a webhook URL whose host is, or resolves to, a ' +
      'loopback, private (RFC 1918, 100.64.0.0/10, fc00::/7), link-local (169.254.0.0/16, fe80::/10) or other ' +
      'special-purpose address is refused, in any spelling, at registration and at every delivery ' +
      '(docs/mis-integration.md, "Webhook destinations"). List an MIS on the hospital network by name (its URL\'s host) ' +
      'or by address or range; development and tests with local receivers list 127.0.0.1. Unspecified, multicast ' +
      'and broadcast addresses stay refused.',
  },
  METRICS_TOKEN: {
    schema: z.string().regex(/^[\x21-\x7e]{16,512}$/),
    expects: 'a string of 16 to 512 printable characters without spaces (e.g. `openssl rand -hex 32`)',
    default: () => undefined,
    defaultText: '(none: /metrics is open)',
    description:
      'When set, `GET /metrics` answers only requests with `Authorization: Bearer <token>` (401 otherwise), for a ' +
      'gateway whose port other machines reach. The metrics carry no clinic, workstation or patient labels either way.',
    secret: true,
  },
  DRAIN_TIMEOUT_S: {
    ...integer(0, 3600, '0 = stop at once'),
    default: () => 30,
    defaultText: '30',
    description:
      "On SIGTERM or SIGINT (a service manager's stop, a rolling restart) the gateway drains: it admits no new " +
      'session (POST /sessions answers 503 `draining` with Retry-After; a new identification WebSocket closes with ' +
      '1013 `draining`, its token left unused; GET /health/ready answers 503, so a load balancer sends new work to ' +
      'the other gateways), waits up to this many seconds for the face sessions running here to end, then stops and ' +
      'exits with 0. A second signal stops at once. Keep it at least SESSION_TIMEOUT_MS, and below the service ' +
      "manager's stop timeout (TimeoutStopSec in deploy/systemd).",
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
          .map(
            (i) => `  - ${i.key}${i.value === undefined ? '' : `=${JSON.stringify(i.value)}`}: expected ${i.expects}`,
          )
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
  const config = resolved as unknown as Config;
  const refused = profileIssues(config);
  if (refused.length > 0) throw new ConfigError(refused);
  return Object.freeze(config);
}

/** Loopback names and addresses: what a development start may listen on. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/**
 * What the profile refuses, each with the setting to change. Production must not run the demo conveniences (a
 * desk could read its own patients' codes from the dev outbox); development must not serve other machines.
 */
export function profileIssues(c: Config): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  if (c.FACEID_PROFILE === 'development') {
    if (!isLoopbackHost(c.HOST)) {
      out.push({
        key: 'HOST',
        value: c.HOST,
        expects:
          'a loopback address (127.0.0.1, ::1 or localhost) in the development profile, which shows SMS codes in ' +
          'the dev outbox; to serve other machines set FACEID_PROFILE=production (with a real SMS gateway)',
      });
    }
    return out;
  }
  if (c.SMS_ADAPTER === 'dev') {
    out.push({
      key: 'SMS_ADAPTER',
      value: 'dev',
      expects:
        'http in the production profile (the dev outbox shows codes to the desk): set SMS_ADAPTER=http and SMS_HTTP_URL',
    });
  }
  if (c.FACEID_BOOTSTRAP) {
    out.push({
      key: 'FACEID_BOOTSTRAP',
      value: 'true',
      expects: 'false in the production profile (no demo clinic): unset it or set false',
    });
  }
  if (c.WS_ALLOWED_ORIGINS.includes('*')) {
    out.push({
      key: 'WS_ALLOWED_ORIGINS',
      value: c.WS_ALLOWED_ORIGINS.join(','),
      expects: "the desk pages' origins in the production profile, not `*` (e.g. self or https://desk.clinic.kz)",
    });
  }
  if (c.WEBHOOK_ALLOW_HTTP) {
    out.push({
      key: 'WEBHOOK_ALLOW_HTTP',
      value: 'true',
      expects: 'false in the production profile (webhooks over https only)',
    });
  }
  return out;
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
