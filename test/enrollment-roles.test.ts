import * as fs from 'node:fs';
import * as path from 'node:path';
import type { INestApplication } from '@nestjs/common';
import Database from 'better-sqlite3';
import { Client as PgClient } from 'pg';
import sharp from 'sharp';
import { createApp } from '../src/app.factory';
import { createWorkstation } from '../src/auth';
import { loadConfig } from '../src/config';
import { cosineSimilarity, EngineService } from '../src/engine';
import { EnrollmentService } from '../src/enrollment';
import { EventSchema } from '../src/events/schemas';
import { smsText } from '../src/sms';
import {
  AUDIT,
  CLINICS,
  PATIENTS,
  PENDING_ENROLLMENTS,
  TEMPLATES,
  WORKSTATIONS,
  type AuditEntry,
  type AuditRepository,
  type ClinicRepository,
  type EventPayload,
  type PatientRepository,
  type PendingEnrollmentRepository,
  type TemplateEventPayload,
  type TemplateRepository,
  type WorkstationRepository,
} from '../src/storage/ports';
import { runCli, type CliRun as Run } from './support/cli';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';
import { missingFixturesReason, VGA, webcamJpeg } from './support/frames';
import { makeIin } from './support/iin';

// Trust boundaries of enrollment, end to end: the real app (engine, storage, HTTP), the real admin CLI against the
// same database, the development SMS outbox for the patient's phone; once per database (SQLite, and PostgreSQL
// unless FACEID_TEST_PG=0). The attack of the issue: a desk re-enrolls a patient with another person's face, who
// then gets `match` for the patient. It must take the patient's code, and the MIS must see it.

const missing = missingFixturesReason();
if (missing && process.env.CI) throw new Error(missing);
if (missing) console.warn(`Skipping the enrollment roles e2e tests: ${missing}`);

