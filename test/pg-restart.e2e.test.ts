import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../src/config';
import { openStorage, type Storage } from '../src/storage';
import { api, freePort, running, sleep, startGateway, until, type Child, type Reply } from './support/children';
import { seedClinic, Subscriber, type Desk } from './support/fleet';
import { createTestDatabase, type TestDatabase } from './support/databases';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tsRegister = require('./support/ts-register.js') as {
  warm(files: string[]): void;
  sources(dir: string): string[];
};

// Issue #12: PostgreSQL restarted under load. The test owns a private PostgreSQL instance (initdb into a temporary
// folder, run as the `postgres` OS user, trust auth, 127.0.0.1 on a free port): the machine's shared server is never
// touched. Two gateways (child processes) run on it, an MIS subscribes to the events of the first, and desks run
// code-path sessions in a loop on both (remote by code, in person by code, a face session refused then the code; no
// engine work). Mid-load the instance is stopped (`pg_ctl stop -m fast`) and, once the outage is seen, started again:
//  - both gateways stay alive; /health/ready answers 503 `database_unreachable` while it is down, 200 after;
//  - the desks' requests meanwhile fail with a typed 5xx body, and new verdicts succeed on both gateways after;
//  - every verdict or refusal answered 2xx has exactly one event; the subscriber (resuming with its cursor after any
//    drop) sees every committed event exactly once, in seq order, with no gap;
//  - an event committed on the second gateway after the restart reaches the subscriber on the first by LISTEN/NOTIFY
//    (the listener reconnected): EVENTS_POLL_MS is 60 s, longer than the wait.
// Skipped with the reason when PostgreSQL's server binaries (/usr/lib/postgresql/<version>/bin) or the `postgres`
// OS user are missing, or when FACEID_TEST_PG=0. Needs the face models like every gateway start (`npm run models`).

const ROOT = path.join(__dirname, '..');
const TEMPLATE_KEY = `pgr1:${randomBytes(32).toString('base64')}`;
const DESKS = 4;

interface PgBinaries {
  bin: string;
  /** Runs a command as the `postgres` OS user (postgres refuses root). */
  argv(cmd: string, args: string[]): [string, string[]];
  uid: number;
  gid: number;
}

function findPostgres(): PgBinaries | string {
  if (process.env.FACEID_TEST_PG === '0') return 'FACEID_TEST_PG=0';
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base)
    ? fs
        .readdirSync(base)
        .filter(
          (v) =>
            fs.existsSync(path.join(base, v, 'bin', 'initdb')) && fs.existsSync(path.join(base, v, 'bin', 'pg_ctl')),
        )
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0)
    return `PostgreSQL server binaries not found (${base}/<version>/bin/initdb; apt-get install postgresql)`;
  const bin = path.join(base, versions[0], 'bin');
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const uid = id('-u');
  const gid = id('-g');
  if (uid.status !== 0 || gid.status !== 0) return 'there is no `postgres` OS user to run a private PostgreSQL as';
  const me = process.getuid?.();
  const pgUid = Number(uid.stdout.trim());
  if (me !== 0 && me !== pgUid) return 'a private PostgreSQL needs root (runuser -u postgres) or the postgres user';
  return {
    bin,
    uid: pgUid,
    gid: Number(gid.stdout.trim()),
    argv: (cmd, args) =>
      me === 0 ? ['runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args]] : [path.join(bin, cmd), args],
  };
}

const found = findPostgres();
const skipReason = typeof found === 'string' ? found : null;
if (skipReason) console.warn(`pg-restart.e2e: skipped, ${skipReason}`);

