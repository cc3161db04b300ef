import { Injectable, type PipeTransform } from '@nestjs/common';
import type { z } from 'zod';
import { ValidationError, type ValidationIssue } from './errors';

export type RequestPart = 'params' | 'query' | 'body';

/** At most this many issues go back to the client (a huge invalid array should not make a huge answer). */
const MAX_ISSUES = 20;

/**
 * Parses `value` with `schema` or throws a ValidationError (400). The error code is `invalid_request`, unless every
 * issue carries a code of its own in `params.code` (a custom check such as the IIN's: `iin_invalid`).
 * Issue messages are zod's or the schema's own; zod does not put input values into them.
 */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, part: RequestPart): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues: ValidationIssue[] = result.error.issues.slice(0, MAX_ISSUES).map((issue) => ({
    path: [part, ...issue.path.map(String)].join('.'),
    message: issue.message,
  }));
  const codes = new Set(
    result.error.issues.map((issue) => {
      const params = (issue as { params?: { code?: unknown } }).params;
      return typeof params?.code === 'string' ? params.code : 'invalid_request';
    }),
  );
  const code = codes.size === 1 ? [...codes][0] : 'invalid_request';
  const first = issues[0];
  const message =
    code === 'invalid_request'
      ? `Invalid request: ${first ? `${first.path}: ${first.message}` : 'schema mismatch'}` +
        (result.error.issues.length > 1 ? ` (and ${result.error.issues.length - 1} more)` : '')
      : (first?.message ?? 'Invalid request.');
  throw new ValidationError(code, message, issues);
}

/**
 * A pipe for one argument, where a route does not use `@ApiRoute`: `@Query(new ZodPipe(schema, 'query'))`.
 * Prefer `@ApiRoute` + `@Input()`, which also documents the route.
 */
@Injectable()
export class ZodPipe<S extends z.ZodType> implements PipeTransform<unknown, z.output<S>> {
  constructor(
    private readonly schema: S,
    private readonly part: RequestPart = 'body',
  ) {}

  transform(value: unknown): z.output<S> {
    return parseOrThrow(this.schema, value, this.part);
  }
}
