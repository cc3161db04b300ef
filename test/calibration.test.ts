import { randomBytes } from 'node:crypto';
import type { NestExpressApplication } from '@nestjs/platform-express';
import Database from 'better-sqlite3';
import { Client as PgClient } from 'pg';
import { createMisClient, createWorkstation } from '../src/auth';
import { faceVerdictBins, outcomeBins, type FaceVerdictFacts } from '../src/calibration/bins';
import { METRICS, type NumericMetricSpec } from '../src/calibration/bins';
import { EngineService } from '../src/engine';
import {
  CALIBRATION,
  CLINICS,
  MIS_CLIENTS,
  SESSIONS,
  VERDICTS,
  WORKSTATIONS,
  type CalibrationCount,
  type CalibrationRepository,
  type ClinicRepository,
  type MisClientRepository,
  type SessionRepository,
  type VerdictRepository,
  type WorkstationRepository,
} from '../src/storage/ports';
import { listenOnTestDatabase } from './support/app';
import { runCli } from './support/cli';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';
import { missingFixturesReason, VGA, webcamJpeg } from './support/frames';
import { makeIin } from './support/iin';
import { faceFrames, runPatient } from './support/patient';
import { openFaceSession, type OpenedSession } from './support/sessions';

// Field calibration on the real app and both databases: the bins a verdict adds are counted in its transaction
// (and only then), concurrent verdicts add up, GET /calibration answers the clinic's counts to its MIS key only, and
// `faceid calibrate` reads them. The privacy test: after verdicts with distinct scores, the stored rows and the
// endpoint hold counts of fixed bins only, never an IIN, an id of a patient or session, or a verdict's score.

type Json = any; // answers are checked field by field

const today = () => new Date().toISOString().slice(0, 10);
const fixturesMissing = missingFixturesReason();

/** A face verdict's facts as the runner hands them to finish (a live face seen in good light). */
const faceFacts = (
  result: FaceVerdictFacts['result'],
  score: number | null,
): FaceVerdictFacts & { quality: NonNullable<FaceVerdictFacts['quality']> } => ({
  result,
  score,
  liveness: { passive: null, blink: true, light: true, turn: null },
  reason: null,
  quality: { fullFrames: 2, faceSize: 35.2, brightness: 121.6, sharpness: 133.9, frames: { ok: 24, no_face: 3 } },
});

/** Every value of a JSON document, recursively (keys included). */
function leaves(x: unknown, out: unknown[] = []): unknown[] {
  if (Array.isArray(x)) for (const v of x) leaves(v, out);
  else if (x !== null && typeof x === 'object') {
    for (const [k, v] of Object.entries(x)) {
      out.push(k);
      leaves(v, out);
    }
  } else out.push(x);
  return out;
}

