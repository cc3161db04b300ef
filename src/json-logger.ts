import type { LoggerService, LogLevel as NestLogLevel } from '@nestjs/common';
import type { LogLevel } from './config';

/** Severity rank: a line is written when its rank is at or above the threshold's. */
const RANK: Record<LogLevel, number> = { verbose: 0, debug: 1, info: 2, warn: 3, error: 4, fatal: 5 };

export interface LogLine {
  time: string;
  level: LogLevel;
  context?: string;
  msg: string;
  stack?: string;
  code?: string;
}

/**
 * One JSON object per line on stdout, the sink behind Nest's `Logger`. Modules log through `new Logger(ctx)`;
 * callers pass short messages and codes only, never request bodies, frames or embeddings.
 */
export class JsonLogger implements LoggerService {
  private threshold: number;

  constructor(
    level: LogLevel = 'info',
    private readonly write: (line: string) => void = (line) => process.stdout.write(line),
  ) {
    this.threshold = RANK[level];
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
    const mine = levels.map((l) => (l === 'log' ? 'info' : l)).filter((l): l is LogLevel => l in RANK);
    this.threshold = mine.length ? Math.min(...mine.map((l) => RANK[l])) : Infinity;
  }

  isEnabled(level: LogLevel): boolean {
    return RANK[level] >= this.threshold;
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
    const line: LogLine = { time: new Date().toISOString(), level, context, msg: '' };
    if (message instanceof Error) {
      line.msg = message.message;
      const code = (message as Error & { code?: unknown }).code;
      if (typeof code === 'string') line.code = code;
      if (withStack && message.stack) line.stack = message.stack;
    } else {
      line.msg = typeof message === 'string' ? message : safeStringify(message);
    }
    const stack = rest.find((p) => typeof p === 'string');
    if (withStack && typeof stack === 'string' && !line.stack) line.stack = stack;
    this.write(JSON.stringify(line) + '\n');
  }
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
