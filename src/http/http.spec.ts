import {
  Body,
  Controller,
  Get,
  Module,
  Post,
  Query,
  ServiceUnavailableException,
  type INestApplication,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { z } from 'zod';
import { IinSchema } from '../patients';
import {
  AppError,
  errorStatus,
  errorStatusTable,
  RateLimitedError,
  ValidationError,
  type ErrorStatusTable,
} from './errors';
import { HttpModule } from './http.module';
import { ErrorFilter } from './exception.filter';
import { ApiRoute, ApiSecurity, defineRoute, Input, type RouteInput } from './route';
import { parseOrThrow, ZodPipe } from './validation';

describe('parseOrThrow', () => {
  const Body = z.object({
    name: z.string().min(1),
    count: z.number().int().max(10),
    tags: z.array(z.string()).optional(),
  });

  it('returns the typed, parsed value', () => {
    const v = parseOrThrow(Body, { name: 'a', count: 3, extra: 'dropped' }, 'body');
    expect(v).toEqual({ name: 'a', count: 3 });
  });

  it('throws invalid_request with one issue per problem, paths prefixed by the request part', () => {
    let err: unknown;
    try {
      parseOrThrow(Body, { name: '', count: 11.5, tags: ['ok', 5] }, 'body');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    const v = err as ValidationError;
    expect(v.code).toBe('invalid_request');
    expect(v.issues.map((i) => i.path).sort()).toEqual(['body.count', 'body.name', 'body.tags.1']);
    expect(v.message).toMatch(/^Invalid request: body\.\w+: .+ \(and 2 more\)$/);
  });

  it('never echoes the input value', () => {
    const secret = 'do-not-echo-this-value';
    try {
      parseOrThrow(z.object({ n: z.number(), e: z.enum(['a', 'b']) }), { n: secret, e: secret }, 'query');
    } catch (e) {
      expect(JSON.stringify(e) + (e as Error).message).not.toContain(secret);
    }
  });

  it('uses a custom code when every issue carries it (the IIN)', () => {
    try {
      parseOrThrow(z.object({ iin: IinSchema }), { iin: '123' }, 'params');
      throw new Error('no error');
    } catch (e) {
      expect(e).toMatchObject({ code: 'iin_invalid', issues: [{ path: 'params.iin', message: expect.any(String) }] });
    }
    // Mixed with another problem: the generic code.
    try {
      parseOrThrow(z.object({ iin: IinSchema, n: z.number() }), { iin: '123', n: 'x' }, 'body');
    } catch (e) {
      expect(e).toMatchObject({ code: 'invalid_request' });
    }
  });

  it('ZodPipe validates one argument', () => {
    const pipe = new ZodPipe(z.coerce.number().int(), 'query');
    expect(pipe.transform('42')).toBe(42);
    expect(() => pipe.transform('x')).toThrow(ValidationError);
  });
});

/** A module's own codes, declared on its error class. */
class WidgetError extends AppError {
  // Typed as any table, so a subclass may declare other codes.
  static override readonly status: ErrorStatusTable = { widget_conflict: 409, widget_gone: 410 };
}

/** A subclass of it with one more code of its own. */
class SmallWidgetError extends WidgetError {
  static override readonly status = { widget_too_small: 422 };
}

describe('the status of an error', () => {
  it('is the shared table for the shared codes, on AppError and any error with a code', () => {
    const status = (code: string) => errorStatus(new AppError(code, 'x'));
    expect(status('invalid_request')).toBe(400);
    expect(status('iin_invalid')).toBe(400);
    expect(status('unauthorized')).toBe(401);
    expect(status('template_not_found')).toBe(404);
    expect(status('conflict')).toBe(409);
    expect(status('frame_corrupt')).toBe(422);
    expect(status('frame_anything_new')).toBe(422);
    expect(status('rate_limited')).toBe(429);
    expect(status('busy')).toBe(503);
    expect(status('ENOENT')).toBeUndefined();
    // Errors that are no AppError (the engine's, say): the shared table by code.
    expect(errorStatus(Object.assign(new Error('x'), { code: 'engine_closed' }))).toBe(503);
    expect(errorStatus(Object.assign(new Error('x'), { code: 'frame_corrupt' }))).toBe(422);
    expect(errorStatus({ code: 'ENOENT' })).toBeUndefined();
  });

  it("is its class's, then its parents', then the shared one", () => {
    expect(new WidgetError('widget_conflict', 'x').status).toBe(409);
    expect(new SmallWidgetError('widget_too_small', 'x').status).toBe(422);
    expect(new SmallWidgetError('widget_gone', 'x').status).toBe(410);
    expect(new SmallWidgetError('not_found', 'x').status).toBe(404);
    // Another class's code is not this class's: nothing global.
    expect(new AppError('widget_conflict', 'x').status).toBeUndefined();
    expect(new WidgetError('widget_too_small', 'x').status).toBeUndefined();
    // The status is no own property: serialising an error shows what it did before.
    expect(Object.keys(new WidgetError('widget_conflict', 'x'))).not.toContain('status');
  });

  it('makes one table of the classes, and refuses bad or conflicting ones', () => {
    const table = errorStatusTable([SmallWidgetError]);
    expect(table).toMatchObject({ widget_conflict: 409, widget_gone: 410, widget_too_small: 422, not_found: 404 });
    expect(Object.keys(table)).toEqual([...Object.keys(table)].sort((a, b) => a.localeCompare(b)));
    expect(errorStatusTable()).not.toHaveProperty('widget_conflict');
    class BadCode extends AppError {
      static override readonly status = { 'Bad-Code': 400 };
    }
    class NotAnError extends AppError {
      static override readonly status = { ok_code: 200 };
    }
    class Conflicting extends AppError {
      static override readonly status = { widget_conflict: 400 };
    }
    class SharedConflict extends AppError {
      static override readonly status = { not_found: 410 };
    }
    expect(() => errorStatusTable([BadCode])).toThrow(/snake_case/);
    expect(() => errorStatusTable([NotAnError])).toThrow(/4xx\/5xx/);
    expect(() => errorStatusTable([WidgetError, Conflicting])).toThrow(/widget_conflict/);
    expect(() => errorStatusTable([SharedConflict])).toThrow(/not_found/);
  });
});

// ---- A small app with routes declared through ApiRoute, over real HTTP --------------------------------------------

const createSpec = defineRoute({
  summary: 'Create a widget',
  tags: ['widgets'],
  body: z.object({ name: z.string().min(1).max(20), size: z.number().int().positive() }),
  query: z.object({ dryRun: z.enum(['true', 'false']).optional() }),
  response: z.object({ id: z.string(), name: z.string() }),
  errors: ['widget_conflict'],
});

const getSpec = defineRoute({
  summary: 'A widget',
  tags: ['widgets'],
  params: z.object({ iin: IinSchema }),
  response: z.object({ iin: z.string() }),
});

@Controller('widgets')
@ApiSecurity({ name: 'testKey', scheme: { type: 'http', scheme: 'bearer' }, errors: ['unauthorized'] })
class WidgetController {
  @Post()
  @ApiRoute(createSpec)
  create(@Input() input: RouteInput<typeof createSpec>) {
    if (input.body.name === 'taken') throw new WidgetError('widget_conflict', 'That name is taken.');
    if (input.body.name === 'almost') {
      throw new WidgetError('widget_conflict', 'Almost.', {
        triesLeft: 2,
        code: 'forged',
        message: 'forged',
        issues: 'x',
      });
    }
    if (input.body.name === 'stray') throw new AppError('widget_conflict', 'Not a WidgetError.');
    if (input.body.name === 'slow') throw new RateLimitedError(2.2);
    if (input.body.name === 'crash') throw Object.assign(new Error('db said: secret detail'), { code: 'P2002' });
    if (input.body.name === 'leak') return { id: 'w1', name: 'leak', embedding: [1, 2, 3] };
    if (input.body.name === 'wrong') return { id: 1 };
    return { id: 'w1', name: input.body.name };
  }

  @Get(':iin')
  @ApiRoute(getSpec)
  get(@Input('params') params: RouteInput<typeof getSpec>['params']) {
    return { iin: params.iin };
  }

  @Post('raw')
  raw(@Body() body: unknown, @Query('n', new ZodPipe(z.coerce.number().int(), 'query')) n: number) {
    return { body, n };
  }

  @Get('status/down')
  down(): never {
    throw new ServiceUnavailableException();
  }

  @Get('status/health')
  health(): never {
    throw new ServiceUnavailableException({ status: 'error', code: 'model_missing' });
  }

  @Post('gone')
  @ApiRoute({ summary: 'Delete', tags: ['widgets'], response: null })
  gone(): void {}
}

@Module({ imports: [HttpModule.forRoot({ errors: [WidgetError] })], controllers: [WidgetController] })
class TestModule {}

describe('ApiRoute, ErrorFilter and the OpenAPI document (HTTP)', () => {
  let app: INestApplication;
  let url: string;

  beforeAll(async () => {
    app = await NestFactory.create(TestModule, { logger: false, abortOnError: false });
    await app.listen(0, '127.0.0.1');
    url = await app.getUrl();
  });
  afterAll(() => app?.close());

  const post = (path: string, body: string, type = 'application/json') =>
    fetch(url + path, { method: 'POST', headers: { 'content-type': type }, body });

  type Json = any; // the bodies are checked field by field
  async function reply(res: Response): Promise<{ status: number; body: Json }> {
    return { status: res.status, body: res.status === 204 ? null : await res.json() };
  }

  it('passes valid input to the handler and parses the answer', async () => {
    expect(await reply(await post('/widgets?dryRun=true', JSON.stringify({ name: 'a', size: 2 })))).toEqual({
      status: 201,
      body: { id: 'w1', name: 'a' },
    });
  });

  it('answers 400 invalid_request with issues', async () => {
    const r = await reply(await post('/widgets?dryRun=maybe', JSON.stringify({ name: '', size: -1 })));
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('invalid_request');
    expect(r.body.error.issues).toEqual([{ path: 'query.dryRun', message: expect.any(String) }]);
    const r2 = await reply(await post('/widgets', JSON.stringify({ name: '', size: -1 })));
    expect(r2.body.error.issues.map((i: { path: string }) => i.path)).toEqual(['body.name', 'body.size']);
  });

  it('answers a missing body as invalid_request', async () => {
    const r = await reply(await fetch(url + '/widgets', { method: 'POST' }));
    expect(r).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } });
  });

  it('answers the IIN check with iin_invalid', async () => {
    const r = await reply(await fetch(url + '/widgets/900101300020'));
    expect(r).toEqual({
      status: 400,
      body: {
        error: {
          code: 'iin_invalid',
          message: expect.any(String),
          issues: [{ path: 'params.iin', message: expect.any(String) }],
        },
      },
    });
    expect(JSON.stringify(r.body)).not.toContain('900101300020');
    expect(await reply(await fetch(url + '/widgets/900101300027'))).toEqual({
      status: 200,
      body: { iin: '900101300027' },
    });
  });

  it('does not echo a malformed JSON body', async () => {
    const secret = '{"name": "SECRET-BODY-CONTENT", oops';
    const res = await post('/widgets', secret);
    const text = await res.text();
    expect(res.status).toBe(400);
    expect(JSON.parse(text)).toEqual({ error: { code: 'invalid_request', message: expect.any(String) } });
    expect(text).not.toContain('SECRET');
  });

  it('maps typed errors through the table, with Retry-After for rate_limited', async () => {
    expect(await reply(await post('/widgets', JSON.stringify({ name: 'taken', size: 1 })))).toEqual({
      status: 409,
      body: { error: { code: 'widget_conflict', message: 'That name is taken.' } },
    });
    // Details ride along; they cannot overwrite the code, the message or the issues.
    expect(await reply(await post('/widgets', JSON.stringify({ name: 'almost', size: 1 })))).toEqual({
      status: 409,
      body: { error: { code: 'widget_conflict', message: 'Almost.', triesLeft: 2 } },
    });
    const slow = await post('/widgets', JSON.stringify({ name: 'slow', size: 1 }));
    expect(slow.status).toBe(429);
    expect(slow.headers.get('retry-after')).toBe('3');
    expect(((await slow.json()) as Json).error.code).toBe('rate_limited');
  });

  it('answers unknown codes and plain errors as a generic 500', async () => {
    const r = await reply(await post('/widgets', JSON.stringify({ name: 'crash', size: 1 })));
    expect(r).toEqual({ status: 500, body: { error: { code: 'internal', message: 'Internal error.' } } });
    // A code is its class's: another class throwing it is unmapped.
    const stray = await reply(await post('/widgets', JSON.stringify({ name: 'stray', size: 1 })));
    expect(stray).toEqual({ status: 500, body: { error: { code: 'internal', message: 'Internal error.' } } });
  });

  it('answers a database that does not answer as 503 database_unavailable with Retry-After, not as a bug', () => {
    const filter = new ErrorFilter();
    const down = [
      Object.assign(new Error("Can't reach database server at 127.0.0.1:5432"), { code: 'P1001' }),
      Object.assign(new Error('x'), { name: 'PrismaClientInitializationError' }),
      new Error('wrapped', {
        cause: Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      }),
      new Error('Client has encountered a connection error and is not queryable'),
    ];
    for (const err of down) {
      expect(filter.reply(err)).toEqual({
        status: 503,
        body: { error: { code: 'database_unavailable', message: 'The database is not answering; retry shortly.' } },
        retryAfterSeconds: 2,
      });
    }
    // Another database error (a constraint, say) is still a 500.
    expect(filter.reply(Object.assign(new Error('Unique constraint failed'), { code: 'P2002' })).status).toBe(500);
  });

  it('drops keys the response schema does not name, and refuses an answer that does not match', async () => {
    expect(await reply(await post('/widgets', JSON.stringify({ name: 'leak', size: 1 })))).toEqual({
      status: 201,
      body: { id: 'w1', name: 'leak' },
    });
    expect((await reply(await post('/widgets', JSON.stringify({ name: 'wrong', size: 1 })))).status).toBe(500);
  });

  it('answers no route as not_found, and 204 for a null response', async () => {
    expect(await reply(await fetch(url + '/nothing-here'))).toEqual({
      status: 404,
      body: { error: { code: 'not_found', message: expect.any(String) } },
    });
    expect(await reply(await post('/widgets/gone', '{}'))).toEqual({ status: 204, body: null });
  });

  it('keeps an HttpException body our code shaped with a code; maps other 5xx', async () => {
    expect(await reply(await fetch(url + '/widgets/status/health'))).toEqual({
      status: 503,
      body: { status: 'error', code: 'model_missing' },
    });
    expect(await reply(await fetch(url + '/widgets/status/down'))).toEqual({
      status: 503,
      body: { error: { code: 'unavailable', message: expect.any(String) } },
    });
  });

  it('ZodPipe works on a plain route', async () => {
    expect(await reply(await post('/widgets/raw?n=7', '{"a":1}'))).toEqual({
      status: 201,
      body: { body: { a: 1 }, n: 7 },
    });
    expect((await reply(await post('/widgets/raw?n=x', '{}'))).body.error.issues[0].path).toBe('query');
  });

  it('serves an OpenAPI 3.1 document of the ApiRoute routes', async () => {
    const res = await fetch(url + '/openapi.json');
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Json;
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(['/widgets', '/widgets/gone', '/widgets/{iin}']);
    const create = doc.paths['/widgets'].post;
    expect(create).toMatchObject({
      summary: 'Create a widget',
      tags: ['widgets'],
      security: [{ testKey: [] }],
      parameters: [
        { name: 'dryRun', in: 'query', required: false, schema: { type: 'string', enum: ['true', 'false'] } },
      ],
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['name', 'size'],
              properties: { name: { type: 'string', minLength: 1 } },
            },
          },
        },
      },
    });
    expect(Object.keys(create.responses).sort()).toEqual(['201', '400', '401', '409', '500']);
    expect(create.responses['409'].description).toContain('widget_conflict');
    expect(create.responses['201'].content['application/json'].schema).toMatchObject({
      type: 'object',
      properties: { id: { type: 'string' }, name: { type: 'string' } },
    });
    expect(create.responses['400'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/ErrorBody',
    });
    expect(doc.components.schemas.ErrorBody).toMatchObject({
      type: 'object',
      properties: { error: expect.any(Object) },
    });
    expect(doc.components.securitySchemes).toEqual({ testKey: { type: 'http', scheme: 'bearer' } });
    expect(doc.paths['/widgets/{iin}'].get.parameters).toEqual([
      expect.objectContaining({
        name: 'iin',
        in: 'path',
        required: true,
        schema: expect.objectContaining({ pattern: '^[0-9]{12}$' }),
      }),
    ]);
    expect(doc.paths['/widgets/gone'].post.responses['204']).toEqual({ description: 'Done; no body.' });
    expect(JSON.stringify(doc)).not.toContain('$schema');
    expect(doc.info.description).toContain('| `iin_invalid` | 400 |');
  });

  it('serves Swagger UI from the installed package', async () => {
    const page = await fetch(url + '/docs');
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const html = await page.text();
    expect(html).toContain('/docs/swagger-ui-bundle.js');
    expect(html).not.toMatch(/https?:\/\//); // no CDN
    const bundle = await fetch(url + '/docs/swagger-ui-bundle.js');
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get('content-type')).toMatch(/javascript/);
    expect((await bundle.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
    expect((await fetch(url + '/docs/swagger-ui.css')).status).toBe(200);
    expect(await (await fetch(url + '/docs/init.js')).text()).toContain("url: '/openapi.json'");
    expect((await fetch(url + '/docs/package.json')).status).toBe(404);
    expect((await fetch(url + '/docs/..%2Fpackage.json')).status).toBe(404);
  });
});
