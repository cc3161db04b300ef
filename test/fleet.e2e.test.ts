import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import WebSocket from 'ws';
import { loadConfig } from '../src/config';
import { openStorage, type Storage } from '../src/storage';
import { encodeFrameMessage } from '../src/transport/protocol';
import {
  api,
  freePort,
  running,
  sleep,
  startChild,
  startGateway,
  until,
  type Child,
  type Reply,
} from './support/children';
import { seedClinic, Subscriber, type Desk } from './support/fleet';
import { createTestDatabase, PG_ADMIN, type TestDatabase } from './support/databases';
// Transpiles src/ once into a disk cache, so the three gateways start without each transpiling the tree.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tsRegister = require('./support/ts-register.js') as {
  warm(files: string[]): void;
  sources(dir: string): string[];
};

// A fleet on one machine, as deploy/ describes it: three gateways (src/main.ts, child processes) on a fresh
// PostgreSQL database behind HAProxy with deploy/haproxy.cfg. Desks run face sessions through HAProxy with real
// WebSocket clients, an MIS subscribes to the events through HAProxy, and then:
//  - a refusal taken on one gateway closes the face WebSocket held by another (PostgreSQL NOTIFY);
//  - one gateway is killed (SIGKILL): every session it held ends `expired` with its MIS event (the sweep of the
//    others), desks that start again land on the other gateways, and the subscriber sees every event exactly once,
//    in seq order, without a gap;
//  - one gateway is stopped (SIGTERM): it drains (POST /sessions 503 `draining`, new WebSockets 1013, readiness 503)
//    while its running session finishes, then exits 0.
// Needs PostgreSQL (FACEID_TEST_PG_URL, trust auth) and haproxy (apt-get install haproxy; `scripts/dev.sh setup`
// installs it): skipped with the reason otherwise. The face models must be fetched (`npm run models`).

const ROOT = path.join(__dirname, '..');
const TEMPLATE_KEY = `fleet1:${randomBytes(32).toString('base64')}`;
const SESSION_TIMEOUT_MS = 6000;
const DESKS = 6;

function unavailable(): string | null {
  if (process.env.FACEID_TEST_PG === '0') return 'FACEID_TEST_PG=0';
  const haproxy = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  if (haproxy.error || haproxy.status !== 0) return 'haproxy is not installed (apt-get install haproxy)';
  const pg = spawnSync(
    process.execPath,
    [
      '-e',
      `const {Client}=require('pg');const c=new Client({connectionString:process.argv[1],connectionTimeoutMillis:3000});c.connect().then(()=>c.end()).then(()=>process.exit(0),()=>process.exit(1))`,
      PG_ADMIN,
    ],
    { cwd: ROOT, timeout: 10_000 },
  );
  if (pg.status !== 0) return `PostgreSQL does not answer at ${PG_ADMIN.replace(/\/\/[^@]*@/, '//')}`;
  return null;
}

const skipReason = unavailable();
if (skipReason) console.warn(`fleet.e2e: skipped, ${skipReason}`);

// ---- Helpers ----------------------------------------------------------------------------------------------------

/** An identification WebSocket client: records what it receives and how it closed. */
class FaceSocket {
  readonly messages: Array<{ type: string; code?: string }> = [];
  close: { code: number; reason: string; at: number } | null = null;
  readonly ws: WebSocket;

  constructor(url: string, protocols: string[], onReady?: (s: FaceSocket) => void) {
    this.ws = new WebSocket(url, protocols);
    this.ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { type: string; code?: string };
      this.messages.push(m);
      if (m.type === 'ready') onReady?.(this);
    });
    this.ws.on('close', (code, reason) => (this.close = { code, reason: String(reason), at: Date.now() }));
    this.ws.on('error', () => undefined); // a refused or dropped connection shows as its close
  }

  get ready(): boolean {
    return this.messages.some((m) => m.type === 'ready');
  }

  closed(timeoutMs = 30_000): Promise<{ code: number; reason: string; at: number }> {
    return until('the face socket to close', () => this.close, timeoutMs);
  }
}

