import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Transport } from './types';
import { forkScript, request, sibling, type Child } from './proc';

/** IPC between the benchmark and bench/server.ts. */
export interface ServerReady {
  type: 'ready';
  base: string;
  apiKey: string;
  /** An enrollment key of the bench clinic: references are enrolled as the registry does (at once). */
  enrollKey: string;
  transport: { kind: string; port: number | null } | null;
}

export type ServerRequest =
  | { type: 'reset'; id: number }
  | { type: 'sample'; id: number; gc: boolean }
  | { type: 'stop' };

export interface ServerSample {
  elapsedSeconds: number;
  /** Event-loop delay since the last reset, ms. */
  eld: { p50: number; p99: number; max: number; mean: number };
  cpuPercent: number;
  /** The process's CPU time (user + system, every thread: the engine's workers too) since the last reset, ms. */
  cpuMs: number;
  rssMiB: number;
  rssPeakMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
  /** Open WebSocket connections. */
  connections: number;
}

export interface ServerOptions {
  transport: Transport;
  /** Extra environment (config keys) for this server. */
  env?: Record<string, string>;
}

/** Settings every benchmark server gets: local only, quiet, its own fresh data folder, no limits on the load. */
function baseEnv(dataDir: string, transport: Transport): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL; // always the embedded SQLite in a fresh folder: comparable from run to run
  return {
    ...env,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'warn',
    FACEID_DATA_DIR: dataDir,
    FACEID_BOOTSTRAP: 'false',
    RATE_LIMIT_PER_MINUTE: '0',
    // Overloaded sessions fail (spoof_suspected, timeout); without this the load would lock its patients out.
    FACE_ATTEMPTS_MAX: '100',
    FACE_ATTEMPTS_WINDOW_MIN: '1',
    WS_TRANSPORT: transport,
    WS_PORT_UWS: '0', // any free port; the sessions' wsUrl names the bound one
  };
}

/** The gateway running in a child process, with handles to sample its figures. */
export class BenchServer {
  private nextId = 1;

  private constructor(
    private readonly child: Child,
    private readonly dataDir: string,
    readonly base: string,
    readonly apiKey: string,
    readonly enrollKey: string,
    readonly transport: Transport,
  ) {}

  get pid(): number | undefined {
    return this.child.proc.pid;
  }

  static async start(options: ServerOptions): Promise<BenchServer> {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-bench-'));
    const env = { ...baseEnv(dataDir, options.transport), ...options.env };
    const child = forkScript(sibling(path.join(__dirname, '..'), 'server'), {
      env,
      nodeArgs: ['--expose-gc'],
      quiet: true,
    });
    try {
      const ready = await request(
        child.proc,
        undefined,
        (m): m is ServerReady | { type: 'failed'; message: string } =>
          typeof m === 'object' && m !== null && ['ready', 'failed'].includes((m as { type: string }).type),
        90_000,
      );
      if (ready.type === 'failed') throw new Error(ready.message);
      if (options.transport === 'uws' && ready.transport?.kind !== 'uws')
        throw new Error('The server did not start uWS.');
      return new BenchServer(child, dataDir, ready.base, ready.apiKey, ready.enrollKey, options.transport);
    } catch (err) {
      child.proc.kill();
      fs.rmSync(dataDir, { recursive: true, force: true });
      const tail = child.tail();
      throw new Error(`The benchmark server did not start: ${(err as Error).message}${tail ? `\n${tail}` : ''}`);
    }
  }

  /** Restarts the event-loop, CPU and peak-RSS accounting. */
  async reset(): Promise<void> {
    const id = this.nextId++;
    await request(
      this.child.proc,
      { type: 'reset', id },
      (m): m is { type: 'reset-done' } => isReply(m, 'reset-done', id),
      60_000,
    );
  }

  /** Figures since the last reset; `gc` collects garbage first (for memory levels). */
  async sample(gc = false): Promise<ServerSample> {
    const id = this.nextId++;
    const reply = await request(
      this.child.proc,
      { type: 'sample', id, gc },
      (m): m is { type: 'sample'; sample: ServerSample } => isReply(m, 'sample', id),
      60_000,
    );
    return reply.sample;
  }

  /** GET /metrics; throws when the gateway does not answer within `timeoutMs`, so that no phase hangs. */
  async metricsText(timeoutMs = 60_000): Promise<string> {
    try {
      const res = await fetch(`${this.base}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
      return await res.text();
    } catch (err) {
      throw new Error(
        `The gateway did not answer GET /metrics within ${timeoutMs / 1000} s: ${(err as Error).message}`,
      );
    }
  }

  async stop(): Promise<void> {
    const proc = this.child.proc;
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.send({ type: 'stop' });
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

function isReply(m: unknown, type: string, id: number): boolean {
  return (
    typeof m === 'object' && m !== null && (m as { type?: string }).type === type && (m as { id?: number }).id === id
  );
}
