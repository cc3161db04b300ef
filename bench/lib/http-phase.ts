import autocannon from 'autocannon';
import { cpuSnapshot, otherCpuPercent } from './machine';
import type { BenchServer } from './server-handle';
import { repeated } from './stats';
import type { HttpResult } from './types';

/** HTTP endpoints under autocannon (it speaks HTTP only; the WebSocket load has its own generator). */

export interface HttpTarget {
  name: string;
  method: 'GET' | 'POST';
  /** The route as documented (`:iin`, `:id`), for the tables. */
  route: string;
  /** The path requested. */
  path: string;
  connections: number;
  body?: Buffer | string;
  contentType?: string;
  /** Which key the request carries: the desk's (true), the registry's enrollment key ('enroll'), or none. */
  auth: boolean | 'enroll';
  /** Set when the endpoint cannot be measured in this build. */
  skipped?: string;
}

export interface HttpRep {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  statuses: Record<string, number>;
  errors: number;
  serverCpuPercent: number;
  otherCpuPercent: number;
}

export interface HttpTargetsInput {
  server: BenchServer;
  /** An enrolled patient of the bench clinic (session creation refuses one without a template: 409 no_template). */
  iin: string;
  enrollIin: string;
  reference: Buffer;
  connections: { health: number; sessions: number; enroll: number; code: number };
}

export async function httpTargets(input: HttpTargetsInput): Promise<HttpTarget[]> {
  const { server, iin, enrollIin, reference, connections } = input;
  const sessionBody = JSON.stringify({ iin, appointmentId: 'bench-http', channel: 'in_person' });
  const targets: HttpTarget[] = [
    { name: 'health', method: 'GET', route: '/health', path: '/health', connections: connections.health, auth: false },
    {
      name: 'session creation',
      method: 'POST',
      route: '/sessions',
      path: '/sessions',
      connections: connections.sessions,
      body: sessionBody,
      contentType: 'application/json',
      auth: true,
    },
    {
      name: 'enrollment (640x480 JPEG)',
      method: 'POST',
      route: '/patients/:iin/template',
      path: `/patients/${enrollIin}/template`,
      connections: connections.enroll,
      body: reference,
      contentType: 'image/jpeg',
      auth: 'enroll',
    },
  ];
  targets.push(await codeCheckTarget(server, iin, connections.code));
  return targets;
}

/**
 * POST /sessions/:id/code with a wrong code, on a remote appointment (straight to the code path): what a brute-force
 * flood costs. The first CODE_ATTEMPTS_MAX - 1 answers are 422 `code_invalid`; then the session is locked out and
 * the rest are refused (429 / 409) before any hash is compared. The statuses are printed with the figures.
 */
async function codeCheckTarget(server: BenchServer, iin: string, connections: number): Promise<HttpTarget> {
  const target: HttpTarget = {
    name: 'code check (a flood of wrong codes)',
    method: 'POST',
    route: '/sessions/:id/code',
    path: '/sessions/:id/code',
    connections,
    body: JSON.stringify({ code: '000000' }),
    contentType: 'application/json',
    auth: true,
  };
  const res = await fetch(`${server.base}/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ iin, appointmentId: 'bench-remote', channel: 'remote' }),
  });
  const body = (await res.json().catch(() => null)) as { sessionId?: string; error?: { code?: string } } | null;
  if (res.status !== 201 || !body?.sessionId) {
    return {
      ...target,
      skipped: `could not open a remote session to probe it (${body?.error?.code ?? `http_${res.status}`})`,
    };
  }
  return { ...target, path: `/sessions/${body.sessionId}/code` };
}

export async function runHttpRep(server: BenchServer, target: HttpTarget, seconds: number): Promise<HttpRep> {
  const headers: Record<string, string> = {};
  if (target.auth) headers.authorization = `Bearer ${target.auth === 'enroll' ? server.enrollKey : server.apiKey}`;
  if (target.contentType) headers['content-type'] = target.contentType;
  await server.reset();
  const before = cpuSnapshot();
  const r = await autocannon({
    url: server.base + target.path,
    method: target.method,
    headers,
    body: target.body,
    connections: target.connections,
    duration: seconds,
    timeout: 30,
  });
  const sample = await server.sample();
  const other = otherCpuPercent(before, cpuSnapshot(), [sample.cpuPercent]);
  const statuses: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statuses[code] = s.count;
  return {
    rps: r.requests.total / r.duration,
    p50: r.latency.p50,
    p90: r.latency.p90,
    p99: r.latency.p99,
    statuses,
    errors: r.errors,
    serverCpuPercent: sample.cpuPercent,
    otherCpuPercent: other,
  };
}

export function aggregateHttp(target: HttpTarget, reps: HttpRep[]): HttpResult {
  const base = { name: target.name, method: target.method, path: target.route, connections: target.connections };
  if (target.skipped) return { ...base, skipped: target.skipped };
  const statuses: Record<string, number> = {};
  for (const r of reps) for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  return {
    ...base,
    rps: repeated(
      reps.map((r) => r.rps),
      1,
    ),
    p50: repeated(
      reps.map((r) => r.p50),
      2,
    ),
    p90: repeated(
      reps.map((r) => r.p90),
      2,
    ),
    p99: repeated(
      reps.map((r) => r.p99),
      2,
    ),
    statuses,
    errors: reps.reduce((a, r) => a + r.errors, 0),
    serverCpuPercent: repeated(
      reps.map((r) => r.serverCpuPercent),
      0,
    ),
    otherCpuPercent: repeated(
      reps.map((r) => r.otherCpuPercent),
      0,
    ),
  };
}
