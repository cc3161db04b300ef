import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createEnrollmentKey, createWorkstation } from '../../src/auth';
import { loadConfig } from '../../src/config';
import { openStorage } from '../../src/storage/open';
import { benchIins, enroll } from './api';
import type { BenchFrames } from './frames';
import { sleep } from './proc';
import { BenchServer, type ServerSample } from './server-handle';
import { histogramLatency, mergeHistograms, parsePrometheus, promSum, repeated } from './stats';
import type { FleetPoint, FleetResult, FleetSuite } from './types';
import type { LoadGenProcess, WsRep } from './ws-phase';

/**
 * The fleet phase: the overload phase's face load (desks one session after another, admission control on with the
 * default FACE_SESSIONS_MAX, Retry-After honoured, a patient blinking reactionMs after the prompt) against one gateway
 * directly and against three gateways behind HAProxy, all on one fresh PostgreSQL database (created and dropped
 * here). Each desk has a workstation key of its own, as in a clinic: HAProxy balances HTTP on the Authorization
 * header, so one key for every desk would send every POST /sessions to one gateway. The three gateways run on this
 * machine's cores: the phase shows what the fleet costs and how it balances, not more throughput.
 */

const PG_ADMIN =
  process.env.FACEID_BENCH_PG_URL ?? process.env.FACEID_TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const HAPROXY_CFG = path.join(__dirname, '..', '..', 'deploy', 'haproxy.cfg');

type Progress = (line: string) => void;

