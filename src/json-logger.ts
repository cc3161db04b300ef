import type { LoggerService, LogLevel as NestLogLevel } from '@nestjs/common';
import { pino, type DestinationStream, type Logger as Pino } from 'pino';
import { LOG_LEVELS, type LogLevel } from './config';

/** Our levels as pino numbers (pino's own names would turn `verbose` into `trace`). */
const LEVELS: Record<LogLevel, number> = { verbose: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

export interface LogLine {
  time: string;
  level: LogLevel;
  context?: string;
  msg: string;
  stack?: string;
  code?: string;
}

/** Keys whose values are never logged: frames, images and face templates, under whatever name a caller used. */
const BIOMETRIC_KEY = /^(frames?|images?|jpe?g|photos?|pixels|embeddings?|templates?|descriptors?|landmarks)$/i;
/** A longer list of numbers is taken for an embedding or landmarks and logged as its length only. */
const MAX_NUMBERS = 32;

let stdout: DestinationStream | undefined;
/** One synchronous writer on fd 1 for every logger: a line is out before `process.exit()` or a crash. */
function stdoutDestination(): DestinationStream {
  return (stdout ??= pino.destination({ dest: 1, sync: true }));
}

/**
 * One JSON object per line on stdout (`time`, `level`, `context`, `msg`, and for errors `code`/`stack`), the sink
 * behind Nest's `Logger`, written by pino. Modules log through `new Logger(ctx)`; callers pass short messages and
 * codes only, never request bodies, frames or embeddings. As a second line of defence, a non-string message is
 * flattened into `msg` with binary data, long number lists and biometric keys replaced by a placeholder.
 *
 * A small LoggerService over pino rather than nestjs-pino: that one's point is pino-http request logging (a line per
 * request with URL and headers, i.e. API keys and session tokens) and a request-scoped logger, neither wanted here.
 */
export class JsonLogger implements LoggerService {
  private readonly pino: Pino<LogLevel, boolean>;

  /** `write` receives each line, newline included (tests); by default lines go to stdout synchronously. */
  constructor(level: LogLevel = 'info', write?: (line: string) => void) {
    this.pino = pino<LogLevel, true>(
      {
        customLevels: LEVELS,
        useOnlyCustomLevels: true,
        level,
        base: null, // no pid/hostname
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      write ? { write } : stdoutDestination(),
    );
  }

  log(message: unknown, ...params: unknown[]): void {
    this.emit('info', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.emit('error', message, params, true);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.emit('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.emit('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.emit('verbose', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.emit('fatal', message, params, true);
  }

  /** Nest calls this with its own level names; the lowest one enabled becomes the threshold. */
  setLogLevels(levels: NestLogLevel[]): void {
    const mine = levels.map((l) => (l === 'log' ? 'info' : l)).filter((l): l is LogLevel => l in LEVELS);
    const lowest = LOG_LEVELS.filter((l) => mine.includes(l)).pop();
    this.pino.level = lowest ?? 'silent';
  }

  isEnabled(level: LogLevel): boolean {
    return this.pino.isLevelEnabled(level);
  }

  private emit(level: LogLevel, message: unknown, params: unknown[], withStack = false): void {
    if (!this.isEnabled(level)) return;
    // Nest appends the context as the last string argument; for error() the one before may be a stack.
    const rest = [...params];
    let context = rest.length > 0 && typeof rest[rest.length - 1] === 'string' ? (rest.pop() as string) : undefined;
    if (context?.includes('\n')) {
      rest.push(context); // error(msg, stack) without a context
      context = undefined;
    }
    const fields: { context?: string; code?: string; stack?: string } = { context };
    let msg: string;
    if (message instanceof Error) {
      msg = message.message;
      const code = (message as Error & { code?: unknown }).code;
      if (typeof code === 'string') fields.code = code;
      if (withStack && message.stack) fields.stack = message.stack;
    } else {
      msg = typeof message === 'string' ? message : safeStringify(message);
    }
    const stack = rest.find((p) => typeof p === 'string');
    if (withStack && typeof stack === 'string' && !fields.stack) fields.stack = stack;
    // Always a merge object plus the message alone: pino then never applies printf-style formatting to `msg`.
    this.pino[level](fields, msg);
  }
}

function safeStringify(value: unknown): string {
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return binary(value);
  try {
    return JSON.stringify(value, withoutBiometrics) ?? String(value);
  } catch {
    return String(value);
  }
}

/** JSON.stringify replacer: `this[key]` is the value before `toJSON` (a Buffer, not its `{type, data}` form). */
function withoutBiometrics(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  if (key !== '' && BIOMETRIC_KEY.test(key)) return '[redacted]';
  if (ArrayBuffer.isView(raw) || raw instanceof ArrayBuffer) return binary(raw);
  if (Array.isArray(value) && value.length > MAX_NUMBERS && value.every((v) => typeof v === 'number'))
    return `[${value.length} numbers]`;
  return value;
}

function binary(value: ArrayBufferView | ArrayBuffer): string {
  return `[binary ${value.byteLength} bytes]`;
}