for (const db of TEST_DATABASES) {
  (missing ? describe.skip : describe)(`enrollment roles (${db})`, () => {
    let database: TestDatabase;
    let app: INestApplication;
    let base: string;
    let clinicD = ''; // desk enrollment allowed (set with the CLI)
    let clinicR = ''; // the default: registry only
    let registryKey = ''; // enrollment key of clinic D (made with the CLI)
    let registryKeyId = '';
    let deskD = '';
    let deskDId = '';
    let deskD2 = ''; // another desk of clinic D
    let deskR = '';
    let misKey = '';
    let patientFace: Buffer; // the patient
    let patientFace2: Buffer; // the patient, another frame
    let otherFace: Buffer; // somebody else
    let serial = 3000;
    const newIin = () => makeIin('1979-05-17', (serial += 7));

    const cli = (...argv: string[]): Promise<Run> => runCli(argv, database.env);

    const api = async (method: string, url: string, key: string, body?: Buffer | object) => {
      const headers: Record<string, string> = { authorization: `Bearer ${key}` };
      let payload: Uint8Array | string | undefined;
      if (Buffer.isBuffer(body)) {
        headers['content-type'] = 'image/jpeg';
        payload = new Uint8Array(body); // a copy: the fixture stays intact
      } else if (body !== undefined) {
        headers['content-type'] = 'application/json';
        payload = JSON.stringify(body);
      }
      const res = await fetch(base + url, { method, headers, body: payload });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    const enroll = (iin: string, key: string, photo: Buffer) => api('POST', `/patients/${iin}/template`, key, photo);
    const confirm = (iin: string, key: string, code: string) =>
      api('POST', `/patients/${iin}/template/confirm`, key, { code });

    /** The code the patient's phone got for a replacement (the development outbox), the newest first. */
    const codeFor = async (iin: string, key = deskD): Promise<string> => {
      const outbox = await api('GET', '/dev/outbox', key);
      expect(outbox.status).toBe(200);
      const mine = outbox.body.messages.filter(
        (m: { purpose: string; to: string }) => m.purpose === 'enrollment' && m.to === `********${iin.slice(-4)}`,
      );
      expect(mine.length).toBeGreaterThan(0);
      const text: string = mine[mine.length - 1].text;
      const code = /(\d{6})/.exec(text)![1];
      expect(text).toBe(smsText('enrollment', { code, clinicName: 'Desk clinic', languages: 'kk' }));
      return code;
    };

    /** The clinic's events as the MIS reads them (GET /events with its key), checked against the event schemas. */
    const events = async (): Promise<EventPayload[]> => {
      const page = await api('GET', '/events?limit=1000', misKey);
      expect(page.status).toBe(200);
      for (const e of page.body.events) expect(EventSchema.safeParse(e).success).toBe(true);
      return page.body.events;
    };
    const templateEvents = async (iin: string) =>
      (await events()).filter(
        (e): e is TemplateEventPayload => e.type.startsWith('template.') && 'iin' in e && e.iin === iin,
      );

    const patientId = async (clinicId: string, iin: string) =>
      (await app.get<PatientRepository>(PATIENTS).find(clinicId, iin))!.id;
    const activeTemplate = async (clinicId: string, iin: string) => {
      const patient = await app.get<PatientRepository>(PATIENTS).find(clinicId, iin);
      return patient ? app.get<TemplateRepository>(TEMPLATES).active(clinicId, patient.id) : null;
    };
    /** Whose face the patient's active template is: its similarity to each face. */
    const similarity = async (clinicId: string, iin: string) => {
      const template = (await app.get(EnrollmentService).loadTemplate(clinicId, await patientId(clinicId, iin)))!;
      const engine = app.get(EngineService).get();
      const embed = async (jpeg: Buffer) => (await engine.full(Buffer.from(jpeg))).faces[0].embedding!;
      try {
        return {
          patient: cosineSimilarity(template, await embed(patientFace)),
          other: cosineSimilarity(template, await embed(otherFace)),
        };
      } finally {
        template.fill(0);
      }
    };
    const audit = (clinicId: string): Promise<AuditEntry[]> => app.get<AuditRepository>(AUDIT).list(clinicId, 1000);

    /** Runs SQL against the test database from outside the app (to inject a failure). */
    const sql = async (text: string) => {
      if (database.kind === 'sqlite') {
        const conn = new Database(database.location);
        try {
          conn.exec(text);
        } finally {
          conn.close();
        }
        return;
      }
      const client = new PgClient({ connectionString: database.location });
      await client.connect();
      try {
        await client.query(text);
      } finally {
        await client.end();
      }
    };

    beforeAll(async () => {
      database = await createTestDatabase(db, 'enroll-roles');
      const env: Record<string, string> = {
        ...database.env,
        PORT: '0',
        FACEID_BOOTSTRAP: 'false',
        ENGINE_WORKERS: '1',
        RATE_LIMIT_PER_MINUTE: '10000',
        SMS_ADAPTER: 'dev',
        CODE_ATTEMPTS_MAX: '5',
        CODE_TTL_S: '300',
      };
      database.env = env;
      app = await createApp({ config: loadConfig(env) });
      await app.listen(0, '127.0.0.1');
      base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;

      // As an operator would: clinics, desk enrollment on for one, an enrollment key and an MIS key, with the CLI.
      clinicD = JSON.parse((await cli('clinic', 'create', '--name', 'Desk clinic', '--json')).out).id;
      clinicR = JSON.parse((await cli('clinic', 'create', '--name', 'Registry clinic', '--json')).out).id;
      const on = await cli('clinic', 'desk-enrollment', clinicD, 'on', '--json');
      expect(on).toMatchObject({ code: 0 });
      expect(JSON.parse(on.out)).toEqual({ id: clinicD, deskEnrollment: true, previous: false });
      // Its patients read Kazakh only (the confirmation codes' texts follow the setting).
      const kk = await cli('clinic', 'sms-languages', clinicD, 'kk', '--json');
      expect(kk).toMatchObject({ code: 0 });
      expect(JSON.parse(kk.out)).toEqual({ id: clinicD, smsLanguages: 'kk', previous: 'kk+ru' });
      const key = await cli('enrollment-key', 'create', '--clinic', clinicD, '--name', 'Registry import', '--json');
      expect(key).toMatchObject({ code: 0 });
      ({ apiKey: registryKey, id: registryKeyId } = JSON.parse(key.out));
      expect(registryKey).toMatch(/^fid_enr_[A-Za-z0-9_-]{43}$/);
      const mis = await cli('mis', 'create', '--clinic', clinicD, '--name', 'Central MIS', '--json');
      expect(mis).toMatchObject({ code: 0 });
      misKey = JSON.parse(mis.out).apiKey;

      const stations = app.get<WorkstationRepository>(WORKSTATIONS);
      const d = await createWorkstation(stations, clinicD, 'Desk 1');
      deskD = d.apiKey;
      deskDId = d.workstation.id;
      deskD2 = (await createWorkstation(stations, clinicD, 'Desk 2')).apiKey;
      deskR = (await createWorkstation(stations, clinicR, 'Desk R')).apiKey;

      patientFace = await webcamJpeg(0, VGA);
      patientFace2 = await webcamJpeg(0, { ...VGA, shiftX: 0.03, shiftY: 0.02 });
      otherFace = await webcamJpeg(2, VGA);
    });

    afterAll(async () => {
      await app?.close();
      await database?.drop();
    });

    it('the clinic setting: off for a new clinic, on where the CLI set it', async () => {
      const clinics = app.get<ClinicRepository>(CLINICS);
      expect(await clinics.deskEnrollment(clinicR)).toBe(false);
      expect(await clinics.deskEnrollment(clinicD)).toBe(true);
      expect((await audit(clinicD)).find((e) => e.action === 'clinic.desk_enrollment_set')).toMatchObject({
        actor: 'cli',
        detail: { deskEnrollment: true, previous: false },
      });
    });

    it('an enrollment key enrolls and replaces at once; the MIS sees template.enrolled, then template.replaced', async () => {
      const iin = newIin();
      const first = await enroll(iin, registryKey, patientFace);
      expect(first).toEqual({
        status: 201,
        body: {
          patientIin: iin,
          templateId: expect.any(String),
          images: 1,
          createdAt: expect.any(String),
          replaced: false,
        },
      });
      const second = await enroll(iin, registryKey, patientFace2);
      expect(second).toMatchObject({ status: 201, body: { patientIin: iin, replaced: true } });
      expect((await activeTemplate(clinicD, iin))!.id).toBe(second.body.templateId);

      const [enrolled, replaced] = await templateEvents(iin);
      const actor = { kind: 'enrollment_key', id: registryKeyId };
      expect(enrolled).toMatchObject({
        type: 'template.enrolled',
        clinicId: clinicD,
        templateId: first.body.templateId,
        previousTemplateId: null,
        actor,
        images: 1,
        confirmation: null,
      });
      expect(replaced).toMatchObject({
        type: 'template.replaced',
        templateId: second.body.templateId,
        previousTemplateId: first.body.templateId,
        actor,
        confirmation: null,
      });
      expect(replaced.seq).toBeGreaterThan(enrolled.seq);
    });

    it('a workstation of a clinic without desk enrollment gets 403 desk_enrollment_disabled, and nothing changes', async () => {
      const iin = newIin();
      const refused = await enroll(iin, deskR, patientFace);
      expect(refused).toEqual({
        status: 403,
        body: {
          error: {
            code: 'desk_enrollment_disabled',
            message: expect.stringContaining('faceid clinic desk-enrollment'),
          },
        },
      });
      expect(refused.body.error.message).toMatch(/does not allow workstations to enroll/);
      expect(await activeTemplate(clinicR, iin)).toBeNull();

      // The registry (here the administrator's bulk import, `faceid enroll`) enrolls the patient of that clinic...
      const dir = fs.mkdtempSync(path.join(database.dataDir, 'import-'));
      fs.writeFileSync(path.join(dir, 'p.jpg'), patientFace);
      fs.writeFileSync(path.join(dir, 'manifest.csv'), `iin,photo\n${iin},p.jpg\n`);
      const imported = await cli('enroll', '--clinic', clinicR, '--manifest', path.join(dir, 'manifest.csv'), '--json');
      expect(imported).toMatchObject({ code: 0 });
      expect(JSON.parse(imported.out)).toEqual({
        rows: 1,
        enrolled: 1,
        replaced: 0,
        skipped: 0,
        failed: 0,
        errors: [],
      });
      expect(await activeTemplate(clinicR, iin)).not.toBeNull();

      // ...and the desk can neither replace nor revoke it.
      expect(await enroll(iin, deskR, otherFace)).toMatchObject({
        status: 403,
        body: { error: { code: 'desk_enrollment_disabled' } },
      });
      const del = await api('DELETE', `/patients/${iin}/template`, deskR);
      expect(del).toMatchObject({ status: 403, body: { error: { code: 'desk_enrollment_disabled' } } });
      expect(await confirm(iin, deskR, '123456')).toMatchObject({ status: 403 });
      expect(await activeTemplate(clinicR, iin)).not.toBeNull();
      const refusals = (await audit(clinicR)).filter((e) => e.action === 'template.desk_enrollment_refused');
      expect(refusals.map((e) => e.detail!.operation).sort()).toEqual(['confirm', 'enroll', 'enroll', 'revoke']);
    });

    it('the attack of the issue: a desk re-enrolling a patient with another face is held until the patient’s code; with it, the MIS sees template.replaced', async () => {
      const iin = newIin();
      const original = await enroll(iin, registryKey, patientFace);
      expect(original.status).toBe(201);

      // Another person's face at the desk, for the patient's IIN.
      const attempt = await enroll(iin, deskD, otherFace);
      expect(attempt).toEqual({
        status: 202,
        body: {
          confirmation: 'code_sent',
          patientIin: iin,
          images: 1,
          codeExpiresAt: expect.any(String),
          resendsLeft: 2,
        },
      });
      // Nothing changed: the template is still the patient's, another face does not match it.
      expect((await activeTemplate(clinicD, iin))!.id).toBe(original.body.templateId);
      const before = await similarity(clinicD, iin);
      expect(before.patient).toBeGreaterThan(0.9);
      expect(before.other).toBeLessThan(0.46);
      expect((await templateEvents(iin)).map((e) => e.type)).toEqual(['template.enrolled']);

      // Without the patient's code it goes nowhere: a wrong code, another desk, the enrollment role.
      const code = await codeFor(iin);
      const wrong = code === '000000' ? '000001' : '000000';
      expect(await confirm(iin, deskD, wrong)).toEqual({
        status: 422,
        body: { error: { code: 'code_invalid', message: expect.any(String), attemptsLeft: 4 } },
      });
      expect(await confirm(iin, deskD2, code)).toMatchObject({
        status: 404,
        body: { error: { code: 'confirmation_not_found' } },
      });
      expect(await confirm(iin, registryKey, code)).toMatchObject({ status: 404 });
      expect((await activeTemplate(clinicD, iin))!.id).toBe(original.body.templateId);

      // With it (the patient agreed), the new template is stored, and the MIS is told who did it and how.
      const confirmed = await confirm(iin, deskD, code);
      expect(confirmed).toEqual({
        status: 201,
        body: {
          patientIin: iin,
          templateId: expect.any(String),
          images: 1,
          createdAt: expect.any(String),
          replaced: true,
        },
      });
      expect((await activeTemplate(clinicD, iin))!.id).toBe(confirmed.body.templateId);
      const after = await similarity(clinicD, iin);
      expect(after.other).toBeGreaterThan(0.9);
      const replaced = (await templateEvents(iin)).filter((e) => e.type === 'template.replaced');
      expect(replaced).toEqual([
        expect.objectContaining({
          type: 'template.replaced',
          templateId: confirmed.body.templateId,
          previousTemplateId: original.body.templateId,
          actor: { kind: 'workstation', id: deskDId },
          confirmation: 'patient_code',
        }),
      ]);
      // The code was used: it cannot confirm anything again, and the pending reference is gone.
      expect(await confirm(iin, deskD, code)).toMatchObject({
        status: 404,
        body: { error: { code: 'confirmation_not_found' } },
      });
      const pendings = app.get<PendingEnrollmentRepository>(PENDING_ENROLLMENTS);
      expect(await pendings.current(clinicD, await patientId(clinicD, iin))).toBeNull();
      const pid = await patientId(clinicD, iin);
      const request = (await audit(clinicD)).find(
        (e) => e.subject === pid && e.action === 'template.replacement_requested',
      )!;
      expect(await pendings.get(clinicD, request.detail!.request as string)).toMatchObject({
        state: 'confirmed',
        template: null,
      });
    });

    it('a desk enrolls a patient who never had a template at once, and after a revocation only with the code', async () => {
      const iin = newIin();
      const first = await enroll(iin, deskD, patientFace);
      expect(first).toMatchObject({ status: 201, body: { replaced: false } });
      expect(await api('DELETE', `/patients/${iin}/template`, deskD)).toEqual({ status: 204, body: null });
      expect(await activeTemplate(clinicD, iin)).toBeNull();
      // Revoke-then-enroll is a replacement too: it waits for the patient.
      expect(await enroll(iin, deskD, otherFace)).toMatchObject({ status: 202, body: { confirmation: 'code_sent' } });
      expect(await activeTemplate(clinicD, iin)).toBeNull();
      const again = await confirm(iin, deskD, await codeFor(iin));
      expect(again).toMatchObject({ status: 201, body: { replaced: false } });

      expect(await templateEvents(iin)).toEqual([
        expect.objectContaining({
          type: 'template.enrolled',
          actor: { kind: 'workstation', id: deskDId },
          confirmation: null,
        }),
        expect.objectContaining({
          type: 'template.revoked',
          templateId: null,
          previousTemplateId: first.body.templateId,
          actor: { kind: 'workstation', id: deskDId },
          images: null,
        }),
        expect.objectContaining({
          type: 'template.enrolled',
          templateId: again.body.templateId,
          previousTemplateId: null,
          confirmation: 'patient_code',
        }),
      ]);
      // The enrollment role revokes too; another clinic's key cannot.
      expect(await api('DELETE', `/patients/${iin}/template`, deskR)).toMatchObject({ status: 404 });
      expect(await api('DELETE', `/patients/${iin}/template`, registryKey)).toEqual({ status: 204, body: null });
      expect((await templateEvents(iin)).at(-1)).toMatchObject({
        type: 'template.revoked',
        actor: { kind: 'enrollment_key', id: registryKeyId },
      });
    });

    it('a desk sending the photo again gets a new code for the same request, CODE_RESENDS_MAX times; the old code stops working', async () => {
      const iin = newIin();
      expect((await enroll(iin, registryKey, patientFace)).status).toBe(201);
      expect(await enroll(iin, deskD, otherFace)).toMatchObject({ status: 202, body: { resendsLeft: 2 } });
      const first = await codeFor(iin);
      expect(await enroll(iin, deskD, patientFace2)).toMatchObject({ status: 202, body: { resendsLeft: 1 } });
      const second = await codeFor(iin);
      expect(await enroll(iin, deskD, patientFace2)).toMatchObject({ status: 202, body: { resendsLeft: 0 } });
      const third = await codeFor(iin);
      const limit = await enroll(iin, deskD, patientFace2);
      expect(limit).toMatchObject({ status: 429, body: { error: { code: 'code_resend_limit' } } });
      for (const old of [first, second].filter((c) => c !== third)) {
        expect(await confirm(iin, deskD, old)).toMatchObject({
          status: 422,
          body: { error: { code: 'code_invalid' } },
        });
      }
      // The last photo sent is the one the patient's code confirms.
      expect(await confirm(iin, deskD, third)).toMatchObject({ status: 201, body: { replaced: true } });
      const now = await similarity(clinicD, iin);
      expect(now.patient).toBeGreaterThan(0.9);
      expect(now.other).toBeLessThan(0.46);
    });

    it('wrong codes lock the request out and wipe its reference; an unconfirmed one is wiped when it expires', async () => {
      const iin = newIin();
      const original = (await enroll(iin, registryKey, patientFace)).body.templateId;
      const pendings = app.get<PendingEnrollmentRepository>(PENDING_ENROLLMENTS);
      const pid = await patientId(clinicD, iin);

      expect((await enroll(iin, deskD, otherFace)).status).toBe(202);
      const code = await codeFor(iin);
      const request = (await pendings.current(clinicD, pid))!;
      expect(request.template).not.toBeNull(); // held sealed...
      expect(request.template!.ciphertext).toHaveLength(512 * 4);
      const wrong = code === '111111' ? '222222' : '111111';
      for (const left of [4, 3, 2, 1]) {
        expect(await confirm(iin, deskD, wrong)).toMatchObject({
          status: 422,
          body: { error: { attemptsLeft: left } },
        });
      }
      expect(await confirm(iin, deskD, wrong)).toMatchObject({
        status: 429,
        body: { error: { code: 'code_locked_out' } },
      });
      expect(await pendings.get(clinicD, request.id)).toMatchObject({ state: 'locked_out', template: null }); // ...then wiped
      expect(await confirm(iin, deskD, code)).toMatchObject({ status: 404 });
      expect((await activeTemplate(clinicD, iin))!.id).toBe(original);

      // Sent again: a new request; nobody confirms it, and its code expires.
      expect((await enroll(iin, deskD, otherFace)).status).toBe(202);
      const late = await codeFor(iin);
      const open = (await pendings.current(clinicD, pid))!;
      expect(open.id).not.toBe(request.id);
      const service = app.get(EnrollmentService);
      expect(await service.expirePending(new Date(open.expiresAt.getTime() - 1000))).toBe(0);
      expect(await service.expirePending(new Date(open.expiresAt.getTime() + 1000))).toBe(1);
      expect(await pendings.get(clinicD, open.id)).toMatchObject({ state: 'expired', template: null });
      expect(await confirm(iin, deskD, late)).toMatchObject({
        status: 404,
        body: { error: { code: 'confirmation_not_found' } },
      });
      expect((await activeTemplate(clinicD, iin))!.id).toBe(original);
      expect((await templateEvents(iin)).map((e) => e.type)).toEqual(['template.enrolled']);
      const actions = (await audit(clinicD)).filter((e) => e.subject === pid).map((e) => e.action);
      expect(actions).toEqual(
        expect.arrayContaining(['template.replacement_expired', 'template.confirmation_rejected']),
      );
    });

    it('a template change and its event commit together: a refused event insert leaves the old template', async () => {
      const iin = newIin();
      const original = (await enroll(iin, registryKey, patientFace)).body.templateId;
      const on =
        database.kind === 'sqlite'
          ? `CREATE TRIGGER "Event_fail" BEFORE INSERT ON "Event" BEGIN SELECT RAISE(ABORT, 'event insert refused'); END`
          : `CREATE FUNCTION event_fail() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'event insert refused'; END $$ ` +
            `LANGUAGE plpgsql; CREATE TRIGGER "Event_fail" BEFORE INSERT ON "Event" FOR EACH ROW EXECUTE FUNCTION event_fail()`;
      const off =
        database.kind === 'sqlite'
          ? `DROP TRIGGER "Event_fail"`
          : `DROP TRIGGER "Event_fail" ON "Event"; DROP FUNCTION event_fail()`;
      const pid = await patientId(clinicD, iin);
      const changes = async () =>
        (await audit(clinicD)).filter((e) => e.subject === pid && e.action.startsWith('template.'));
      const auditBefore = await changes();
      await sql(on);
      try {
        expect((await enroll(iin, registryKey, otherFace)).status).toBe(500);
        expect(await api('DELETE', `/patients/${iin}/template`, registryKey)).toMatchObject({ status: 500 });
      } finally {
        await sql(off);
      }
      // Neither the new template, nor its event, nor its audit entry; then, with events accepted again, all three.
      expect((await activeTemplate(clinicD, iin))!.id).toBe(original);
      expect(await changes()).toEqual(auditBefore);
      expect((await templateEvents(iin)).map((e) => e.type)).toEqual(['template.enrolled']);
      expect(await api('DELETE', `/patients/${iin}/template`, registryKey)).toEqual({ status: 204, body: null });
      expect((await templateEvents(iin)).map((e) => e.type)).toEqual(['template.enrolled', 'template.revoked']);
      expect((await changes()).map((e) => e.action)).toEqual(['template.revoked', 'template.enrolled']);
    });

    it('every enrollment, replacement and revocation is an event and an audit entry, and none carries biometric data', async () => {
      const all = (await events()).filter((e): e is TemplateEventPayload => e.type.startsWith('template.'));
      expect(new Set(all.map((e) => e.type))).toEqual(
        new Set(['template.enrolled', 'template.replaced', 'template.revoked']),
      );
      const entries = (await audit(clinicD)).filter((e) =>
        ['template.enrolled', 'template.replaced', 'template.revoked'].includes(e.action),
      );
      // One audit entry per event, naming it.
      expect(entries.map((e) => e.detail!.eventSeq).sort()).toEqual(all.map((e) => e.seq).sort());
      for (const e of entries) {
        const event = all.find((x) => x.seq === e.detail!.eventSeq)!;
        expect(e.action).toBe(event.type);
        expect(e.actor).toBe(event.actor.kind === 'admin' ? 'cli' : `${event.actor.kind}:${event.actor.id}`);
      }

      // No image, embedding, template or code anywhere in them: only ids, the IIN, counts and names.
      const photos = [patientFace, patientFace2, otherFace].map((p) => p.subarray(400, 448).toString('base64'));
      const stored = await Promise.all(
        all
          .filter((e) => e.templateId)
          .map(async (e) => {
            const rows = await app.get<TemplateRepository>(TEMPLATES).active(clinicD, await patientId(clinicD, e.iin));
            return rows
              ? [rows.ciphertext.toString('base64').slice(0, 40), rows.ciphertext.toString('hex').slice(0, 40)]
              : [];
          }),
      );
      const outbox = (await api('GET', '/dev/outbox', deskD)).body.messages as { text: string }[];
      const codes = outbox.map((m) => /(\d{6})/.exec(m.text)![1]);
      const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
      const texts = [
        ...all.map((e) => JSON.stringify(e)),
        ...(await audit(clinicD)).map((e) => JSON.stringify(e.detail)),
      ].map(
        (t) => t.replace(uuid, '<id>'), // ids are random hex, which can hold any six digits
      );
      expect(codes.length).toBeGreaterThan(3);
      for (const text of texts) {
        for (const p of photos) expect(text).not.toContain(p);
        for (const s of stored.flat()) expect(text).not.toContain(s);
        for (const c of codes) expect(text).not.toMatch(new RegExp(`(^|[^0-9])${c}([^0-9]|$)`));
        expect(text).not.toMatch(/embedding|ciphertext|"code"/i);
      }
      for (const e of all) {
        for (const v of Object.values(e)) {
          if (typeof v === 'string') expect(v.length).toBeLessThanOrEqual(64);
          if (Array.isArray(v)) throw new Error(`${e.type} holds an array`);
        }
      }
    });

    it('the CLI lists and revokes enrollment keys; a revoked key is refused', async () => {
      const list = await cli('enrollment-key', 'list', '--clinic', clinicD, '--json');
      expect(list).toMatchObject({ code: 0 });
      expect(JSON.parse(list.out.trim())).toEqual({
        id: registryKeyId,
        clinicId: clinicD,
        name: 'Registry import',
        state: 'active',
        createdAt: expect.any(String),
        revokedAt: null,
      });
      expect(list.out).not.toContain(registryKey);
      expect(await cli('enrollment-key', 'revoke', '--clinic', clinicR, '--id', registryKeyId)).toMatchObject({
        code: 1,
      });
      expect(await cli('enrollment-key', 'revoke', '--clinic', clinicD, '--id', registryKeyId)).toMatchObject({
        code: 0,
      });
      expect(await enroll(newIin(), registryKey, patientFace)).toMatchObject({
        status: 401,
        body: { error: { code: 'unauthorized' } },
      });
      const actions = (await audit(clinicD)).map((e) => e.action);
      expect(actions).toEqual(
        expect.arrayContaining(['enrollment_key.created', 'enrollment_key.listed', 'enrollment_key.revoked']),
      );
      for (const e of await audit(clinicD)) expect(JSON.stringify(e)).not.toContain(registryKey);
    });

    it('the bulk import reports each failing row with its line and goes on; --skip-enrolled leaves enrolled patients', async () => {
      const dir = fs.mkdtempSync(path.join(database.dataDir, 'bulk-'));
      fs.writeFileSync(path.join(dir, 'a.jpg'), patientFace);
      fs.writeFileSync(path.join(dir, 'b.jpg'), otherFace);
      const grey = await sharp({
        create: { width: 320, height: 240, channels: 3, background: { r: 128, g: 128, b: 128 } },
      })
        .jpeg()
        .toBuffer();
      fs.writeFileSync(path.join(dir, 'grey.jpg'), grey);
      const ok1 = newIin();
      const ok2 = newIin();
      const noFace = newIin();
      const missingPhoto = newIin();
      fs.writeFileSync(
        path.join(dir, 'manifest.csv'),
        [
          '# registry export',
          'iin,photo',
          `${ok1},a.jpg`,
          `123456789012,a.jpg`,
          `${noFace},grey.jpg`,
          `${missingPhoto},"missing photo.jpg"`,
          `${ok2},b.jpg`,
          `${ok1},b.jpg`,
          'only-one-field',
        ].join('\n'),
      );
      const r = await cli('enroll', '--clinic', clinicD, '--manifest', path.join(dir, 'manifest.csv'), '--json');
      expect(r.code).toBe(1);
      const summary = JSON.parse(r.out);
      expect(summary).toMatchObject({ rows: 7, enrolled: 2, replaced: 1, skipped: 0, failed: 4 });
      expect(summary.errors.map((e: { line: number; code: string }) => [e.line, e.code])).toEqual([
        [4, 'iin_invalid'],
        [5, 'enroll_no_face'],
        [6, 'photo_unreadable'],
        [9, 'invalid_row'],
      ]);
      expect(r.err).toMatch(/line 5: \[enroll_no_face\] The image shows no face/);
      expect(r.err).toMatch(/enroll: 7\/7 rows: 2 enrolled, 1 replaced, 0 skipped, 4 failed/);
      expect(r.err).not.toContain(ok1); // IINs masked in messages
      expect((await templateEvents(ok1)).map((e) => [e.type, e.actor.kind])).toEqual([
        ['template.enrolled', 'admin'],
        ['template.replaced', 'admin'],
      ]);
      const skip = await cli(
        'enroll',
        '--clinic',
        clinicD,
        '--manifest',
        path.join(dir, 'manifest.csv'),
        '--skip-enrolled',
        '--json',
      );
      expect(JSON.parse(skip.out)).toMatchObject({ enrolled: 0, replaced: 0, skipped: 3, failed: 4 });
    });
  });
}
