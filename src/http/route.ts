import {
  applyDecorators,
  createParamDecorator,
  HttpCode,
  Injectable,
  Logger,
  SetMetadata,
  UseInterceptors,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { map, type Observable } from 'rxjs';
import type { z } from 'zod';
import { AppError } from './errors';
import { parseOrThrow, type RequestPart } from './validation';

export const ROUTE_SPEC = 'faceid:route-spec';
export const ROUTE_SECURITY = 'faceid:route-security';

/** A JSON Schema object, as written into the OpenAPI document. */
export type JsonSchema = Record<string, unknown>;

/** Everything a route declares once: validation at the edge, and its OpenAPI operation. */
export interface RouteSpec {
  summary: string;
  description?: string;
  tags: readonly string[];
  /** Path parameters (strings; use z.coerce for numbers). */
  params?: z.ZodType;
  /** Query string (strings or string arrays; use z.coerce). */
  query?: z.ZodType;
  /** A JSON body. */
  body?: z.ZodType;
  /**
   * The success body. It is parsed on the way out, so keys the schema does not name are dropped (nothing extra can
   * leak into an answer) and a mismatch is a 500 `internal`, logged. Dates must be returned as ISO strings.
   * `null`: no body, 204.
   */
  response: z.ZodType | null;
  /** Success status. Default: 204 when `response` is null, else Nest's (201 for POST, 200 otherwise). */
  status?: number;
  /** Error codes the route may answer besides validation and auth, documented with their status. */
  errors?: readonly string[];
  /** A body that is not JSON (images): documented as given here, read and checked by the route itself. */
  rawBody?: {
    description?: string;
    required?: boolean;
    content: Record<string, { schema: JsonSchema }>;
  };
  /** Left out of the OpenAPI document. */
  hidden?: boolean;
}

/** Security of a controller or route, for the document (the guard itself is separate). */
export interface RouteSecurity {
  /** Name of the scheme in components.securitySchemes. */
  name: string;
  scheme: JsonSchema;
  /** Codes the guard may answer (e.g. unauthorized, rate_limited). */
  errors: readonly string[];
}

type Out<T> = T extends z.ZodType ? z.output<T> : undefined;

/** The validated, typed input of a route: `@Input() input: RouteInput<typeof spec>`. */
export interface RouteInput<S extends RouteSpec> {
  params: Out<S['params']>;
  query: Out<S['query']>;
  body: Out<S['body']>;
}

/** Keeps the literal type of a spec, so `RouteInput<typeof spec>` knows its schemas. */
export function defineRoute<const S extends RouteSpec>(spec: S): S {
  return spec;
}

const INPUT = Symbol('faceid:route-input');

interface WithInput {
  [INPUT]?: Record<RequestPart, unknown>;
  params?: unknown;
  query?: unknown;
  body?: unknown;
}

export function getRouteSpec(handler: object): RouteSpec | undefined {
  return Reflect.getMetadata(ROUTE_SPEC, handler) as RouteSpec | undefined;
}

/** Validates params, query and body before the handler; parses the response after it. */
@Injectable()
export class RouteInterceptor implements NestInterceptor {
  private readonly logger = new Logger('Http');

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const spec = getRouteSpec(context.getHandler());
    if (!spec || context.getType() !== 'http') return next.handle();
    const req = context.switchToHttp().getRequest<WithInput>();
    req[INPUT] = {
      params: spec.params ? parseOrThrow(spec.params, req.params ?? {}, 'params') : undefined,
      query: spec.query ? parseOrThrow(spec.query, req.query ?? {}, 'query') : undefined,
      body: spec.body ? parseOrThrow(spec.body, req.body, 'body') : undefined,
    };
    const where = `${context.getClass().name}.${context.getHandler().name}`;
    return next.handle().pipe(map((value: unknown) => this.serialize(spec, value, where)));
  }

  private serialize(spec: RouteSpec, value: unknown, where: string): unknown {
    if (spec.response === null) return undefined;
    const result = spec.response.safeParse(value);
    if (result.success) return result.data;
    // Paths only: the value itself may be anything.
    const paths = result.error.issues.map((i) => i.path.join('.') || '(root)').join(', ');
    this.logger.error(`The answer of ${where} does not match its response schema at: ${paths}`);
    throw new AppError('internal', 'Internal error.');
  }
}

/**
 * Declares a route's schemas and docs once. Put it beside Nest's method decorator:
 * `@Post(':iin/template') @ApiRoute(spec)`. Read the validated input with `@Input()`.
 */
export function ApiRoute(spec: RouteSpec): MethodDecorator {
  const status = spec.status ?? (spec.response === null ? 204 : undefined);
  return applyDecorators(
    SetMetadata(ROUTE_SPEC, spec),
    UseInterceptors(RouteInterceptor),
    ...(status === undefined ? [] : [HttpCode(status)]),
  );
}

/** Documents a guard's security scheme and error codes on a controller or route (see the auth module). */
export function ApiSecurity(security: RouteSecurity): ClassDecorator & MethodDecorator {
  return SetMetadata(ROUTE_SECURITY, security);
}

/**
 * The validated input of an `@ApiRoute` handler: `@Input() input: RouteInput<typeof spec>`, or one part:
 * `@Input('params') params: RouteInput<typeof spec>['params']`.
 */
export const Input = createParamDecorator((part: RequestPart | undefined, ctx: ExecutionContext) => {
  const input = ctx.switchToHttp().getRequest<WithInput>()[INPUT];
  if (!input) throw new Error('@Input() is used on a handler without @ApiRoute().');
  return part ? input[part] : input;
});
