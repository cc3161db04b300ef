/*
 * HTTP edge: validation with zod schemas that also generate the OpenAPI document, one error format, the docs.
 *
 * Usage in a controller:
 *
 *   const CreateSession = defineRoute({
 *     summary: 'Open an identification session',
 *     tags: ['sessions'],
 *     body: z.object({ patientIin: IinSchema, appointmentId: z.string().min(1) }),
 *     response: z.object({ sessionId: z.string(), token: z.string(), expiresAt: z.iso.datetime() }),
 *     errors: ['session_not_found'],               // codes the route may answer (documented with their status)
 *   });
 *
 *   @Controller('sessions')
 *   @WorkstationAuth()                              // from src/auth: API-key guard + its docs
 *   export class SessionsController {
 *     @Post()
 *     @ApiRoute(CreateSession)
 *     create(@Input() input: RouteInput<typeof CreateSession>, @Principal() who: Principal) {
 *       input.body.patientIin;                      // typed and validated
 *       return { ..., expiresAt: date.toISOString() }; // parsed with `response`: unknown keys are dropped
 *     }
 *   }
 *
 * - `params` / `query` / `body` are validated before the handler (path and query values are strings: use
 *   z.coerce); a failure is 400 {"error": {"code": "invalid_request", "message", "issues": [{path, message}]}}.
 *   A custom check may set its own code with `ctx.addIssue({code: 'custom', message, params: {code: 'iin_invalid'}})`.
 * - `response: null` means 204 with no body; `status` sets another success status.
 * - `rawBody` documents a non-JSON body (the route reads it itself; see src/enrollment).
 * - Throw typed errors (anything with a string `code`, e.g. `new AppError('session_not_found', '...')`). The global
 *   ErrorFilter answers {"error": {"code", "message"}} with the status the error's class gives its code: a module
 *   with codes of its own subclasses AppError with `static override readonly status = { my_code: 409 }`, and lists
 *   the class in app.module.ts (`HttpModule.forRoot({ errors })`) so the OpenAPI document knows the statuses too.
 *   AppError's own table has the shared codes. Unknown codes and plain errors become 500 `internal`.
 * - `ZodPipe` / `parseOrThrow` validate one value where `@ApiRoute` does not fit (e.g. a WebSocket message).
 * - Import HttpModule.forRoot once (app.module.ts does). `GET /openapi.json` lists every `@ApiRoute` route; `GET /docs`
 *   shows it in Swagger UI (served from the swagger-ui-dist package).
 */
export {
  AppError,
  RateLimitedError,
  ValidationError,
  ErrorBodySchema,
  errorStatus,
  errorStatusTable,
  type ErrorClass,
  type ErrorStatusTable,
  type ErrorBody,
  type ErrorDetails,
  type ValidationIssue,
} from './errors';
export { parseOrThrow, ZodPipe, type RequestPart } from './validation';
export {
  ApiRoute,
  ApiSecurity,
  Input,
  defineRoute,
  getRouteSpec,
  RouteInterceptor,
  type RouteSpec,
  type RouteInput,
  type RouteSecurity,
  type JsonSchema,
} from './route';
export { ErrorFilter } from './exception.filter';
export { API_ERROR_CLASSES, OpenApiService, buildOpenApi, type DocumentedRoute } from './openapi';
export { HttpModule, type HttpModuleOptions } from './http.module';