/** Why the phase cannot run here (no haproxy, no PostgreSQL), or null. */
export async function fleetUnavailable(): Promise<string | null> {
  const ha = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  if (ha.error || ha.status !== 0) return 'haproxy is not installed (apt-get install haproxy)';
  const { Client } = await import('pg');
  const c = new Client({ connectionString: PG_ADMIN, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return null;
  } catch (err) {
    return `PostgreSQL is not reachable at ${new URL(PG_ADMIN).host} (${(err as { code?: string }).code ?? (err as Error).message}; FACEID_BENCH_PG_URL)`;
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** /metrics of several gateways as one text: each sample labelled gw="i", so that promSum adds them up. */
function labelled(text: string, i: number): string {
  return text
    .split('\n')
    .map((line) => {
      if (line === '' || line.startsWith('#')) return line;
      const m = /^([a-zA-Z_:][\w:]*)(\{)?/.exec(line);
      if (!m) return line;
      return m[2] ? `${m[1]}{gw="${i}",${line.slice(m[0].length)}` : `${m[1]}{gw="${i}"}${line.slice(m[1].length)}`;
    })
    .join('\n');
}

/** The fleet behind HAProxy, as the load generator sees a gateway: its figures are the three gateways' together. */
function frontOf(base: string, gateways: BenchServer[]): BenchServer {
  const front = {
    base,
    apiKey: gateways[0].apiKey,
    enrollKey: gateways[0].enrollKey,
    transport: 'ws',
    pid: undefined,
    reset: async () => void (await Promise.all(gateways.map((g) => g.reset()))),
    metricsText: async (timeoutMs = 60_000) =>
      (await Promise.all(gateways.map((g) => g.metricsText(timeoutMs)))).map((t, i) => labelled(t, i + 1)).join('\n'),
    sample: async (gc = false): Promise<ServerSample> => {
      const s = await Promise.all(gateways.map((g) => g.sample(gc)));
      const add = (f: (x: ServerSample) => number) => s.reduce((a, x) => a + f(x), 0);
      const most = (f: (x: ServerSample) => number) => Math.max(...s.map(f));
      return {
        elapsedSeconds: most((x) => x.elapsedSeconds),
        eld: {
          p50: most((x) => x.eld.p50),
          p99: most((x) => x.eld.p99),
          max: most((x) => x.eld.max),
          mean: most((x) => x.eld.mean),
        },
        cpuPercent: add((x) => x.cpuPercent),
        cpuMs: add((x) => x.cpuMs),
        rssMiB: add((x) => x.rssMiB),
        rssPeakMiB: add((x) => x.rssPeakMiB),
        heapUsedMiB: add((x) => x.heapUsedMiB),
        externalMiB: add((x) => x.externalMiB),
        connections: add((x) => x.connections),
      };
    },
  };
  return front as unknown as BenchServer;
}

async function waitReady(base: string, proc: ChildProcess, output: string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`haproxy exited: ${output.slice(-3).join(' | ')}`);
    const ok = await fetch(`${base}/health/ready`, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`HAProxy did not answer within 30 s: ${output.slice(-3).join(' | ')}`);
    await sleep(200);
  }
}

/** Verdicts the gateway(s) reached per gateway over the window: how HAProxy spread the sessions. */
function spread(before: string[], after: string[]): number[] {
  return after.map((a, i) => {
    const v = (t: string) => promSum(parsePrometheus(t), 'faceid_verdicts_total', { method: 'face' });
    return v(a) - v(before[i]);
  });
}

export async function runFleet(
  suite: FleetSuite,
  frames: BenchFrames,
  gen: LoadGenProcess,
  progress: Progress,
): Promise<FleetResult> {
  const cores = os.availableParallelism();
  const skipped = await fleetUnavailable();
  if (skipped) return { cores, capacity: NaN, points: [], skipped };

  const name = `faceid_bench_${randomBytes(4).toString('hex')}`;
  const { Client } = await import('pg');
  const admin = new Client({ connectionString: PG_ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const databaseUrl = PG_ADMIN.replace(/\/[^/]*$/, `/${name}`);
  const templateKeys = `bench1:${randomBytes(32).toString('base64')}`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-bench-fleet-'));
  const gateways: BenchServer[] = [];
  let haproxy: ChildProcess | null = null;
  try {
    // The schema, a clinic, a workstation key per desk and the registry's key, before any gateway starts.
    const desks = Math.max(...suite.desks);
    const storage = await openStorage(
      loadConfig({ DATABASE_URL: databaseUrl, TEMPLATE_KEYS: templateKeys, FACEID_DATA_DIR: tmp }),
    );
    let apiKeys: string[];
    let enrollKey: string;
    try {
      const clinic = await storage.repos.clinics.create('Bench fleet clinic');
      apiKeys = [];
      for (let d = 0; d < desks; d++)
        apiKeys.push((await createWorkstation(storage.repos.workstations, clinic.id, `Bench desk ${d + 1}`)).apiKey);
      enrollKey = (await createEnrollmentKey(storage.repos.enrollmentKeys, clinic.id, 'Bench registry')).apiKey;
    } finally {
      await storage.close();
    }

    // Admission on with the default FACE_SESSIONS_MAX (not set), the blink only, as the overload phase's `on` gateway.
    const env = {
      DATABASE_URL: databaseUrl,
      TEMPLATE_KEYS: templateKeys,
      BENCH_BLINK_ONLY: '1',
      TRUSTED_PROXIES: 'loopback',
    };
    progress(`fleet: starting three gateways on PostgreSQL (database ${name}) ...`);
    gateways.push(...(await Promise.all([0, 1, 2].map(() => BenchServer.start({ transport: 'ws', env })))));
    const capacity = promSum(parsePrometheus(await gateways[0].metricsText()), 'faceid_face_sessions_max');
    const patients = benchIins(desks, 3000);
    for (const iin of patients) await enroll(gateways[0].base, enrollKey, iin, frames.reference);

    const frontPort = await freePort();
    const cfg = path.join(tmp, 'haproxy.cfg');
    fs.copyFileSync(HAPROXY_CFG, cfg);
    const output: string[] = [];
    haproxy = spawn('haproxy', ['-db', '-f', cfg], {
      env: {
        ...process.env,
        FACEID_FLEET_BIND: `127.0.0.1:${frontPort}`,
        ...Object.fromEntries(gateways.map((g, i) => [`FACEID_GW${i + 1}`, new URL(g.base).host])),
        FACEID_CHECK_INTER: '500ms',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (d: Buffer) => output.push(...d.toString().split('\n').filter(Boolean).slice(-20));
    haproxy.stdout!.on('data', collect);
    haproxy.stderr!.on('data', collect);
    const frontBase = `http://127.0.0.1:${frontPort}`;
    await waitReady(frontBase, haproxy, output);
    const front = frontOf(frontBase, gateways);
    progress(
      `fleet: HAProxy on :${frontPort} -> three gateways; FACE_SESSIONS_MAX ${capacity} each; ${desks} desks, a key each`,
    );

    const reps = new Map<string, { target: 'one' | 'fleet'; desks: number; reps: WsRep[]; spread: number[][] }>();
    for (let rep = 1; rep <= suite.reps; rep++) {
      for (const d of suite.desks) {
        for (const target of ['one', 'fleet'] as const) {
          const server = target === 'one' ? gateways[0] : front;
          const before = await Promise.all(gateways.map((g) => g.metricsText()));
          const w = await gen.rep(
            server,
            frames,
            patients,
            { transport: 'ws', connections: d, fps: suite.fps },
            {
              warmupSeconds: suite.warmupSeconds,
              measureSeconds: suite.measureSeconds,
              probeIntervalMs: 0,
              reactionMs: suite.reactionMs,
              blinkMs: suite.blinkMs,
              apiKeys,
            },
          );
          const after = await Promise.all(gateways.map((g) => g.metricsText()));
          const key = `${target}/${d}`;
          if (!reps.has(key)) reps.set(key, { target, desks: d, reps: [], spread: [] });
          reps.get(key)!.reps.push(w);
          reps.get(key)!.spread.push(spread(before, after));
          progress(
            `  fleet ${target === 'one' ? 'one gateway' : 'three gateways + HAProxy'}, ${d} desks: ` +
              `match ${((w.window.verdicts.match ?? 0) / w.window.seconds).toFixed(2)}/s, ` +
              `time to verdict p50 ${(histogramLatency(mergeHistograms([w.window.timeToVerdict])).p50 / 1000).toFixed(2)} s, ` +
              `503 ${w.window.admissionRetries}, gateways CPU ${w.server.cpuPercent.toFixed(0)}%, other processes ${w.otherCpuPercent.toFixed(0)}%`,
          );
        }
      }
    }
    const points: FleetPoint[] = [...reps.values()].map((p) => ({
      target: p.target,
      desks: p.desks,
      goodputPerS: repeated(
        p.reps.map((r) => (r.window.verdicts.match ?? 0) / r.window.seconds),
        2,
      ),
      verdictsPerS: repeated(
        p.reps.map((r) => Object.values(r.window.verdicts).reduce((a, b) => a + b, 0) / r.window.seconds),
        2,
      ),
      timeToVerdict: histogramLatency(mergeHistograms(p.reps.map((r) => r.window.timeToVerdict))),
      refused: p.reps.reduce((a, r) => a + r.window.admissionRetries, 0),
      busy: p.reps.reduce((a, r) => a + r.window.busy, 0),
      unfinished: p.reps.reduce((a, r) => a + r.window.unfinished, 0),
      verdictsPerGateway: p.spread[0].map((_, i) => p.spread.reduce((a, s) => a + s[i], 0)),
      gatewayCpuPercent: repeated(
        p.reps.map((r) => r.server.cpuPercent),
        0,
      ),
      otherCpuPercent: repeated(
        p.reps.map((r) => r.otherCpuPercent),
        0,
      ),
    }));
    return { cores, capacity, points };
  } finally {
    if (haproxy && haproxy.exitCode === null) {
      const exited = new Promise((resolve) => haproxy!.once('exit', resolve));
      haproxy.kill('SIGTERM');
      await exited;
    }
    await Promise.all(gateways.map((g) => g.stop()));
    fs.rmSync(tmp, { recursive: true, force: true });
    const c = new Client({ connectionString: PG_ADMIN });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  }
}
