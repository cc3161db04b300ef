import * as fs from 'node:fs';
import * as path from 'node:path';
import { Inject, Injectable, Optional, RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { z } from 'zod';
import { errorStatusTable, ErrorBodySchema, type ErrorClass } from './errors';
import { getRouteSpec, ROUTE_SECURITY, type JsonSchema, type RouteSecurity, type RouteSpec } from './route';

/** One documented route, as found on the controllers. */
export interface DocumentedRoute {
  /** Lower-case HTTP method. */
  method: string;
  /** Nest/Express path, e.g. /patients/:iin/template. */
  path: string;
  operationId: string;
  spec: RouteSpec;
  security?: RouteSecurity;
}

export interface OpenApiInfo {
  title: string;
  version: string;
  description?: string;
}

type Json = Record<string, unknown>;

const ERROR_REF = { $ref: '#/components/schemas/ErrorBody' };

/**
 * A zod schema as an OpenAPI 3.1 schema object (JSON Schema 2020-12). Named schemas (`.meta({id})`) land in
 * components.schemas, and their references are rewritten to point there.
 */
export function toSchema(schema: z.ZodType, io: 'input' | 'output', components: Json): JsonSchema {
  const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Json;
  delete json.$schema;
  const defs = json.$defs as Json | undefined;
  delete json.$defs;
  if (defs) for (const [id, def] of Object.entries(defs)) components[id] ??= rewriteRefs(def);
  return rewriteRefs(json) as JsonSchema;
}

function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (typeof value !== 'object' || value === null) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      k === '$ref' && typeof v === 'string' ? v.replace(/^#\/\$defs\//, '#/components/schemas/') : rewriteRefs(v);
  }
  return out;
}

/** Parameters of one location from an object schema: one entry per property. */
function parameters(schema: z.ZodType, where: 'path' | 'query', components: Json): Json[] {
  const json = toSchema(schema, 'input', components);
  const props = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(props).map(([name, prop]) => ({
    name,
    in: where,
    required: where === 'path' || required.has(name),
    ...(typeof prop.description === 'string' ? { description: prop.description } : {}),
    schema: prop,
  }));
}

/** Express's `:name` to OpenAPI's `{name}`. */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** The documented status of a code: the table's, 422 for every `frame_*` code, else 500 (answered as `internal`). */
function statusOf(table: Readonly<Record<string, number>>, code: string): number {
  return Object.hasOwn(table, code) ? table[code] : code.startsWith('frame_') ? 422 : 500;
}

function errorResponses(codes: Iterable<string>, table: Readonly<Record<string, number>>): Record<string, Json> {
  const byStatus = new Map<number, Set<string>>();
  for (const code of codes) {
    const status = statusOf(table, code);
    if (!byStatus.has(status)) byStatus.set(status, new Set());
    byStatus.get(status)!.add(code);
  }
  const out: Record<string, Json> = {};
  for (const [status, set] of [...byStatus.entries()].sort(([a], [b]) => a - b)) {
    out[String(status)] = {
      description: `Error: ${[...set].map((c) => `\`${c}\``).join(', ')}`,
      content: { 'application/json': { schema: ERROR_REF } },
    };
  }
  return out;
}

function operation(route: DocumentedRoute, components: Json, table: Readonly<Record<string, number>>): Json {
  const { spec } = route;
  const op: Json = { operationId: route.operationId, summary: spec.summary, tags: [...spec.tags] };
  if (spec.description) op.description = spec.description;
  const params = [
    ...(spec.params ? parameters(spec.params, 'path', components) : []),
    ...(spec.query ? parameters(spec.query, 'query', components) : []),
  ];
  if (params.length) op.parameters = params;
  if (spec.body) {
    op.requestBody = {
      required: true,
      content: { 'application/json': { schema: toSchema(spec.body, 'input', components) } },
    };
  } else if (spec.rawBody) {
    op.requestBody = { required: spec.rawBody.required ?? true, ...spec.rawBody };
  }
  const success = spec.status ?? (spec.response === null ? 204 : route.method === 'post' ? 201 : 200);
  const responses: Record<string, Json> = {
    [String(success)]:
      spec.response === null
        ? { description: 'Done; no body.' }
        : {
            description: 'Success.',
            content: { 'application/json': { schema: toSchema(spec.response, 'output', components) } },
          },
  };
  const codes = new Set<string>(spec.errors ?? []);
  if (spec.params || spec.query || spec.body || spec.rawBody) codes.add('invalid_request');
  for (const c of route.security?.errors ?? []) codes.add(c);
  codes.add('internal');
  Object.assign(responses, errorResponses(codes, table));
  op.responses = responses;
  if (route.security) op.security = [{ [route.security.name]: [] }];
  return op;
}

/**
 * The OpenAPI 3.1 document of these routes. `errors`: the error classes the routes throw, whose status tables (with
 * the shared codes of AppError) give each documented code its status and make the error table of the description.
 */
export function buildOpenApi(
  routes: readonly DocumentedRoute[],
  info: OpenApiInfo,
  errors: Iterable<ErrorClass> = [],
): Json {
  const statuses = errorStatusTable(errors);
  const schemas: Json = { ErrorBody: toSchema(ErrorBodySchema, 'output', {}) };
  const securitySchemes: Json = {};
  const paths: Record<string, Json> = {};
  const sorted = [...routes].filter((r) => !r.spec.hidden).sort((a, b) => a.path.localeCompare(b.path));
  for (const route of sorted) {
    const p = openApiPath(route.path);
    paths[p] ??= {};
    paths[p][route.method] = operation(route, schemas, statuses);
    if (route.security) securitySchemes[route.security.name] = route.security.scheme;
  }
  const table = Object.entries(statuses)
    .map(([code, status]) => `| \`${code}\` | ${status} |`)
    .join('\n');
  const description =
    (info.description ? info.description + '\n\n' : '') +
    'Errors answer `{"error": {"code", "message"}}` (validation errors add `issues`). Codes and statuses ' +
    '(every `frame_*` code is 422):\n\n| code | status |\n|---|---|\n' +
    table;
  return {
    openapi: '3.1.0',
    info: { title: info.title, version: info.version, description },
    paths,
    components: { schemas, ...(Object.keys(securitySchemes).length ? { securitySchemes } : {}) },
  };
}