interface SessionRecord {
  id: string;
  desk: number;
  startedAt: number;
  /** Whether the desk refuses the photo once the session is ready, and whether that request was answered 200. */
  refuse: boolean;
  refusal: 'ok' | 'failed' | null;
  socket: FaceSocket;
}

// ---- The fleet --------------------------------------------------------------------------------------------------

(skipReason ? describe.skip : describe)(
  `a fleet of three gateways behind HAProxy on PostgreSQL${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    let database: TestDatabase;
    let storage: Storage;
    let front: string;
    const ports: number[] = [];
    const gateways: Child[] = [];
    let haproxy: Child;
    let clinicId: string;
    let misKey: string;
    let desks: Desk[] = [];
    let frame: Buffer;
    let subscriber: Subscriber;
    const sessions: SessionRecord[] = [];
    const started = Date.now();
    /** Ends the desks' load whatever happens (a failed step must not leave it running). */
    let aborted = false;

    const gw = (i: number) => `http://127.0.0.1:${ports[i]}`;
    const log = (msg: string) => console.log(`[fleet +${((Date.now() - started) / 1000).toFixed(1)} s] ${msg}`);

    function gatewayEnv(i: number): Record<string, string> {
      const dataDir = path.join(database.dataDir, `gw${i + 1}`);
      fs.mkdirSync(dataDir, { recursive: true });
      return {
        ...database.env,
        FACEID_DATA_DIR: dataDir,
        PORT: String(ports[i]),
        HOST: '127.0.0.1',
        TEMPLATE_KEYS: TEMPLATE_KEY, // one key ring for the fleet
        FACEID_BOOTSTRAP: 'false',
        ENGINE_WORKERS: '1',
        ENGINE_THREADS_PER_JOB: '1',
        LOG_LEVEL: 'info',
        RATE_LIMIT_PER_MINUTE: '0',
        TRUSTED_PROXIES: 'loopback',
        SESSION_TIMEOUT_MS: String(SESSION_TIMEOUT_MS),
        // A face session still running 1 s past its timeout lost its gateway: the others' sweep ends it.
        SESSION_ORPHAN_GRACE_S: '1',
        DRAIN_TIMEOUT_S: '20',
        FACE_ATTEMPTS_MAX: '100',
        FACE_SESSIONS_MAX: '100', // the load here is small; the admission control is not under test
        // EVENTS_POLL_MS is left at its PostgreSQL default (30 s): delivery within the waits below needs NOTIFY.
      };
    }

    beforeAll(async () => {
      const t0 = Date.now();
      tsRegister.warm(tsRegister.sources(path.join(ROOT, 'src')));
      log(`transpiled src/ in ${Date.now() - t0} ms (cached for the gateways)`);
      database = await createTestDatabase('postgres', 'fleet');
      for (let i = 0; i < 4; i++) ports.push(await freePort());
      storage = await openStorage(loadConfig({ ...database.env, TEMPLATE_KEYS: TEMPLATE_KEY }));

      // The clinic, its desks (one patient each, with an enrolled template), its MIS.
      ({ clinicId, misKey, desks } = await seedClinic(storage, {
        name: 'Fleet clinic',
        desks: DESKS,
        templateKey: TEMPLATE_KEY,
        birthDate: '1981-07-14',
        serialBase: 500,
      }));
      // A frame with no face in it: the session answers guidance and waits for its timeout (a `timeout` verdict).
      frame = encodeFrameMessage(
        { seq: 1, format: 'jpeg', captureTime: Date.now() },
        await sharp({ create: { width: 160, height: 120, channels: 3, background: { r: 128, g: 128, b: 128 } } })
          .jpeg()
          .toBuffer(),
      );

      const t1 = Date.now();
      for (let i = 0; i < 3; i++) {
        gateways.push(startGateway(`gw${i + 1}`, gatewayEnv(i)));
      }
      for (let i = 0; i < 3; i++) {
        await until(
          `gateway ${i + 1} to be ready (${gateways[i].output.slice(-3).join(' | ')})`,
          async () =>
            running(gateways[i]) && (await api(gw(i), 'GET', '/health/ready').catch(() => null))?.status === 200,
          90_000,
        );
      }
      log(`three gateways ready in ${Date.now() - t1} ms`);
      haproxy = startChild('haproxy', 'haproxy', ['-db', '-f', 'deploy/haproxy.cfg'], {
        ...(process.env as Record<string, string>),
        FACEID_FLEET_BIND: `127.0.0.1:${ports[3]}`,
        FACEID_GW1: `127.0.0.1:${ports[0]}`,
        FACEID_GW2: `127.0.0.1:${ports[1]}`,
        FACEID_GW3: `127.0.0.1:${ports[2]}`,
        FACEID_CHECK_INTER: '500ms',
      });
      front = `http://127.0.0.1:${ports[3]}`;
      await until(
        `HAProxy to answer (${haproxy.output.slice(-3).join(' | ')})`,
        async () => (await api(front, 'GET', '/health/ready').catch(() => null))?.status === 200,
      );
      const ready = await api(front, 'GET', '/health/ready');
      expect(ready.body).toEqual({ status: 'ok', draining: false, database: 'ok', engine: 'ok', signals: 'listening' });
      subscriber = new Subscriber(front, misKey);
      await subscriber.start();
    }, 240_000);

    afterAll(async () => {
      aborted = true;
      subscriber?.stop();
      for (const s of sessions) s.socket.ws.terminate();
      if (haproxy && running(haproxy)) haproxy.proc.kill('SIGTERM');
      for (const g of gateways) if (running(g)) g.proc.kill('SIGKILL');
      await Promise.all([haproxy, ...gateways].filter(Boolean).map((c) => c.exited));
      await storage?.close();
      await database?.drop();
    }, 60_000);

    /** Dumps the children's last lines when a step fails. */
    const withLogs = async (step: () => Promise<void>) => {
      try {
        await step();
      } catch (err) {
        aborted = true;
        for (const c of [...gateways, haproxy].filter(Boolean)) {
          const lines = c.output.filter((l) => !/"context":"(RouterExplorer|RoutesResolver|InstanceLoader)"/.test(l));
          console.log(`--- ${c.name}\n${lines.slice(-25).join('\n')}`);
        }
        throw err;
      }
    };

    it(
      'closes a face WebSocket held by one gateway when the session is refused or ended on another (NOTIFY)',
      () =>
        withLogs(async () => {
          const desk = desks[0];
          // A second subscriber, straight on the third gateway: the refusal's event, committed on the first, reaches it.
          const arrivals = new Map<string, number>();
          const direct = new WebSocket(`ws://127.0.0.1:${ports[2]}/ws/events`, ['faceid.events.v1', `key.${misKey}`]);
          direct.on('message', (d) => {
            const m = JSON.parse(String(d));
            if (m.type === 'event' && m.event.sessionId)
              arrivals.set(m.event.sessionId, Date.now() - Date.parse(m.event.occurredAt));
          });
          await new Promise((r) => direct.once('message', r));
          const delays: number[] = [];
          const closeDelays: number[] = [];
          for (let round = 0; round < 3; round++) {
            const created = await api(gw(0), 'POST', '/sessions', desk.key, {
              iin: desk.iin,
              appointmentId: `notify-${round}`,
              channel: 'in_person',
            });
            expect(created.status).toBe(201);
            // The socket on the second gateway, the refusal on the first.
            const socket = new FaceSocket(`ws://127.0.0.1:${ports[1]}/ws/identify`, created.body.protocols);
            await until('ready', () => socket.ready);
            const refused = await api(gw(0), 'POST', `/sessions/${created.body.sessionId}/refusal`, desk.key, {
              reason: 'patient_refused_photo',
            });
            expect(refused.status).toBe(200);
            const answeredAt = Date.now();
            const close = await socket.closed(15_000);
            // Closed because of the refusal, at once: without the notification the runner would run to its timeout and
            // close with `session_finished` instead.
            expect(close).toMatchObject({ code: 4010, reason: 'refused' });
            expect(socket.messages).toContainEqual(expect.objectContaining({ type: 'error', code: 'session_refused' }));
            closeDelays.push(close.at - answeredAt);
            delays.push(await until('the refusal at the third gateway', () => arrivals.get(created.body.sessionId)));
          }
          direct.close();

          // Ended elsewhere: what another gateway's sweep writes for a session it takes for an orphan. The socket here
          // closes at once with `session_finished`, and is not expired a second time.
          const created = await api(gw(0), 'POST', '/sessions', desk.key, {
            iin: desk.iin,
            appointmentId: 'notify-ended',
            channel: 'in_person',
          });
          expect(created.status).toBe(201);
          const socket = new FaceSocket(`ws://127.0.0.1:${ports[2]}/ws/identify`, created.body.protocols);
          await until('ready', () => socket.ready);
          const expired = await storage.repos.verdicts.finish({
            clinicId,
            sessionId: created.body.sessionId,
            result: 'expired',
            method: 'none',
            score: null,
            liveness: null,
            timings: null,
          });
          expect(expired).not.toBeNull();
          expect(await socket.closed(15_000)).toMatchObject({ code: 4010, reason: 'session_finished' });
          expect(socket.messages).toContainEqual(expect.objectContaining({ type: 'error', code: 'session_finished' }));
          expect(await storage.repos.verdicts.forSession(clinicId, created.body.sessionId)).toMatchObject({
            result: 'expired',
            method: 'none',
          });

          log(
            `refusal on gw1 -> face socket on gw2 closed ${closeDelays.map((d) => `${d} ms`).join(', ')} after the answer`,
          );
          log(
            `event committed on gw1 -> subscriber on gw3: ${delays.map((d) => `${d} ms`).join(', ')} (from occurredAt)`,
          );
        }),
      180_000,
    );

    it(
      'ends every session of a killed gateway `expired`, moves the desks to the others, and loses no event',
      () =>
        withLogs(async () => {
          let stop = false;
          const failures: string[] = [];
          const refusals: Array<Promise<unknown>> = [];
          const deskLoop = async (d: number) => {
            const desk = desks[d];
            for (let n = 0; !stop && !aborted; n++) {
              let created: Reply;
              try {
                created = await api(front, 'POST', '/sessions', desk.key, {
                  iin: desk.iin,
                  appointmentId: `load-${d}-${n}`,
                  channel: 'in_person',
                });
              } catch (err) {
                failures.push(`desk ${d}: POST /sessions ${(err as Error).message}`);
                await sleep(200);
                continue;
              }
              if (created.status !== 201) {
                failures.push(`desk ${d}: POST /sessions ${created.status} ${JSON.stringify(created.body)}`);
                await sleep(200);
                continue;
              }
              // The WebSocket through HAProxy too (wsUrl names the address the request came to).
              expect(created.body.wsUrl).toBe(`ws://127.0.0.1:${ports[3]}/ws/identify`);
              const record: SessionRecord = {
                id: created.body.sessionId,
                desk: d,
                startedAt: Date.now(),
                refuse: n % 3 === 1,
                refusal: null,
                socket: undefined!,
              };
              record.socket = new FaceSocket(created.body.wsUrl, created.body.protocols, (s) => {
                s.ws.send(
                  JSON.stringify({ type: 'hello', client: 'fleet-test', capabilities: ['blink', 'light', 'turn'] }),
                );
                s.ws.send(frame);
                if (!record.refuse) return;
                // Through HAProxy: the desk's requests go to the gateway its key hashes to, the socket to any of them.
                const refusal = api(front, 'POST', `/sessions/${record.id}/refusal`, desk.key, {
                  reason: 'patient_refused_photo',
                }).then(
                  (r) => {
                    record.refusal = r.status === 200 ? 'ok' : 'failed';
                    if (r.status !== 200) failures.push(`desk ${d}: refusal ${r.status} ${JSON.stringify(r.body)}`);
                  },
                  (err: Error) => {
                    record.refusal = 'failed';
                    failures.push(`desk ${d}: refusal ${err.message}`);
                  },
                );
                refusals.push(refusal);
              });
              sessions.push(record);
              await record.socket.closed(SESSION_TIMEOUT_MS + 30_000);
            }
          };
          const loops = Array.from({ length: DESKS }, (_, d) => deskLoop(d));

          // Load runs; the second gateway holds sessions now (its own count of open face connections).
          const victim = gateways[1];
          const openOn = async (i: number) => {
            const m = await api(gw(i), 'GET', '/metrics');
            return Number(/^faceid_sessions_open (\d+)/m.exec(String(m.body))?.[1] ?? 0);
          };
          // Sessions the desks refuse close within ms of opening: sample the count when none is open, so the second
          // gateway's sessions are ones that run to their verdict (then `expired`, once it is dead).
          const refusing = () => sessions.some((s) => s.refuse && !s.socket.close);
          let open = 0;
          await until(
            'sessions on the second gateway',
            async () => sessions.length >= 2 * DESKS && !refusing() && (open = await openOn(1)) >= 1 && !refusing(),
            60_000,
          );
          victim.proc.kill('SIGKILL');
          expect((await victim.exited).signal).toBe('SIGKILL');
          const killedAt = victim.exitedAt!; // gone: nothing started from now on can reach it
          log(`killed gw2 holding ${open} face session(s); ${sessions.length} sessions started so far`);

          // Its sessions: their sockets dropped (1006) when the process died.
          const before = sessions.filter((s) => s.startedAt < killedAt);
          await until(
            () =>
              `the sessions open at the kill to close: ${JSON.stringify(before.filter((s) => !s.socket.close).map((s) => ({ id: s.id, messages: s.socket.messages })))}`,
            () => before.every((s) => s.socket.close),
            SESSION_TIMEOUT_MS + 20_000,
          );
          const orphans = before.filter((s) => s.socket.close!.code === 1006);
          expect(orphans.length).toBeGreaterThanOrEqual(1);

          // The desks start again and land on the other gateways: each completes a session begun after the kill.
          const completedAfterKill = (d: number) =>
            sessions.some((s) => s.desk === d && s.startedAt > killedAt && s.socket.ready && s.socket.close);
          await until(
            () =>
              `every desk to complete a session after the kill; still waiting: ${desks
                .map((_, d) => d)
                .filter((d) => !completedAfterKill(d))
                .map(
                  (d) =>
                    `desk ${d} (${JSON.stringify(sessions.filter((s) => s.desk === d && s.startedAt > killedAt).map((s) => ({ ready: s.socket.ready, close: s.socket.close, messages: s.socket.messages.map((m) => m.code ?? m.type) })))})`,
                )
                .join(', ')}; failures: ${failures.join('; ')}`,
            () => desks.every((_, d) => completedAfterKill(d)),
            60_000,
          );
          // The sweep of the surviving gateways ends each orphan `expired`, with its event, SESSION_TIMEOUT_MS + 1 s
          // after it began at the latest (plus a sweep interval). (One whose token the dead gateway never got to use
          // ends the same way once its desk's next session supersedes the token.) The exception: a session refused on
          // a surviving gateway just as its socket's gateway died goes on by code, as refused sessions do.
          const expired: SessionRecord[] = [];
          const expiredAfter: number[] = [];
          for (const o of orphans) {
            let last: unknown;
            const s = await until(
              () =>
                `orphan ${o.id} to end (${JSON.stringify({ refuse: o.refuse, refusal: o.refusal, ready: o.socket.ready, last })})`,
              async () => {
                const got = await storage.repos.sessions.get(clinicId, o.id);
                last = got && { state: got.state, tokenUsedAt: got.tokenUsedAt, tokenExpiresAt: got.tokenExpiresAt };
                return (got?.state === 'expired' || (o.refuse && got?.state === 'code_pending')) && got;
              },
              60_000,
            );
            if (s.state === 'code_pending') continue;
            expired.push(o);
            expect(s.finishedAt!.getTime()).toBeGreaterThan(killedAt);
            expiredAfter.push(s.finishedAt!.getTime() - killedAt);
            expect(await storage.repos.verdicts.forSession(clinicId, o.id)).toMatchObject({
              result: 'expired',
              method: 'none',
            });
          }
          expect(expired.length).toBeGreaterThanOrEqual(1);
          log(
            `${orphans.length} session(s) dropped with gw2: ${expired.length} expired by the other gateways' sweep ` +
              `${expiredAfter.map((ms) => `${ms} ms`).join(', ')} after the kill, ${orphans.length - expired.length} refused just before`,
          );

          stop = true;
          await Promise.all(loops);
          await Promise.all(refusals);
          const after = sessions.filter((s) => s.startedAt > killedAt);
          log(
            `load: ${sessions.length} sessions (${after.length} after the kill); HTTP failures: ${failures.length ? failures.join('; ') : 'none'}`,
          );
          // Nothing reached the dead gateway after the kill: HAProxy retried refused connections on the others.
          for (const s of after) expect(s.socket.close!.code).not.toBe(1006);
          // Every session ended as its desk meant: refused ones on the code path (closed `refused`, wherever the socket
          // was), the others with their verdict (the timeout: the frame shows no face).
          const refusedClose = { code: 4010, reason: 'refused' };
          const verdictClose = { code: 1000, reason: 'verdict' };
          for (const s of sessions.filter((x) => !orphans.includes(x) && x.socket.ready)) {
            const close = { code: s.socket.close!.code, reason: s.socket.close!.reason };
            if (s.refusal === 'ok') expect({ id: s.id, close }).toEqual({ id: s.id, close: refusedClose });
            else if (s.refusal === null) expect({ id: s.id, close }).toEqual({ id: s.id, close: verdictClose });
            // A refusal whose answer was lost with the killed gateway may or may not have been taken before it died.
            else expect([refusedClose, verdictClose]).toContainEqual(close);
          }

          // The MIS saw every event of the clinic after its starting point exactly once, in seq order, with no gap,
          // across its reconnections (it reconnects through HAProxy, after any drop).
          const latest = await storage.repos.events.latestSeq(clinicId);
          await until(`the subscriber to reach seq ${latest}`, () => subscriber.events.at(-1)?.seq === latest, 30_000);
          const stored = (await storage.repos.events.after(clinicId, 0, 100_000)).map((e) => e.payload);
          const from = stored.findIndex((e) => e.id === subscriber.initialCursor);
          expect(from).toBeGreaterThanOrEqual(0);
          expect(subscriber.events.map((e) => e.id)).toEqual(stored.slice(from + 1).map((e) => e.id));
          const seqs = subscriber.events.map((e) => e.seq);
          expect(seqs).toEqual(seqs.map((_, i) => seqs[0] + i));
          for (const o of expired) {
            expect(subscriber.events).toContainEqual(
              expect.objectContaining({ type: 'identification.expired', sessionId: o.id }),
            );
          }
          for (const s of sessions.filter((x) => x.refusal === 'ok')) {
            expect(subscriber.events).toContainEqual(
              expect.objectContaining({ type: 'identification.refused', sessionId: s.id }),
            );
          }
          log(
            `subscriber: ${subscriber.events.length} events, seq ${seqs[0]}-${seqs.at(-1)}, ${subscriber.connections} connection(s)`,
          );
        }),
      180_000,
    );

    it(
      'drains a gateway on SIGTERM: no new sessions, the running one finishes, exit 0',
      () =>
        withLogs(async () => {
          const desk = desks[1];
          const draining = gateways[0];
          const other = 2; // the third gateway (the second was killed)
          const created = await api(gw(0), 'POST', '/sessions', desk.key, {
            iin: desk.iin,
            appointmentId: 'drain-running',
            channel: 'in_person',
          });
          expect(created.status).toBe(201);
          const runningSession = new FaceSocket(
            `ws://127.0.0.1:${ports[0]}/ws/identify`,
            created.body.protocols,
            (s) => {
              s.ws.send(JSON.stringify({ type: 'hello', capabilities: ['blink', 'light', 'turn'] }));
              s.ws.send(frame);
            },
          );
          await until('the running session to be ready', () => runningSession.ready);
          // A token issued before the stop, for a connection made after it.
          const pending = await api(gw(other), 'POST', '/sessions', desks[2].key, {
            iin: desks[2].iin,
            appointmentId: 'drain-later',
            channel: 'in_person',
          });
          expect(pending.status).toBe(201);

          draining.proc.kill('SIGTERM');
          const signalledAt = Date.now();
          const ready = await until('readiness to answer draining', async () => {
            const r = await api(gw(0), 'GET', '/health/ready');
            return r.status === 503 && r;
          });
          expect(ready.body).toMatchObject({ status: 'error', code: 'draining', draining: true, database: 'ok' });
          expect((await api(gw(0), 'GET', '/health')).status).toBe(200); // liveness is unchanged

          const refused = await api(gw(0), 'POST', '/sessions', desk.key, {
            iin: desk.iin,
            appointmentId: 'drain-new',
            channel: 'in_person',
          });
          expect(refused.status).toBe(503);
          expect(refused.body.error.code).toBe('draining');
          expect(refused.headers.get('retry-after')).toBe('2');

          // A new WebSocket is refused with 1013 before its token is looked at: the token still works elsewhere.
          const late = new FaceSocket(`ws://127.0.0.1:${ports[0]}/ws/identify`, pending.body.protocols);
          expect(await late.closed(15_000)).toMatchObject({ code: 1013, reason: 'draining' });
          const elsewhere = new FaceSocket(`ws://127.0.0.1:${ports[other]}/ws/identify`, pending.body.protocols);
          await until('the same token to open a session on another gateway', () => elsewhere.ready);
          elsewhere.ws.send(JSON.stringify({ type: 'cancel' }));
          await elsewhere.closed();

          // Through HAProxy, new sessions go on (to the third gateway).
          const viaFront = await api(front, 'POST', '/sessions', desks[3].key, {
            iin: desks[3].iin,
            appointmentId: 'drain-front',
            channel: 'in_person',
          });
          expect(viaFront.status).toBe(201);

          // The session running on the draining gateway ends with its own verdict, not cut off; then the process exits 0.
          expect(await runningSession.closed(SESSION_TIMEOUT_MS + 15_000)).toMatchObject({
            code: 1000,
            reason: 'verdict',
          });
          expect(await draining.exited).toEqual({ code: 0, signal: null });
          const drainMs = draining.exitedAt! - signalledAt;
          log(
            `drain: SIGTERM -> exit 0 in ${drainMs} ms (its running session had up to ${SESSION_TIMEOUT_MS} ms to go)`,
          );
          expect(drainMs).toBeLessThan(20_000 + 10_000); // DRAIN_TIMEOUT_S plus the close
          expect(draining.output.join('\n')).toMatch(/Drained in \d+ ms: every session finished/);
        }),
      180_000,
    );
  },
);
