import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';

// Child processes for the multi-process e2e tests (test/fleet.e2e.test.ts, test/pg-restart.e2e.test.ts): gateways
// started as `node -r test/support/ts-register.js src/main.ts`, polling waits, free ports, a small HTTP client.

const ROOT = path.join(__dirname, '..', '..');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(
  what: string | (() => string),
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await sleep(50);
  }
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Child {
  name: string;
  proc: ChildProcess;
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitedAt: number | null;
}

export function startChild(name: string, command: string, args: string[], env: Record<string, string>): Child {
  const proc = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const child: Child = { name, proc, output: [], exited: undefined!, exitedAt: null };
  const collect = (d: Buffer) => {
    child.output.push(...d.toString().split('\n').filter(Boolean));
    if (child.output.length > 2000) child.output.splice(0, child.output.length - 2000);
  };
  proc.stdout!.on('data', collect);
  proc.stderr!.on('data', collect);
  child.exited = new Promise((resolve) =>
    proc.once('exit', (code, signal) => {
      child.exitedAt = Date.now();
      resolve({ code, signal });
    }),
  );
  return child;
}

export const running = (c: Child) => c.proc.exitCode === null && c.proc.signalCode === null;

export interface Reply {
  status: number;
  headers: Headers;
  body: any; // checked field by field
}

export async function api(base: string, method: string, p: string, key?: string, body?: unknown): Promise<Reply> {
  const res = await fetch(base + p, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON (a metrics page)
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** A gateway (src/main.ts) as a child process; src/ transpiled through the disk cache of ts-register.js. */
export function startGateway(name: string, env: Record<string, string>): Child {
  return startChild(name, process.execPath, ['-r', './test/support/ts-register.js', 'src/main.ts'], env);
}