/** Runs pg_ctl/initdb as postgres without blocking the event loop (the load goes on meanwhile). */
function asPostgres(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number | null; output: string }> {
  const pg = found as PgBinaries;
  const [command, argv] = pg.argv(cmd, args);
  return new Promise((resolve) => {
    // stdin/stdout closed for the server that pg_ctl leaves running (its output goes to the log file).
    const proc = spawn(command, argv, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout!.on('data', (d) => (output += d));
    proc.stderr!.on('data', (d) => (output += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

type Kind = 'remote' | 'in_person_code' | 'refused_then_code';

interface Attempt {
  desk: number;
  gateway: number;
  kind: Kind;
  startedAt: number;
  sessionId: string | null;
  /** Answered 2xx: the refusal (in person), the verdict (POST /code). */
  refusedOk: boolean;
  verdictOk: boolean;
  verdictAt: number | null;
  /** When POST /code was sent (the verdict's commit lies between this and verdictAt). */
  verdictSentAt: number | null;
  /** The failed step, if any: its status (0: no answer) and error code. */
  failure: { step: string; status: number; code: string | null; at: number } | null;
}

(skipReason ? describe.skip : describe)(
  `PostgreSQL restarted under load${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    let pgDir: string;
    let pgPort: number;
    let pgStarted = false;
    let database: TestDatabase;
    let storage: Storage;
    const ports: number[] = [];
    const gateways: Child[] = [];
    let clinicId: string;
    let misKey: string;
    let desks: Desk[] = [];
    let subscriber: Subscriber;
    const started = Date.now();

    const gw = (i: number) => `http://127.0.0.1:${ports[i]}`;
    const log = (msg: string) => console.log(`[pg-restart +${((Date.now() - started) / 1000).toFixed(1)} s] ${msg}`);
    const dataDir = () => path.join(pgDir, 'data');
    const pgLog = () => {
      try {
        return fs.readFileSync(path.join(pgDir, 'server.log'), 'utf8').split('\n').slice(-15).join('\n');
      } catch {
        return '';
      }
    };
    const pgCtl = (action: 'start' | 'stop') =>
      asPostgres('pg_ctl', [
        '-D',
        dataDir(),
        '-l',
        path.join(pgDir, 'server.log'),
        '-w',
        '-t',
        '60',
        ...(action === 'start' ? ['-o', `-p ${pgPort} -c listen_addresses=127.0.0.1 -k ${pgDir}`] : ['-m', 'fast']),
        action,
      ]);

    beforeAll(async () => {
      const t0 = Date.now();
      const pg = found as PgBinaries;
      pgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-pgr-'));
      fs.chownSync(pgDir, pg.uid, pg.gid);
      pgPort = await freePort();
      const init = await asPostgres('initdb', [
        '-D',
        dataDir(),
        '-A',
        'trust',
        '-U',
        'postgres',
        '-E',
        'UTF8',
        '--no-sync',
      ]);
      if (init.code !== 0) throw new Error(`initdb failed: ${init.output}`);
      const start = await pgCtl('start');
      if (start.code !== 0) throw new Error(`pg_ctl start failed: ${start.output}\n${pgLog()}`);
      pgStarted = true;
      log(
        `private PostgreSQL (${path.basename(path.dirname(pg.bin))}) on 127.0.0.1:${pgPort} in ${Date.now() - t0} ms`,
      );

      tsRegister.warm(tsRegister.sources(path.join(ROOT, 'src')));
      // The project's helper and its migrations (openStorage applies them), on the private server.
      database = await createTestDatabase('postgres', 'pgr', `postgresql://postgres@127.0.0.1:${pgPort}/postgres`);
      storage = await openStorage(loadConfig({ ...database.env, TEMPLATE_KEYS: TEMPLATE_KEY }));
      ({ clinicId, misKey, desks } = await seedClinic(storage, {
        name: 'Restart clinic',
        desks: DESKS,
        templateKey: TEMPLATE_KEY,
        birthDate: '1984-02-21',
        serialBase: 600,
      }));

      for (let i = 0; i < 2; i++) ports.push(await freePort());
      const t1 = Date.now();
      for (let i = 0; i < 2; i++) {
        const dir = path.join(database.dataDir, `gw${i + 1}`);
        fs.mkdirSync(dir, { recursive: true });
        gateways.push(
          startGateway(`gw${i + 1}`, {
            ...database.env,
            FACEID_DATA_DIR: dir,
            PORT: String(ports[i]),
            HOST: '127.0.0.1',
            TEMPLATE_KEYS: TEMPLATE_KEY,
            FACEID_BOOTSTRAP: 'false',
            ENGINE_WORKERS: '1',
            ENGINE_THREADS_PER_JOB: '1',
            LOG_LEVEL: 'info',
            RATE_LIMIT_PER_MINUTE: '0',
            SMS_ADAPTER: 'dev',
            FACE_SESSIONS_MAX: '0',
            // The safety poll at its longest: an event reaching the subscriber within the waits below came by NOTIFY.
            EVENTS_POLL_MS: '60000',
          }),
        );
      }
      for (let i = 0; i < 2; i++) {
        await until(
          () => `gateway ${i + 1} to be ready (${gateways[i].output.slice(-3).join(' | ')})`,
          async () =>
            running(gateways[i]) && (await api(gw(i), 'GET', '/health/ready').catch(() => null))?.status === 200,
          90_000,
        );
      }
      log(`two gateways ready in ${Date.now() - t1} ms`);
      subscriber = new Subscriber(gw(0), misKey);
      await subscriber.start();
    }, 180_000);

    afterAll(async () => {
      subscriber?.stop();
      for (const g of gateways) if (running(g)) g.proc.kill('SIGKILL');
      await Promise.all(gateways.map((c) => c.exited));
      await storage?.close().catch(() => undefined);
      if (pgStarted) await asPostgres('pg_ctl', ['-D', dataDir(), '-m', 'immediate', '-w', 'stop']);
      if (database) fs.rmSync(database.dataDir, { recursive: true, force: true });
      if (pgDir) fs.rmSync(pgDir, { recursive: true, force: true });
    }, 60_000);

    it('keeps both gateways alive through the restart, fails requests with a typed 5xx meanwhile, and loses no event', async () => {
      const attempts: Attempt[] = [];
      let stop = false;
      const kinds: Kind[] = ['remote', 'in_person_code', 'refused_then_code'];

      /** One step of a desk: its reply when 2xx; otherwise the attempt records the failure. */
      const step = async (
        a: Attempt,
        name: string,
        method: string,
        p: string,
        key: string,
        body?: unknown,
      ): Promise<Reply | null> => {
        let r: Reply;
        try {
          r = await api(gw(a.gateway), method, p, key, body);
        } catch (err) {
          a.failure = { step: name, status: 0, code: (err as Error).message, at: Date.now() };
          return null;
        }
        if (r.status >= 200 && r.status < 300) return r;
        a.failure = {
          step: name,
          status: r.status,
          code: typeof r.body?.error?.code === 'string' ? r.body.error.code : null,
          at: Date.now(),
        };
        return null;
      };

      const deskLoop = async (d: number) => {
        const desk = desks[d];
        for (let n = 0; !stop; n++) {
          const a: Attempt = {
            desk: d,
            gateway: d % 2,
            kind: kinds[n % kinds.length],
            startedAt: Date.now(),
            sessionId: null,
            refusedOk: false,
            verdictOk: false,
            verdictAt: null,
            verdictSentAt: null,
            failure: null,
          };
          attempts.push(a);
          const appointmentId = `pgr-${d}-${n}`;
          const body =
            a.kind === 'remote'
              ? { iin: desk.iin, appointmentId, channel: 'remote' }
              : a.kind === 'in_person_code'
                ? { iin: desk.iin, appointmentId, channel: 'in_person', method: 'code', reason: 'camera_unavailable' }
                : { iin: desk.iin, appointmentId, channel: 'in_person' };
          const created = await step(a, 'create', 'POST', '/sessions', desk.key, body);
          if (created) {
            a.sessionId = created.body.sessionId;
            let ok = true;
            if (a.kind === 'refused_then_code') {
              ok = !!(await step(a, 'refusal', 'POST', `/sessions/${a.sessionId}/refusal`, desk.key, {
                reason: 'patient_refused_photo',
              }));
              a.refusedOk = ok;
            } else if (a.kind === 'in_person_code') {
              a.refusedOk = true; // in person by code: the reason is recorded as a refusal with the session
            }
            const outbox = ok ? await step(a, 'outbox', 'GET', '/dev/outbox', desk.key) : null;
            if (outbox) {
              const sms = (outbox.body.messages as Array<{ sessionId: string | null; text: string }>).filter(
                (m) => m.sessionId === a.sessionId,
              );
              expect(sms).toHaveLength(1);
              const code = /\b(\d{6})\b/.exec(sms[0].text)![1];
              a.verdictSentAt = Date.now();
              const verdict = await step(a, 'code', 'POST', `/sessions/${a.sessionId}/code`, desk.key, { code });
              if (verdict) {
                expect(verdict.body.verdict).toMatchObject({ result: 'match', method: 'code' });
                a.verdictOk = true;
                a.verdictAt = Date.now();
              }
            }
          }
          if (a.failure) await sleep(100); // the database may be down: do not spin
        }
      };
      const loops = Array.from({ length: DESKS }, (_, d) => deskLoop(d));
      const ok = (g: number, after = 0) =>
        attempts.filter((a) => a.gateway === g && a.verdictOk && a.startedAt > after).length;

      try {
        await until('verdicts on both gateways before the restart', () => ok(0) >= 3 && ok(1) >= 3, 30_000);
        for (const g of gateways) expect(running(g)).toBe(true);

        // The outage: stopped (fast: open connections are cut), kept down until both gateways have shown it, started.
        const readiness: Array<Array<{ at: number; status: number; body: any }>> = [[], []];
        let watching = true;
        const watch = async (i: number) => {
          while (watching) {
            const r = await api(gw(i), 'GET', '/health/ready').catch(() => null);
            if (r) readiness[i].push({ at: Date.now(), status: r.status, body: r.body });
            await sleep(50);
          }
        };
        const watchers = [watch(0), watch(1)];
        const stopAt = Date.now();
        const stopped = await pgCtl('stop');
        expect(stopped).toMatchObject({ code: 0 });
        const downAt = Date.now();
        log(
          `pg_ctl stop -m fast: ${downAt - stopAt} ms; ${attempts.filter((a) => a.verdictOk).length} verdicts so far`,
        );
        const notReady = (i: number) => readiness[i].find((r) => r.at > downAt && r.status === 503);
        const failedDuring = (g: number) => attempts.find((a) => a.gateway === g && a.failure && a.failure.at > downAt);
        await until(
          'both gateways to answer 503 on /health/ready and to fail a desk request while the database is down',
          () => notReady(0) && notReady(1) && failedDuring(0) && failedDuring(1),
          30_000,
        );
        for (const i of [0, 1]) {
          expect(notReady(i)!.body).toMatchObject({
            status: 'error',
            code: 'database_unreachable',
            database: 'unreachable',
          });
        }
        const startAt = Date.now();
        const startedAgain = await pgCtl('start');
        if (startedAgain.code !== 0) throw new Error(`pg_ctl start failed: ${startedAgain.output}\n${pgLog()}`);
        const upAt = Date.now();
        log(
          `database down ${upAt - stopAt} ms from pg_ctl stop to pg_ctl start returning (stop ${downAt - stopAt} ms, start ${upAt - startAt} ms)`,
        );

        // Ready again, with the listener back (signals: listening).
        const readyAgain: number[] = [];
        for (const i of [0, 1]) {
          const r = await until(
            () => `gateway ${i + 1} to be ready again (${JSON.stringify(readiness[i].at(-1))})`,
            () => readiness[i].find((x) => x.at > upAt && x.status === 200 && x.body.signals === 'listening'),
            30_000,
          );
          readyAgain.push(r.at - upAt);
        }
        watching = false;
        await Promise.all(watchers);
        const listeningAt = upAt + Math.max(...readyAgain);
        log(
          `ready again (database and listener) ${readyAgain.map((ms) => `${ms} ms`).join(', ')} after pg_ctl start returned`,
        );

        // New verdicts on both gateways after the restart.
        await until('verdicts on both gateways after the restart', () => ok(0, upAt) >= 3 && ok(1, upAt) >= 3, 30_000);

        // An event committed on the second gateway once the first one's listener is back, after the subscriber's
        // last (re)connection (so not replayed from its cursor): it came by NOTIFY, within a wait shorter than the poll.
        const subscribedAt = () => Math.max(...subscriber.readyAt);
        const probe = await until(
          'a verdict on the second gateway after the first one listens again',
          () =>
            attempts.find(
              (a) => a.gateway === 1 && a.verdictOk && a.verdictAt! > Math.max(listeningAt, subscribedAt()) + 100,
            ),
          30_000,
        );
        const arrived = await until(
          `the verdict of ${probe.sessionId} (gateway 2) at the subscriber on gateway 1`,
          () =>
            subscriber.events.find(
              (e) => e.type === 'identification.verdict' && 'sessionId' in e && e.sessionId === probe.sessionId,
            ),
          20_000,
        );
        log(
          `first event after the restart (gateway 2 -> subscriber on gateway 1 by NOTIFY): ${arrived.receivedAt - probe.verdictSentAt!} ms ` +
            `after its POST /code was sent; first event at the subscriber ${subscriber.events.find((e) => e.receivedAt > upAt)!.receivedAt - upAt} ms after pg_ctl start returned`,
        );

        stop = true;
        await Promise.all(loops);

        // Both gateways lived through it.
        for (const g of gateways) expect(running(g)).toBe(true);

        // Requests during the outage failed with 503 database_unavailable (Retry-After): never a dropped connection,
        // never a 500 that reads like a bug.
        const failures = attempts.filter((a) => a.failure);
        expect(failures.length).toBeGreaterThan(0);
        for (const a of failures)
          expect(a.failure).toEqual(expect.objectContaining({ status: 503, code: 'database_unavailable' }));
        const codes = new Map<string, number>();
        for (const a of failures)
          codes.set(
            `${a.failure!.status} ${a.failure!.code}`,
            (codes.get(`${a.failure!.status} ${a.failure!.code}`) ?? 0) + 1,
          );
        log(`failures during the outage: ${[...codes].map(([k, v]) => `${v}x ${k}`).join(', ')}`);

        // Every committed event exactly once, in seq order, without a gap, across the subscriber's reconnections.
        const latest = await storage.repos.events.latestSeq(clinicId);
        await until(
          () => `the subscriber to reach seq ${latest} (at ${subscriber.events.at(-1)?.seq})`,
          () => subscriber.events.at(-1)?.seq === latest,
          30_000,
        );
        const stored = (await storage.repos.events.after(clinicId, 0, 100_000)).map((e) => e.payload);
        const from = subscriber.initialCursor ? stored.findIndex((e) => e.id === subscriber.initialCursor) : -1;
        if (subscriber.initialCursor) expect(from).toBeGreaterThanOrEqual(0);
        expect(subscriber.events.map((e) => e.id)).toEqual(stored.slice(from + 1).map((e) => e.id));
        const seqs = subscriber.events.map((e) => e.seq);
        expect(seqs).toEqual(seqs.map((_, i) => seqs[0] + i));

        // Each verdict answered 2xx: exactly one verdict event; each refusal answered 2xx: exactly one refused event.
        const count = (type: string, sessionId: string) =>
          stored.filter((e) => e.type === type && 'sessionId' in e && e.sessionId === sessionId).length;
        const verdicts = attempts.filter((a) => a.verdictOk);
        for (const a of verdicts)
          expect({ id: a.sessionId, n: count('identification.verdict', a.sessionId!) }).toEqual({
            id: a.sessionId,
            n: 1,
          });
        for (const a of attempts.filter((x) => x.refusedOk)) {
          expect({ id: a.sessionId, n: count('identification.refused', a.sessionId!) }).toEqual({
            id: a.sessionId,
            n: 1,
          });
        }
        log(
          `load: ${attempts.length} sessions, ${verdicts.length} verdicts (${ok(0, upAt)} + ${ok(1, upAt)} after the restart), ` +
            `${failures.length} failed; subscriber: ${subscriber.events.length} events, ${subscriber.readyAt.length} connection(s), closes ${JSON.stringify(subscriber.closes)}`,
        );
      } catch (err) {
        stop = true;
        for (const c of gateways) {
          const lines = c.output.filter((l) => !/"context":"(RouterExplorer|RoutesResolver|InstanceLoader)"/.test(l));
          console.log(`--- ${c.name}\n${lines.slice(-25).join('\n')}`);
        }
        console.log(`--- postgres\n${pgLog()}`);
        throw err;
      } finally {
        stop = true;
        await Promise.all(loops);
      }
    }, 150_000);
  },
);
