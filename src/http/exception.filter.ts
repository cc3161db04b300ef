import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { errorStatus, ValidationError, type ErrorBody } from './errors';

/** Codes and fixed messages for Nest's and Express's own HTTP errors (no route, body parser, multer). */
const HTTP_STATUS_CODES: Record<number, [code: string, message: string]> = {
  400: ['invalid_request', 'The request is malformed.'],
  401: ['unauthorized', 'Authentication is required.'],
  403: ['forbidden', 'Not allowed.'],
  404: ['not_found', 'No such resource.'],
  405: ['method_not_allowed', 'Method not allowed.'],
  413: ['payload_too_large', 'The request body is too large.'],
  415: ['unsupported_media_type', 'Unsupported content type.'],
  429: ['rate_limited', 'Too many requests; retry later.'],
};

interface Reply {
  status: number;
  /** ErrorBody, or the body of an HttpException that carries its own code. */
  body: ErrorBody;
  retryAfterSeconds?: number;
}

interface CodedError {
  code: string;
  message?: unknown;
  retryAfterSeconds?: unknown;
  details?: unknown;
}

const RESERVED = new Set(['code', 'message', 'issues']);

/** The primitive-valued, non-reserved entries of an error's `details`. */
function detailsOf(err: CodedError): Record<string, number | string | boolean> {
  const d = err.details;
  if (typeof d !== 'object' || d === null) return {};
  return Object.fromEntries(
    Object.entries(d).filter(
      ([k, v]) =>
        !RESERVED.has(k) &&
        (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))),
    ),
  );
}

function isCoded(err: unknown): err is CodedError {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string';
}

/** An error thrown by Express or its body parsers (http-errors: `status` and `expose`). */
function httpErrorStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { status?: unknown; statusCode?: unknown; expose?: unknown };
  const status = typeof e.status === 'number' ? e.status : e.statusCode;
  return e.expose === true && typeof status === 'number' && status >= 400 && status < 500 ? status : undefined;
}

function fromStatus(status: number): Reply {
  const [code, message] =
    HTTP_STATUS_CODES[status] ??
    (status < 500
      ? ['invalid_request', 'The request cannot be served.']
      : status === 503
        ? ['unavailable', 'Temporarily unavailable.']
        : ['internal', 'Internal error.']);
  return { status: status >= 400 && status <= 599 ? status : 500, body: { error: { code, message } } };
}

const INTERNAL: Reply = { status: 500, body: { error: { code: 'internal', message: 'Internal error.' } } };

/** The database did not answer (restarting, failing over, unreachable): a desk may simply try again shortly. */
const DATABASE_UNAVAILABLE: Reply = {
  status: 503,
  body: { error: { code: 'database_unavailable', message: 'The database is not answering; retry shortly.' } },
  retryAfterSeconds: 2,
};

/** Prisma's codes for a server it cannot reach or that went away, and the pg driver's and server's equivalents. */
const DATABASE_DOWN_CODES = new Set([
  'P1001',
  'P1002',
  'P1008',
  'P1017',
  'P2024', // Prisma: unreachable, timed out, closed, pool timeout
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  '57P01',
  '57P02',
  '57P03', // PostgreSQL: admin shutdown, crash shutdown, cannot connect now
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout', // driver adapter error kinds
]);
const DATABASE_DOWN_TEXT =
  /Can't reach database server|Connection terminated|connection error and is not queryable|terminating connection due to administrator command|the database system is (starting up|shutting down|in recovery mode)|Server has closed the connection|ECONNREFUSED/;

/** One short line for the log: the error's code or the last line of its message (Prisma's quote the calling code). */
function databaseErrorSummary(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const lines = typeof e.message === 'string' ? e.message.trim().split('\n') : [];
  return [typeof e.code === 'string' ? e.code : null, lines.at(-1)?.slice(0, 200) ?? null].filter(Boolean).join(': ');
}

/** Whether an error (or its cause, a few levels down) says the database is down rather than the request wrong. */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 4) return false;
  const e = err as { name?: unknown; code?: unknown; kind?: unknown; message?: unknown; cause?: unknown };
  if (e.name === 'PrismaClientInitializationError') return true;
  if (typeof e.code === 'string' && DATABASE_DOWN_CODES.has(e.code)) return true;
  if (typeof e.kind === 'string' && DATABASE_DOWN_CODES.has(e.kind)) return true;
  if (typeof e.message === 'string' && DATABASE_DOWN_TEXT.test(e.message)) return true;
  return isDatabaseUnavailable(e.cause, depth + 1);
}