for (const kind of TEST_DATABASES) {
  describe(`field calibration (${kind})`, () => {
    let db: TestDatabase;
    let app: NestExpressApplication;
    let base: string;
    const clinic = { a: '', b: '' };
    const desk = { a1: { key: '', id: '' }, a2: { key: '', id: '' }, b1: { key: '', id: '' } };
    const mis = { a: '', b: '' };
    let serial = 300;
    /** Everything that identifies a patient or a session in this test: none of it may reach a calibration row. */
    const identities = new Set<string>();

    const call = async (url: string, key?: string): Promise<{ status: number; body: Json }> => {
      const res = await fetch(base + url, { headers: key === undefined ? {} : { authorization: `Bearer ${key}` } });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    const totals = (clinicId: string, fromDay = today(), toDay = today()) =>
      app.get<CalibrationRepository>(CALIBRATION).totals(clinicId, { fromDay, toDay });
    const asMap = (rows: CalibrationCount[], workstationId: string) =>
      Object.fromEntries(
        rows.filter((r) => r.workstationId === workstationId).map((r) => [`${r.metric}=${r.bin}`, r.count]),
      );

    const openSession = async (key: string): Promise<OpenedSession> => {
      const iin = makeIin('1981-06-09', serial++ * 3);
      const appointmentId = `apt-${randomBytes(4).toString('hex')}`;
      const s = await openFaceSession(app, key, { iin, appointmentId });
      for (const v of [iin, appointmentId, s.sessionId, s.patientId]) identities.add(v);
      return s;
    };
    /** A face verdict stored as the gateway stores one: its bins in the same call. */
    const finishFace = async (s: OpenedSession, facts: FaceVerdictFacts) =>
      app.get<VerdictRepository>(VERDICTS).finish(
        {
          clinicId: s.clinicId,
          sessionId: s.sessionId,
          result: facts.result,
          method: 'face',
          score: facts.score,
          liveness: facts.liveness,
          timings: null,
        },
        { calibration: faceVerdictBins(facts) },
      );

    beforeAll(async () => {
      db = await createTestDatabase(kind, 'calibration');
      ({ app, base } = await listenOnTestDatabase(db));
      const clinics = app.get<ClinicRepository>(CLINICS);
      const stations = app.get<WorkstationRepository>(WORKSTATIONS);
      clinic.a = (await clinics.create('Clinic A')).id;
      clinic.b = (await clinics.create('Clinic B')).id;
      for (const [name, c] of [
        ['a1', clinic.a],
        ['a2', clinic.a],
        ['b1', clinic.b],
      ] as const) {
        const w = await createWorkstation(stations, c, `Desk ${name}`);
        desk[name] = { key: w.apiKey, id: w.workstation.id };
      }
      mis.a = (await createMisClient(app.get<MisClientRepository>(MIS_CLIENTS), clinic.a, 'MIS A')).apiKey;
      mis.b = (await createMisClient(app.get<MisClientRepository>(MIS_CLIENTS), clinic.b, 'MIS B')).apiKey;
    });

    afterAll(async () => {
      await app?.close();
      await db?.drop();
    });

    describe("counting in the verdict's transaction", () => {
      it("adds a verdict's bins to its session's workstation and day, and nothing for a verdict refused", async () => {
        const match = await openSession(desk.a1.key);
        expect(await finishFace(match, faceFacts('match', 0.7312))).not.toBeNull();
        const miss = await openSession(desk.a1.key);
        expect(await finishFace(miss, faceFacts('no_match', 0.4123))).not.toBeNull();
        // A second verdict for a finished session is refused: nothing more is counted.
        expect(await finishFace(match, faceFacts('match', 0.9))).toBeNull();
        // A code verdict on the other desk: its outcome only.
        const byCode = await openSession(desk.a2.key);
        const pending = await app.get<SessionRepository>(SESSIONS).beginCodePath({
          clinicId: clinic.a,
          sessionId: byCode.sessionId,
          codeHash: randomBytes(32).toString('hex'),
          codeExpiresAt: new Date(Date.now() + 60_000),
        });
        expect(pending).not.toBeNull();
        expect(
          await app.get<VerdictRepository>(VERDICTS).finish(
            {
              clinicId: clinic.a,
              sessionId: byCode.sessionId,
              result: 'match',
              method: 'code',
              score: null,
              liveness: null,
              timings: null,
            },
            { calibration: outcomeBins('code', 'match') },
          ),
        ).not.toBeNull();

        const rows = await totals(clinic.a);
        expect(asMap(rows, desk.a1.id)).toEqual({
          'outcome=face:match': 1,
          'outcome=face:no_match': 1,
          'score.match=0.73': 1,
          'score.no_match=0.41': 1,
          'failure=no_match': 1,
          'liveness.blink=pass': 2,
          'liveness.light=pass': 2,
          'quality.face_size=32': 2,
          'quality.brightness=112': 2,
          'quality.sharpness=120': 2,
          'frames=ok': 48,
          'frames=no_face': 6,
        });
        expect(asMap(rows, desk.a2.id)).toEqual({ 'outcome=code:match': 1 });
        // Per UTC day: nothing yesterday; the other clinic has nothing.
        expect(await totals(clinic.a, '2000-01-01', '2000-01-02')).toEqual([]);
        expect(await totals(clinic.b)).toEqual([]);
      });

      it('a verdict whose counts cannot be written is not stored either (one transaction)', async () => {
        const sql = async (statement: string) => {
          if (kind === 'sqlite') {
            const file = new Database(db.location);
            try {
              file.exec(statement);
            } finally {
              file.close();
            }
          } else {
            const pg = new PgClient({ connectionString: db.location });
            await pg.connect();
            try {
              await pg.query(statement);
            } finally {
              await pg.end();
            }
          }
        };
        const s = await openSession(desk.a2.key);
        await sql('ALTER TABLE "CalibrationBin" RENAME TO "CalibrationBinAway"');
        try {
          await expect(finishFace(s, faceFacts('match', 0.66))).rejects.toThrow();
        } finally {
          await sql('ALTER TABLE "CalibrationBinAway" RENAME TO "CalibrationBin"');
        }
        expect(await app.get<VerdictRepository>(VERDICTS).forSession(clinic.a, s.sessionId)).toBeNull();
        expect(await app.get<SessionRepository>(SESSIONS).get(clinic.a, s.sessionId)).toMatchObject({
          state: 'created',
        });
        // The same verdict once the table is back: stored, and counted.
        expect(await finishFace(s, faceFacts('match', 0.66))).not.toBeNull();
        expect(asMap(await totals(clinic.a), desk.a2.id)['score.match=0.66']).toBe(1);
      });

      it('concurrent verdicts of one desk add up to exactly their number', async () => {
        const before = asMap(await totals(clinic.a), desk.a2.id);
        const sessions: OpenedSession[] = [];
        for (let i = 0; i < 12; i++) sessions.push(await openSession(desk.a2.key));
        const spoof: FaceVerdictFacts = {
          ...faceFacts('spoof_suspected', null),
          liveness: { passive: null, blink: false, light: false, turn: null },
          reason: 'light_no_response',
        };
        const results = await Promise.all(sessions.map((s) => finishFace(s, spoof)));
        expect(results.every((v) => v !== null)).toBe(true);
        const after = asMap(await totals(clinic.a), desk.a2.id);
        const grew = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
        expect(grew('outcome=face:spoof_suspected')).toBe(12);
        expect(grew('failure=spoof_suspected:light_no_response')).toBe(12);
        expect(grew('liveness.light=fail')).toBe(12);
        expect(grew('liveness.blink=not_reached')).toBe(12);
        expect(grew('frames=ok')).toBe(12 * 24);
      });
    });

    describe('GET /calibration', () => {
      it("answers the clinic's MIS key only", async () => {
        expect((await call('/calibration')).status).toBe(401);
        expect((await call('/calibration', desk.a1.key)).status).toBe(401);
        expect((await call('/calibration', mis.a)).status).toBe(200);
      });

      it('bins per metric per workstation, the clinic summed, and the derived figures', async () => {
        const r = await call('/calibration', mis.a);
        expect(r.status).toBe(200);
        const body = r.body;
        expect(body).toMatchObject({ to: today(), days: 30, matchThreshold: 0.46, nearMissMargin: 0.06 });
        const a1 = body.workstations.find((w: Json) => w.workstationId === desk.a1.id);
        expect(a1).toMatchObject({
          name: 'Desk a1',
          verdicts: { total: 2, face: 2, code: 0, none: 0 },
          genuine: { count: 1, median: 0.735 },
          noMatch: { count: 1, nearMisses: 1 },
          darkFailures: 0,
          // Two verdicts in the bins [32, 40) px, [112, 128) and [120, 250): the middles of their ranks.
          quality: { faceSize: 36, brightness: 120, sharpness: 185 },
        });
        expect(a1.metrics['score.match']).toEqual([{ bin: '0.73', lo: 0.73, hi: 0.74, count: 1 }]);
        expect(a1.metrics['quality.sharpness']).toEqual([{ bin: '120', lo: 120, hi: 250, count: 2 }]);
        expect(a1.metrics.outcome).toEqual([
          { bin: 'face:match', count: 1 },
          { bin: 'face:no_match', count: 1 },
        ]);
        expect(body.clinic.verdicts.total).toBe(
          body.workstations.reduce((t: number, w: Json) => t + w.verdicts.total, 0),
        );
        expect(body.clinic.verdicts.code).toBe(1);

        const only = await call(`/calibration?workstation=${desk.a2.id}`, mis.a);
        expect(only.body.workstations.map((w: Json) => w.workstationId)).toEqual([desk.a2.id]);
        expect(only.body.clinic).toEqual(body.clinic);
        // Clinic B's MIS sees none of clinic A's desks.
        const b = await call('/calibration', mis.b);
        expect(b.body.workstations).toEqual([]);
        expect(b.body.clinic.verdicts.total).toBe(0);
        // A window of days without verdicts.
        const old = await call('/calibration?from=2000-01-01&to=2000-01-31', mis.a);
        expect(old.body).toMatchObject({ from: '2000-01-01', to: '2000-01-31', days: 31, workstations: [] });
      });

      it('is documented with the other routes (OpenAPI), under the MIS key', async () => {
        const doc = (await call('/openapi.json')).body;
        const op = doc.paths['/calibration'].get;
        expect(op.summary).toMatch(/calibration/i);
        expect(op.parameters.map((p: Json) => p.name).sort()).toEqual(['from', 'to', 'workstation']);
        expect(op.security).toEqual(doc.paths['/stats'].get.security);
        expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '400', '401']));
      });

      it('refuses a bad window or workstation with 400', async () => {
        const reversed = await call('/calibration?from=2026-12-05&to=2026-12-01', mis.a);
        expect(reversed.status).toBe(400);
        expect(reversed.body.error.code).toBe('calibration_range_invalid');
        expect((await call('/calibration?from=2020-01-01&to=2026-12-01', mis.a)).status).toBe(400);
        expect((await call('/calibration?from=yesterday', mis.a)).status).toBe(400);
        expect((await call('/calibration?workstation=not-an-id', mis.a)).status).toBe(400);
      });
    });

    it('privacy: after verdicts with distinct scores, rows and answer hold bin counts only', async () => {
      // Two matches on clinic B's desk, their scores in different bins.
      const scores = [0.8123, 0.6237];
      for (const score of scores)
        expect(await finishFace(await openSession(desk.b1.key), faceFacts('match', score))).not.toBeNull();

      let rows: Array<Record<string, unknown>>;
      if (kind === 'sqlite') {
        const file = new Database(db.location, { readonly: true });
        try {
          rows = file.prepare('SELECT * FROM "CalibrationBin"').all() as Array<Record<string, unknown>>;
        } finally {
          file.close();
        }
      } else {
        const pg = new PgClient({ connectionString: db.location });
        await pg.connect();
        try {
          rows = (await pg.query('SELECT * FROM "CalibrationBin"')).rows;
        } finally {
          await pg.end();
        }
      }
      expect(rows.length).toBeGreaterThan(0);
      const workstations = new Set([desk.a1.id, desk.a2.id, desk.b1.id]);
      for (const row of rows) {
        // Exactly these columns: where (clinic, desk, day), which bin, how many. No verdict, session or patient.
        expect(Object.keys(row).sort()).toEqual(['bin', 'clinicId', 'count', 'day', 'metric', 'workstationId']);
        expect([clinic.a, clinic.b]).toContain(row.clinicId);
        expect(workstations.has(row.workstationId as string)).toBe(true);
        expect(row.day).toBe(today());
        expect(Number.isInteger(Number(row.count)) && Number(row.count) > 0).toBe(true);
        const spec = METRICS[row.metric as keyof typeof METRICS];
        expect(spec).toBeDefined();
        if (spec.kind === 'numeric') {
          // A bin of the fixed grid: its lower edge, never the value itself.
          const edges = (spec as NumericMetricSpec).edges.map((e) => e.toFixed((spec as NumericMetricSpec).decimals));
          expect(edges).toContain(row.bin);
        } else {
          expect(row.bin).toMatch(/^[a-z_]+(:[a-z_]+)?$/);
        }
      }
      const answer = await call('/calibration', mis.b);
      for (const [where, values] of [
        ['rows', rows.flatMap((r) => Object.values(r))],
        ['answer', leaves(answer.body)],
      ] as const) {
        for (const v of values) {
          const text = String(v);
          for (const id of identities) expect({ where, leaked: text.includes(id) }).toEqual({ where, leaked: false });
          for (const s of [...scores, 0.7312, 0.4123]) {
            expect({ where, v, isScore: v === s || text === String(s) || text === s.toFixed(4) }).toEqual({
              where,
              v,
              isScore: false,
            });
          }
        }
      }
      // The derived figures of the two: estimates from their bins, neither one's score.
      const b1 = answer.body.workstations[0];
      expect(b1.genuine.count).toBe(2);
      expect(b1.metrics['score.match'].map((b: Json) => b.count)).toEqual([1, 1]);
      expect(scores).not.toContain(b1.genuine.median);
    });

    it('faceid calibrate reads the same counts (text and --json)', async () => {
      const run = (argv: string[]) => runCli(argv, db.env);
      const json = await run(['calibrate', '--clinic', clinic.a, '--days', '14', '--json']);
      expect({ code: json.code, err: json.err }).toEqual({ code: 0, err: '' });
      const report = JSON.parse(json.out);
      expect(report).toMatchObject({ days: 14, to: today(), matchThreshold: 0.46 });
      expect(report.clinics).toHaveLength(1);
      const a = report.clinics[0];
      expect(a.clinicId).toBe(clinic.a);
      expect(a.workstations.map((w: Json) => w.name).sort()).toEqual(['Desk a1', 'Desk a2']);
      // Two matches and one near miss (0.4123, within 0.06 of 0.46): far too few for the rule.
      expect(a.threshold).toMatchObject({
        action: 'keep',
        current: 0.46,
        why: 'too_few',
        likelyGenuine: 3,
        nearMisses: 1,
      });
      for (const w of a.workstations) expect(w.flags).toEqual([]);

      const text = await run(['calibrate']);
      expect(text.code).toBe(0);
      expect(text.out).toContain('Clinic "Clinic A"');
      expect(text.out).toContain('Clinic "Clinic B"');
      expect(text.out).toContain('Threshold: keep 0.46');
      expect(text.out).toContain('no ground truth');
      expect(text.out).toMatch(/Desk a1 \([0-9a-f]{8}\)/);

      expect((await run(['calibrate', '--days', '0'])).code).toBe(2);
      expect((await run(['calibrate', '--clinic', 'nope'])).code).toBe(2);
      const unknown = await run(['calibrate', '--clinic', '00000000-0000-4000-8000-000000000000']);
      expect(unknown.code).toBe(1);
      expect(unknown.err).toContain('no clinic');
    });

    // One real session over the WebSocket: the gateway hands the runner's quality summary to calibration, and the
    // desk's verdict message carries neither the score nor it. SQLite only (the storage path is the one above).
    (kind === 'sqlite' && !fixturesMissing ? it : it.skip)(
      'a real face session counts its frames and quality; the desk sees none of it',
      async () => {
        await app.get<ClinicRepository>(CLINICS).setDeskEnrollment(clinic.b, true);
        const iin = makeIin('1985-04-12', 2203);
        const enrol = await fetch(`${base}/patients/${iin}/template`, {
          method: 'POST',
          headers: { authorization: `Bearer ${desk.b1.key}`, 'content-type': 'image/jpeg' },
          body: await webcamJpeg(2, { ...VGA, face: 1 }),
        });
        expect(enrol.status).toBe(201);
        const before = asMap(await totals(clinic.b), desk.b1.id);
        const started = await fetch(`${base}/sessions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${desk.b1.key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ iin, appointmentId: 'apt-real', channel: 'in_person' }),
        });
        const s = (await started.json()) as Json;
        const run = await runPatient(s.wsUrl, s.token, await faceFrames(app.get(EngineService).get(), 2, 1), {
          fps: 15,
        });
        expect(run.verdict).toBeDefined();
        const verdict = run.verdict as Json;
        expect(verdict).not.toHaveProperty('quality');
        expect(verdict).not.toHaveProperty('score');
        const after = asMap(await totals(clinic.b), desk.b1.id);
        const grew = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
        expect(grew(`outcome=face:${verdict.result}`)).toBe(1);
        const frames = Object.keys(after)
          .filter((k) => k.startsWith('frames='))
          .reduce((t, k) => t + grew(k), 0);
        expect(frames).toBe(verdict.timings.framesAnalysed);
        if (verdict.result === 'match' || verdict.result === 'no_match') {
          for (const m of ['quality.face_size', 'quality.brightness', 'quality.sharpness', `score.${verdict.result}`]) {
            expect({
              m,
              counted: Object.keys(after)
                .filter((k) => k.startsWith(`${m}=`))
                .reduce((t, k) => t + grew(k), 0),
            }).toEqual({ m, counted: 1 });
          }
        }
        console.log(`[calibration] real session: ${verdict.result}, ${verdict.timings.framesAnalysed} frames analysed`);
      },
      60_000,
    );
  });
}

if (fixturesMissing) console.warn(`calibration: the real face session is skipped: ${fixturesMissing}`);