const METHODS: Partial<Record<RequestMethod, string>> = {
  [RequestMethod.GET]: 'get',
  [RequestMethod.POST]: 'post',
  [RequestMethod.PUT]: 'put',
  [RequestMethod.DELETE]: 'delete',
  [RequestMethod.PATCH]: 'patch',
  [RequestMethod.OPTIONS]: 'options',
  [RequestMethod.HEAD]: 'head',
};

function joinPaths(prefix: unknown, sub: unknown): string[] {
  const list = (v: unknown) => (Array.isArray(v) ? (v as string[]) : [typeof v === 'string' ? v : '']);
  const out: string[] = [];
  for (const a of list(prefix)) {
    for (const b of list(sub)) {
      const joined = ['', a, b]
        .map((s) => s.replace(/^\/+|\/+$/g, ''))
        .filter(Boolean)
        .join('/');
      out.push('/' + joined);
    }
  }
  return out;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** DI token: the error classes of the API (HttpModule.forRoot's `errors`), for the OpenAPI document. */
export const API_ERROR_CLASSES = Symbol('ApiErrorClasses');

/** Collects the `@ApiRoute` routes of every controller and builds the document once (routes are fixed at start). */
@Injectable()
export class OpenApiService {
  private document: Json | undefined;
  private readonly errors: readonly ErrorClass[];

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    @Optional() @Inject(API_ERROR_CLASSES) errors?: readonly ErrorClass[],
  ) {
    this.errors = errors ?? [];
    // Checked at start: a code two classes give different statuses (or a malformed table) stops the start.
    errorStatusTable(this.errors);
  }

  routes(): DocumentedRoute[] {
    const routes: DocumentedRoute[] = [];
    for (const wrapper of this.discovery.getControllers()) {
      const type = wrapper.metatype as (new (...args: never[]) => unknown) | undefined;
      if (!type?.prototype) continue;
      const proto = type.prototype as Record<string, unknown>;
      const classSecurity = Reflect.getMetadata(ROUTE_SECURITY, type) as RouteSecurity | undefined;
      for (const name of this.scanner.getAllMethodNames(proto)) {
        const handler = proto[name] as object;
        const spec = getRouteSpec(handler);
        const method = METHODS[Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod];
        if (!spec || !method) continue;
        const security = (Reflect.getMetadata(ROUTE_SECURITY, handler) as RouteSecurity | undefined) ?? classSecurity;
        const paths = joinPaths(Reflect.getMetadata(PATH_METADATA, type), Reflect.getMetadata(PATH_METADATA, handler));
        for (const p of paths) {
          routes.push({
            method,
            path: p,
            operationId: `${type.name.replace(/Controller$/, '')}_${name}`,
            spec,
            ...(security ? { security } : {}),
          });
        }
      }
    }
    return routes;
  }

  get(): Json {
    this.document ??= buildOpenApi(
      this.routes(),
      {
        title: 'faceid-gateway',
        version: packageVersion(),
        description: 'Face identification gateway: workstation API, enrollment and identification sessions.',
      },
      this.errors,
    );
    return this.document;
  }
}