/**
 * Turns any exception into `{"error": {"code", "message"}}`:
 * - a typed error (a string `code` its class gives a status, see AppError): its code, status and message;
 * - a ValidationError: 400 with `issues`;
 * - Nest's HttpException and Express's body-parser errors: a code and a fixed message per status (their own
 *   messages can quote the request, e.g. a JSON syntax error quotes the body), except an HttpException whose body
 *   our code shaped with a string `code` (e.g. /health's `{status: 'error', code}`), which is sent unchanged;
 * - the database not answering (Prisma P1001 and kin, a refused or dropped connection): 503 `database_unavailable`
 *   with Retry-After, logged as a warning;
 * - anything else, including errors with unknown codes (ENOENT, other database codes): 500 `internal`, logged.
 * Request bodies are never echoed. 5xx are logged with the code and message; 4xx at debug level.
 */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('Http');

  catch(exception: unknown, host: ArgumentsHost): void {
    // HTTP only (WebSocket gateways have their own error messages).
    if (host.getType() !== 'http') throw exception;
    const reply = this.reply(exception);
    const ctx = host.switchToHttp();
    const res = ctx.getResponse<{
      headersSent: boolean;
      status(code: number): { json(body: unknown): void };
      setHeader(name: string, value: string): void;
      end(): void;
    }>();
    if (res.headersSent) {
      res.end();
      return;
    }
    res.setHeader('Cache-Control', 'no-store');
    if (reply.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(reply.retryAfterSeconds));
    res.status(reply.status).json(reply.body);
  }

  reply(exception: unknown): Reply {
    if (
      !(exception instanceof HttpException) &&
      (!isCoded(exception) || errorStatus(exception) === undefined) &&
      isDatabaseUnavailable(exception)
    ) {
      this.logger.warn(`database_unavailable: ${databaseErrorSummary(exception)}`);
      return DATABASE_UNAVAILABLE;
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const body = exception.getResponse();
      // Shaped by our own code with a stable code (e.g. /health's {status, code} for load balancers): kept as is.
      if (typeof body === 'object' && body !== null && typeof (body as { code?: unknown }).code === 'string') {
        return { status, body: body as ErrorBody };
      }
      if (status >= 500) this.logger.error(`HTTP ${status}: ${exception.message}`);
      return fromStatus(status);
    }
    if (isCoded(exception)) {
      const status = errorStatus(exception);
      const message = typeof exception.message === 'string' && exception.message ? exception.message : exception.code;
      if (status === undefined) {
        const expressStatus = httpErrorStatus(exception);
        if (expressStatus !== undefined) return fromStatus(expressStatus);
        this.logger.error(`Unmapped error code ${exception.code}: ${message}`, (exception as { stack?: string }).stack);
        return INTERNAL;
      }
      const retry = (exception as CodedError).retryAfterSeconds;
      const retryable = typeof retry === 'number' && Number.isFinite(retry);
      // A 503 that says when to retry is load shed on purpose (capacity, a drain): the service that refused notes it
      // in its own words; one error line per refused request would flood the log under the very load it sheds.
      if (status >= 500 && !(status === 503 && retryable)) this.logger.error(`${exception.code}: ${message}`);
      else this.logger.debug(`${exception.code}: ${message}`);
      // A 500 is a bug or a broken installation: its detail is for the log, not the client.
      const reply: Reply = {
        status,
        body: {
          error: {
            code: exception.code,
            message: status === 500 ? 'Internal error.' : message,
            // Reserved keys are filtered out: details never replace the code or the message.
            ...(status === 500 ? {} : detailsOf(exception)),
          },
        },
      };
      if (exception instanceof ValidationError) reply.body.error.issues = exception.issues.map((i) => ({ ...i }));
      if (retryable) reply.retryAfterSeconds = Math.max(1, Math.ceil(retry));
      return reply;
    }
    const expressStatus = httpErrorStatus(exception);
    if (expressStatus !== undefined) return fromStatus(expressStatus);
    this.logger.error(exception instanceof Error ? exception : String(exception), (exception as Error)?.stack);
    return INTERNAL;
  }
}
