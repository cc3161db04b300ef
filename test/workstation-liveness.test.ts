import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Logger } from '@nestjs/common';
import { z } from 'zod';
import { loadConfig } from '../src/config';
import { schemaFileName } from '../src/events';
import { CameraRegistryService } from '../src/identification/camera-registry.service';
import { ChallengePolicyService } from '../src/identification/challenge-policy.service';
import { parseChallenges } from '../src/liveness/policy';
import { openStorage, verifyAuditChain, type Repositories, type Storage } from '../src/storage';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';

// The liveness settings of clinics and workstations (the fallback order a session's challenges follow) and the camera
// memory of workstations (the camera_changed event and its audit entry), on SQLite and PostgreSQL.

const ROOT = path.resolve(__dirname, '..');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const committedSchema = z.fromJSONSchema(
  JSON.parse(fs.readFileSync(path.join(ROOT, 'docs/events', schemaFileName('workstation.camera_changed')), 'utf8')),
);

/** A camera as a browser would report it: a label and a hex hash of its device id. */
const camera = (label: string) => ({ label, deviceIdHash: randomBytes(32).toString('hex') });

/** Runs one SQL query on the test database, outside the repositories (to look at what is really stored). */
async function sql(db: TestDatabase, text: string, params: unknown[]): Promise<Record<string, unknown>[]> {
  if (db.kind === 'sqlite') {
    const Database = (await import('better-sqlite3')).default;
    const conn = new Database(db.location, { readonly: true });
    try {
      return conn.prepare(text.replace(/\$\d+/g, '?')).all(...params) as Record<string, unknown>[];
    } finally {
      conn.close();
    }
  }
  const { Client } = await import('pg');
  const conn = new Client({ connectionString: db.location });
  await conn.connect();
  try {
    return (await conn.query(text, params)).rows;
  } finally {
    await conn.end();
  }
}

for (const kind of TEST_DATABASES) {
  describe(`workstation liveness settings and camera memory (${kind})`, () => {
    let db: TestDatabase;
    let storage: Storage;
    let r: Repositories;
    let clinicId = '';
    let otherClinicId = '';

    const newDesk = async (clinic = clinicId, name = 'Desk') =>
      (await r.workstations.create(clinic, name, sha256(randomBytes(16).toString('hex')))).id;

    beforeAll(async () => {
      Logger.overrideLogger(false); // the services' warnings (invalid settings, changed cameras) are expected here
      db = await createTestDatabase(kind, 'liveness');
      storage = await openStorage(loadConfig(db.env));
      r = storage.repos;
      clinicId = (await r.clinics.create('Polyclinic 7')).id;
      otherClinicId = (await r.clinics.create('Other clinic')).id;
    });

    afterAll(async () => {
      await storage?.close();
      await db?.drop();
    });

    describe('liveness challenges', () => {
      /** The service as the application builds it, with LIVENESS_CHALLENGES as given. */
      const policy = (fallback?: string) =>
        new ChallengePolicyService(loadConfig({ ...db.env, LIVENESS_CHALLENGES: fallback ?? '' }), r.workstations);

      it('come from the workstation, else the clinic, else LIVENESS_CHALLENGES', async () => {
        const clinic = (await r.clinics.create('Fallback clinic')).id;
        const own = await newDesk(clinic, 'Monitor faces the doctor');
        const plain = await newDesk(clinic, 'Patient-facing screen');

        // Nothing stored: the configured default (light,blink unless set).
        expect(await policy().forSession(clinic, own)).toEqual(parseChallenges('light,blink'));
        expect(await policy('light,turn,blink').forSession(clinic, own)).toEqual(parseChallenges('light,turn,blink'));
        expect(await r.workstations.livenessChallenges(clinic, own)).toEqual({ workstation: null, clinic: null });

        // The clinic's setting overrides the configuration for all its desks.
        expect(await r.clinics.setLivenessChallenges(clinic, 'light,turn,blink')).toEqual({ previous: null });
        expect(await policy('turn,blink').forSession(clinic, own)).toEqual(parseChallenges('light,turn,blink'));
        expect(await policy('turn,blink').forSession(clinic, plain)).toEqual(parseChallenges('light,turn,blink'));

        // A desk's own setting overrides its clinic's, for that desk only.
        expect(await r.workstations.setLivenessChallenges(clinic, own, 'turn,blink')).toEqual({ previous: null });
        expect(await r.workstations.livenessChallenges(clinic, own)).toEqual({
          workstation: 'turn,blink',
          clinic: 'light,turn,blink',
        });
        expect(await policy().forSession(clinic, own)).toEqual(parseChallenges('turn,blink'));
        expect(await policy().forSession(clinic, plain)).toEqual(parseChallenges('light,turn,blink'));

        // Back to the defaults, level by level.
        expect(await r.workstations.setLivenessChallenges(clinic, own, null)).toEqual({ previous: 'turn,blink' });
        expect(await policy().forSession(clinic, own)).toEqual(parseChallenges('light,turn,blink'));
        expect(await r.clinics.setLivenessChallenges(clinic, null)).toEqual({ previous: 'light,turn,blink' });
        expect(await policy('turn,blink').forSession(clinic, own)).toEqual(parseChallenges('turn,blink'));
      });

      it('pass over a stored value that no longer parses, to the next level', async () => {
        const clinic = (await r.clinics.create('Odd values clinic')).id;
        const desk = await newDesk(clinic);
        await r.clinics.setLivenessChallenges(clinic, 'turn,blink');
        await r.workstations.setLivenessChallenges(clinic, desk, 'sparkle,blink');
        expect(await policy().forSession(clinic, desk)).toEqual(parseChallenges('turn,blink'));
        await r.clinics.setLivenessChallenges(clinic, 'sparkle');
        expect(await policy().forSession(clinic, desk)).toEqual(parseChallenges('light,blink'));
      });

      it('stay inside their clinic', async () => {
        const desk = await newDesk();
        expect(await r.workstations.setLivenessChallenges(otherClinicId, desk, 'turn,blink')).toBeNull();
        expect(await r.workstations.livenessChallenges(otherClinicId, desk)).toBeNull();
        expect(await r.workstations.livenessChallenges(clinicId, desk)).toEqual({ workstation: null, clinic: null });
        expect(await r.clinics.setLivenessChallenges('00000000-0000-4000-8000-000000000000', 'turn,blink')).toBeNull();
        // A desk of another clinic (or none) falls back to the configuration rather than to a stranger's setting.
        expect(await policy('turn,blink').forSession(otherClinicId, desk)).toEqual(parseChallenges('turn,blink'));
      });
    });

    describe('camera memory', () => {
      const registry = () => new CameraRegistryService(r.workstations);
      const stored = async (id: string) =>
        (await sql(db, 'SELECT "cameraLabel", "cameraHash" FROM "Workstation" WHERE "id" = $1', [id]))[0];

      it('remembers the first camera, and the same camera again, without an event', async () => {
        const desk = await newDesk();
        const webcam = camera('HD Pro Webcam C920 (046d:082d)');
        const before = await r.events.latestSeq(clinicId);

        expect(await registry().report(clinicId, desk, webcam)).toEqual({ changed: false, first: true });
        expect(await stored(desk)).toEqual({ cameraLabel: webcam.label, cameraHash: sha256(webcam.deviceIdHash) });
        expect(await registry().report(clinicId, desk, webcam)).toEqual({ changed: false, first: false });
        // The same device id in upper case is the same camera; a new label of it is only refreshed.
        const renamed = { label: 'Webcam C920', deviceIdHash: webcam.deviceIdHash.toUpperCase() };
        expect(await registry().report(clinicId, desk, renamed)).toEqual({ changed: false, first: false });
        expect(await stored(desk)).toEqual({ cameraLabel: 'Webcam C920', cameraHash: sha256(webcam.deviceIdHash) });

        expect(await r.events.latestSeq(clinicId)).toBe(before);
        const audit = (await r.audit.list(clinicId, 1000)).filter((e) => e.subject === desk);
        expect(audit.map((e) => [e.actor, e.action, e.detail])).toEqual([
          [`workstation:${desk}`, 'workstation.camera_registered', { label: webcam.label }],
        ]);
      });

      it('writes one workstation.camera_changed event (the next seq, valid against docs/events) for a different camera', async () => {
        const desk = await newDesk();
        const webcam = camera('Integrated Camera (04f2:b6d9)');
        const virtual = camera('OBS Virtual Camera');
        await registry().report(clinicId, desk, webcam);
        const before = await r.events.latestSeq(clinicId);
        const woken: string[] = [];
        const off = r.events.onCommitted((c) => woken.push(c));

        expect(await registry().report(clinicId, desk, virtual)).toEqual({ changed: true, first: false });
        off();
        const events = await r.events.after(clinicId, before, 10);
        expect(events).toHaveLength(1);
        const [event] = events;
        expect(event).toMatchObject({ clinicId, seq: before + 1, type: 'workstation.camera_changed' });
        expect(event.payload).toEqual({
          id: event.id,
          type: 'workstation.camera_changed',
          version: 1,
          clinicId,
          seq: before + 1,
          workstationId: desk,
          previous: { label: webcam.label },
          current: { label: virtual.label },
          occurredAt: event.createdAt.toISOString(),
        });
        expect(committedSchema.safeParse(event.payload).success).toBe(true);
        expect(woken).toEqual([clinicId]);
        expect(await r.events.latestSeq(otherClinicId)).toBe(0);

        // The same virtual camera again: nothing new. Back to the webcam: a second change.
        expect(await registry().report(clinicId, desk, virtual)).toEqual({ changed: false, first: false });
        expect(await registry().report(clinicId, desk, webcam)).toEqual({ changed: true, first: false });
        const after = await r.events.after(clinicId, before, 10);
        expect(after.map((e) => [e.seq, e.payload])).toEqual([
          [before + 1, event.payload],
          [
            before + 2,
            expect.objectContaining({ previous: { label: virtual.label }, current: { label: webcam.label } }),
          ],
        ]);

        const audit = (await r.audit.list(clinicId, 1000)).filter((e) => e.subject === desk).reverse();
        expect(audit.map((e) => [e.action, e.detail])).toEqual([
          ['workstation.camera_registered', { label: webcam.label }],
          [
            'workstation.camera_changed',
            { previous: { label: webcam.label }, current: { label: virtual.label }, eventSeq: before + 1 },
          ],
          [
            'workstation.camera_changed',
            { previous: { label: virtual.label }, current: { label: webcam.label }, eventSeq: before + 2 },
          ],
        ]);

        // Neither the device id hash nor its stored hash leaves the Workstation row.
        const written = JSON.stringify([after, audit]);
        for (const c of [webcam, virtual]) {
          expect(written).not.toContain(c.deviceIdHash);
          expect(written).not.toContain(sha256(c.deviceIdHash));
        }
      });

      it('writes one event when several report the same change at once', async () => {
        const desk = await newDesk();
        await registry().report(clinicId, desk, camera('Old webcam'));
        const before = await r.events.latestSeq(clinicId);
        const next = camera('New webcam');
        const results = await Promise.all(
          Array.from({ length: 8 }, () => registry().report(clinicId, desk, { ...next })),
        );
        expect(results.filter((x) => x.changed)).toHaveLength(1);
        expect(results.filter((x) => !x.changed && !x.first)).toHaveLength(7);
        const events = await r.events.after(clinicId, before, 10);
        expect(events.map((e) => [e.seq, e.type])).toEqual([[before + 1, 'workstation.camera_changed']]);
        expect(await stored(desk)).toEqual({ cameraLabel: 'New webcam', cameraHash: sha256(next.deviceIdHash) });
      });

      it('keeps events gapless when camera changes and other desks race', async () => {
        const clinic = (await r.clinics.create('Busy desks clinic')).id;
        const desks = await Promise.all(Array.from({ length: 6 }, (_, i) => newDesk(clinic, `Desk ${i}`)));
        await Promise.all(desks.map((d) => registry().report(clinic, d, camera('First'))));
        await Promise.all(desks.map((d) => registry().report(clinic, d, camera('Second'))));
        const events = await r.events.after(clinic, 0, 100);
        expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
        expect(new Set(events.map((e) => (e.payload as { workstationId: string }).workstationId))).toEqual(
          new Set(desks),
        );
        // Statistics count identifications only.
        expect(await r.events.outcomeCounts(clinic, new Date(0), new Date(Date.now() + 60_000))).toEqual([]);
      });

      it('refuses a workstation of another clinic, and malformed reports', async () => {
        const desk = await newDesk();
        await expect(registry().report(otherClinicId, desk, camera('X'))).rejects.toMatchObject({
          code: 'reference_not_found',
        });
        expect(await stored(desk)).toEqual({ cameraLabel: null, cameraHash: null });
        await expect(registry().report(clinicId, desk, camera('x'.repeat(201)))).rejects.toThrow(
          /invalid camera report: label/,
        );
        await expect(registry().report(clinicId, desk, camera('bell\u0007'))).rejects.toThrow(RangeError);
        await expect(registry().report(clinicId, desk, { label: 'Cam', deviceIdHash: 'not-hex' })).rejects.toThrow(
          /invalid camera report: deviceIdHash/,
        );
        expect(await stored(desk)).toEqual({ cameraLabel: null, cameraHash: null });
      });

      it('keeps the audit chain intact', async () => {
        expect(await verifyAuditChain(r.audit)).toBeNull();
      });
    });
  });
}
