import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import Database from 'better-sqlite3';
import { Client as PgClient } from 'pg';
import { ConfigModule, loadConfig } from '../src/config';
import {
  AUDIT,
  AUDIT_GENESIS,
  auditChainKeys,
  auditHash,
  auditMac,
  CLINICS,
  createRepositories,
  migrate,
  openStorage,
  PATIENTS,
  SESSIONS,
  StorageModule,
  TEMPLATES,
  verifyAuditChain,
  walkAuditChain,
  VERDICTS,
  WORKSTATIONS,
  type ClinicRepository,
  type IdentificationEventPayload,
  type OutcomeCount,
  type Repositories,
  type Storage,
  type StorageTarget,
  type StoredEvent,
} from '../src/storage';
import { KeyRing } from '../src/keyring';
import { openDb, type Db } from '../src/storage/db';
import { readMigrations } from '../src/storage/migrate';

/** The key ring of these tests: the audit chain is keyed with its derived key, as the service's is. */
const TEST_KEY = randomBytes(32);
const AUDIT_KEYS = auditChainKeys(new KeyRing([{ id: 'test1', key: TEST_KEY }]));
const AUDIT_KEY = AUDIT_KEYS.keys.get('test1')!;

// One repository contract, run against SQLite (a temporary file) and PostgreSQL (fresh databases on the local server,
// dropped afterwards). PostgreSQL unreachable: the PostgreSQL half fails in CI and is skipped, with a message, elsewhere.
// FACEID_TEST_PG_URL names the server's admin database; FACEID_TEST_PG=0 skips PostgreSQL deliberately.

const PG_ADMIN = process.env.FACEID_TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REPO_ROOT = path.resolve(__dirname, '..');

/** Checked synchronously (in a child process), so the PostgreSQL suite can be skipped while jest collects tests. */
function pgUnavailable(): string | null {
  if (process.env.FACEID_TEST_PG === '0') return 'FACEID_TEST_PG=0';
  const probe =
    "const {Client}=require('pg');const c=new Client({connectionString:process.argv[1],connectionTimeoutMillis:5000});" +
    'c.connect().then(()=>c.end()).then(()=>process.exit(0),(e)=>{console.error(e.message);process.exit(1)})';
  const r = spawnSync(process.execPath, ['-e', probe, PG_ADMIN], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 15_000 });
  if (r.status === 0) return null;
  return `PostgreSQL is not reachable at ${PG_ADMIN.replace(/:[^:@/]*@/, ':***@')} (${(r.stderr || r.error?.message || 'timeout').trim()})`;
}

const pgReason = pgUnavailable();
const pgSkipped = pgReason !== null && (!process.env.CI || process.env.FACEID_TEST_PG === '0');
if (pgSkipped) console.warn(`storage tests on PostgreSQL skipped: ${pgReason}`);

async function pgAdmin<T>(fn: (c: PgClient) => Promise<T>): Promise<T> {
  const client = new PgClient({ connectionString: PG_ADMIN });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Makes empty databases of one provider and removes them all at the end. */
interface Harness {
  fresh(): Promise<StorageTarget>;
  /** Runs SQL as the owner, outside the repositories (to tamper, or to look). */
  sql(target: StorageTarget, text: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  cleanup(): Promise<void>;
}

function sqliteHarness(): Harness {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-storage-'));
  let n = 0;
  return {
    fresh: async () => ({ provider: 'sqlite', file: path.join(dir, `db${++n}`, 'faceid.db') }),
    sql: async (target, text, params = []) => {
      const db = new Database((target as { file: string }).file);
      try {
        const stmt = db.prepare(text);
        return stmt.reader
          ? (stmt.all(...params) as Record<string, unknown>[])
          : [{ changes: stmt.run(...params).changes }];
      } finally {
        db.close();
      }
    },
    cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

function pgHarness(): Harness {
  const names: string[] = [];
  return {
    fresh: async () => {
      if (pgReason) throw new Error(`PostgreSQL is required in CI: ${pgReason}`);
      const name = `faceid_t_${randomBytes(5).toString('hex')}`;
      await pgAdmin((c) => c.query(`CREATE DATABASE ${name}`));
      names.push(name);
      return { provider: 'postgres', url: PG_ADMIN.replace(/\/[^/?]*(\?|$)/, `/${name}$1`) };
    },
    sql: async (target, text, params = []) => {
      const client = new PgClient({ connectionString: (target as { url: string }).url });
      await client.connect();
      try {
        return (await client.query(text, params.length > 0 ? params : undefined)).rows;
      } finally {
        await client.end();
      }
    },
    cleanup: async () => {
      if (names.length === 0) return;
      await pgAdmin(async (c) => {
        for (const name of names) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      });
    },
  };
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** An identification event's payload (the outbox tests below write no other kind). */
const outcome = (e: StoredEvent) => e.payload as IdentificationEventPayload;

/**
 * Runs a script in another Node process with the TypeScript sources (ts-node), from the repository root: SQLite's
 * locks are per connection, but a second connection in this process would block this thread while it waits.
 * Resolves with its stdout lines; `onLine` sees each line as it arrives (with the child, to write to its stdin).
 */
function tsChild(
  script: string,
  args: string[],
  onLine?: (line: string, child: ChildProcess) => void,
): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, TS_NODE_PROJECT: path.join(REPO_ROOT, 'tsconfig.json') },
    });
    const lines: string[] = [];
    let partial = '';
    let errText = '';
    child.stdout.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        onLine?.(line, child);
      }
    });
    child.stderr.on('data', (d: Buffer) => (errText += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(lines) : reject(new Error(`child exited ${code}: ${errText}`))));
  });
}
const SQLITE_MIGRATIONS = path.join(REPO_ROOT, 'prisma', 'sqlite', 'migrations');
const PG_MIGRATIONS = path.join(REPO_ROOT, 'prisma', 'postgres', 'migrations');
/** The committed migrations, oldest first (the same names for both providers). */
const MIGRATIONS = [
  '20261128200000_init',
  '20261128230000_mis_events',
  '20261129000000_code_resends',
  '20261130000000_workstation_liveness',
  '20261204120000_key_lifecycle',
  '20261204130000_enrollment_roles',
  '20261204140000_audit_hmac',
  '20261205032500_clinic_sms_languages',
  '20261205120000_calibration_histograms',
];

/** A copy of the committed migrations to modify. */
function copyMigrations(provider: 'sqlite' | 'postgres', into: string): string {
  const dir = path.join(into, `migrations-${randomBytes(4).toString('hex')}`);
  fs.cpSync(provider === 'sqlite' ? SQLITE_MIGRATIONS : PG_MIGRATIONS, dir, { recursive: true });
  return dir;
}

const tableExists = async (h: Harness, t: StorageTarget, table: string) =>
  (t.provider === 'sqlite'
    ? await h.sql(t, `SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?`, [table])
    : await h.sql(
        t,
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name = $1`,
        [table],
      )
  ).length === 1;

for (const provider of ['sqlite', 'postgres'] as const) {
  (provider === 'postgres' && pgSkipped ? describe.skip : describe)(`storage (${provider})`, () => {
    const h = provider === 'sqlite' ? sqliteHarness() : pgHarness();
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-migrations-'));
    let target: StorageTarget;
    let storage: Storage;
    let r: Repositories;

    beforeAll(async () => {
      target = await h.fresh();
      storage = await openStorage(target, { auditKeys: AUDIT_KEYS });
      r = storage.repos;
    });

    afterAll(async () => {
      await storage?.close();
      await h.cleanup();
      fs.rmSync(scratch, { recursive: true, force: true });
    });

    describe('migrations', () => {
      it('apply on an empty database and record themselves as Prisma does', async () => {
        expect(storage.migration).toEqual({ applied: MIGRATIONS, total: MIGRATIONS.length });
        const rows = await h.sql(
          target,
          `SELECT "migration_name", "checksum", "finished_at", "rolled_back_at", "applied_steps_count" FROM "_prisma_migrations"`,
        );
        const file = (name: string) =>
          fs.readFileSync(
            path.join(provider === 'sqlite' ? SQLITE_MIGRATIONS : PG_MIGRATIONS, name, 'migration.sql'),
            'utf8',
          );
        expect(rows).toEqual(
          MIGRATIONS.map((name) => ({
            migration_name: name,
            checksum: sha256(file(name)),
            finished_at: expect.anything(),
            rolled_back_at: null,
            applied_steps_count: 1,
          })),
        );
        for (const table of [
          'Clinic',
          'Workstation',
          'Patient',
          'Template',
          'IdentificationSession',
          'Verdict',
          'AuditLog',
          'Event',
          'OneTimeCode',
          'MisClient',
          'WebhookSubscription',
          'WebhookDelivery',
        ]) {
          expect(await tableExists(h, target, table)).toBe(true);
        }
      });

      it('are idempotent on restart and keep the data', async () => {
        const clinic = await r.clinics.create('Restart clinic');
        const again = await openStorage(target, { auditKeys: AUDIT_KEYS });
        try {
          expect(again.migration).toEqual({ applied: [], total: MIGRATIONS.length });
          expect(await again.repos.clinics.get(clinic.id)).toEqual(clinic);
        } finally {
          await again.close();
        }
        expect(await h.sql(target, `SELECT "id" FROM "_prisma_migrations"`)).toHaveLength(MIGRATIONS.length);
      });

      it('refuse to start when an applied migration was modified', async () => {
        const dir = copyMigrations(provider, scratch);
        fs.appendFileSync(path.join(dir, '20261128200000_init', 'migration.sql'), '\n-- edited later\n');
        const err = await openStorage(target, { migrationsDir: dir, auditKeys: AUDIT_KEYS }).then(
          () => new Error('opened'),
          (e: unknown) => e,
        );
        expect(err).toMatchObject({
          code: 'migration_checksum_mismatch',
          message: expect.stringMatching(/^Migration 20261128200000_init was modified after it was applied/),
        });
      });

      it('accept the same file with other line endings (a Windows checkout)', async () => {
        const dir = copyMigrations(provider, scratch);
        const file = path.join(dir, '20261128200000_init', 'migration.sql');
        fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/\n/g, '\r\n'));
        expect((await migrate(target, { migrationsDir: dir })).applied).toEqual([]);
      });

      it('refuse a database migrated by a build with migrations this one lacks', async () => {
        const dir = copyMigrations(provider, scratch);
        fs.renameSync(path.join(dir, '20261128200000_init'), path.join(dir, '20261128200000_renamed'));
        await expect(migrate(target, { migrationsDir: dir })).rejects.toMatchObject({
          code: 'migration_unknown',
          message: expect.stringContaining('20261128200000_init'),
        });
      });

      it('apply a new migration in one transaction: a failing one leaves nothing behind, the fixed one applies', async () => {
        const t = await h.fresh();
        const dir = copyMigrations(provider, scratch);
        const second = path.join(dir, '20991231000000_extra');
        fs.mkdirSync(second);
        fs.writeFileSync(
          path.join(second, 'migration.sql'),
          'CREATE TABLE "Extra" ("id" TEXT NOT NULL);\nCREATE TABLE oops (;\n',
        );
        await expect(migrate(t, { migrationsDir: dir })).rejects.toMatchObject({
          code: 'migration_failed',
          message: expect.stringContaining('20991231000000_extra'),
        });
        expect(await tableExists(h, t, 'Extra')).toBe(false);
        if (provider === 'sqlite') {
          // One transaction for the whole run: the first migration (and the bookkeeping table) went with it.
          expect(await tableExists(h, t, 'Clinic')).toBe(false);
          expect(await tableExists(h, t, '_prisma_migrations')).toBe(false);
        } else {
          // One transaction per migration: the first one stays applied and recorded.
          const recorded = await h.sql(t, `SELECT "migration_name" FROM "_prisma_migrations"`);
          expect(recorded).toEqual(MIGRATIONS.map((migration_name) => ({ migration_name })));
        }

        fs.writeFileSync(path.join(second, 'migration.sql'), 'CREATE TABLE "Extra" ("id" TEXT NOT NULL);\n');
        const result = await migrate(t, { migrationsDir: dir });
        expect(result.applied).toEqual(
          provider === 'sqlite' ? [...MIGRATIONS, '20991231000000_extra'] : ['20991231000000_extra'],
        );
        expect(await tableExists(h, t, 'Extra')).toBe(true);
      });

      it('run once when several processes start together', async () => {
        const t = await h.fresh();
        let results: { applied: string[] }[];
        if (t.provider === 'postgres') {
          results = await Promise.all(Array.from({ length: 4 }, () => migrate(t)));
        } else {
          // Separate processes, released together once all are loaded, on a file none has created yet.
          const script =
            `const { migrate } = require('./src/storage/migrate'); console.log('loaded');` +
            `process.stdin.once('data', () => migrate({ provider: 'sqlite', file: process.argv[1] })` +
            `.then((r) => console.log(JSON.stringify(r)), (e) => { console.error(e); process.exit(1); }));`;
          const waiting: ChildProcess[] = [];
          const run = async () => {
            const lines = await tsChild(script, [t.file], (line, child) => {
              if (line === 'loaded' && waiting.push(child) === 3) for (const c of waiting) c.stdin!.end('go\n');
            });
            return JSON.parse(lines[1]) as { applied: string[] };
          };
          results = await Promise.all([run(), run(), run()]);
        }
        expect(results.map((x) => x.applied.length).sort()).toEqual([
          ...results.map(() => 0).slice(1),
          MIGRATIONS.length,
        ]);
        expect(await h.sql(t, `SELECT "id" FROM "_prisma_migrations"`)).toHaveLength(MIGRATIONS.length);
      }, 60_000);

      if (provider === 'sqlite') {
        it('leave the file in WAL mode, readable by its owner only', async () => {
          const file = (target as { file: string }).file;
          expect(await h.sql(target, 'PRAGMA journal_mode')).toEqual([{ journal_mode: 'wal' }]);
          expect(fs.statSync(file).mode & 0o777).toBe(0o600);
          expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
        });

        it('open every transaction with the write lock (BEGIN IMMEDIATE)', async () => {
          const db = await openDb(target);
          const other = new Database((target as { file: string }).file, { timeout: 0 });
          try {
            await db.tx(async (tx) => {
              await tx.clinic.findMany({ take: 1 }); // a read only: a deferred BEGIN would hold no lock yet
              expect(() => other.exec('BEGIN IMMEDIATE')).toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
            });
            other.exec('BEGIN IMMEDIATE'); // free again after the commit
            other.exec('ROLLBACK');
          } finally {
            other.close();
            await db.close();
          }
        });
      }
    });

    describe('clinics, workstations and patients', () => {
      it('create the first clinic once, whichever of several processes starting together gets there first', async () => {
        // A database of its own, empty; on PostgreSQL two storages with their own pools, as two gateways would have
        // (SQLite serves one gateway process; better-sqlite3 waits synchronously, so two in one process would block).
        const empty = await h.fresh();
        const a = await openStorage(empty, { auditKeys: AUDIT_KEYS });
        const b = provider === 'postgres' ? await openStorage(empty, { auditKeys: AUDIT_KEYS }) : a;
        try {
          const made = await Promise.all([
            ...Array.from({ length: 4 }, () => a.repos.clinics.createFirst('Demo clinic')),
            ...Array.from({ length: 4 }, () => b.repos.clinics.createFirst('Demo clinic')),
          ]);
          expect(made.filter((c) => c !== null)).toHaveLength(1);
          expect(await a.repos.clinics.count()).toBe(1);
          expect(await b.repos.clinics.createFirst('Demo clinic')).toBeNull();
        } finally {
          await a.close();
          if (b !== a) await b.close();
        }
      });

      it('create, read and count clinics', async () => {
        const before = await r.clinics.count();
        const clinic = await r.clinics.create('Polyclinic No. 1');
        expect(await r.clinics.count()).toBe(before + 1);
        expect(clinic).toEqual({
          id: expect.stringMatching(/^[0-9a-f-]{36}$/),
          name: 'Polyclinic No. 1',
          createdAt: expect.any(Date),
          smsLanguages: 'kk+ru',
        });
        expect(await r.clinics.get(clinic.id)).toEqual(clinic);
        expect(await r.clinics.get('00000000-0000-4000-8000-000000000000')).toBeNull();
      });

      it("set the languages of a clinic's SMS texts; a value this build does not know reads as the default", async () => {
        const clinic = await r.clinics.create('Polyclinic No. 2');
        expect(await r.clinics.setSmsLanguages(clinic.id, 'ru')).toEqual({ previous: 'kk+ru' });
        expect(await r.clinics.setSmsLanguages(clinic.id, 'kk')).toEqual({ previous: 'ru' });
        expect((await r.clinics.get(clinic.id))?.smsLanguages).toBe('kk');
        expect((await r.clinics.list()).find((c) => c.id === clinic.id)?.smsLanguages).toBe('kk');
        expect(await r.clinics.setSmsLanguages('00000000-0000-4000-8000-000000000000', 'ru')).toBeNull();
        // Written by a newer build: read as kk+ru, and replaced as such.
        const db = await openDb(target);
        try {
          await db.run((c) => c.clinic.update({ where: { id: clinic.id }, data: { smsLanguages: 'kk+ru+en' } }));
        } finally {
          await db.close();
        }
        expect((await r.clinics.get(clinic.id))?.smsLanguages).toBe('kk+ru');
        expect(await r.clinics.setSmsLanguages(clinic.id, 'ru')).toEqual({ previous: 'kk+ru' });
      });

      it('find a workstation by its key hash only', async () => {
        const clinic = await r.clinics.create('C');
        const keyHash = sha256(randomBytes(8).toString('hex'));
        const ws = await r.workstations.create(clinic.id, 'Desk 1', keyHash);
        expect(ws).toEqual({
          id: expect.any(String),
          clinicId: clinic.id,
          name: 'Desk 1',
          createdAt: expect.any(Date),
          revokedAt: null,
        });
        expect(await r.workstations.findByKeyHash(keyHash)).toEqual(ws);
        expect(await r.workstations.findByKeyHash(sha256('other'))).toBeNull();
        await expect(r.workstations.create(clinic.id, 'Desk 2', keyHash)).rejects.toThrow();
        await expect(r.workstations.create('no-such-clinic', 'Desk', sha256('x'))).rejects.toMatchObject({
          code: 'reference_not_found',
        });
      });

      it('upsert a patient once per clinic and IIN, concurrently too', async () => {
        const a = await r.clinics.create('A');
        const b = await r.clinics.create('B');
        const p = await r.patients.upsert(a.id, '850412300125');
        expect(p).toEqual({ id: expect.any(String), clinicId: a.id, iin: '850412300125', createdAt: expect.any(Date) });
        expect(await r.patients.upsert(a.id, '850412300125')).toEqual(p);
        expect(await r.patients.find(a.id, '850412300125')).toEqual(p);
        // The same person at another clinic is another patient, and one clinic cannot see the other's.
        const inB = await r.patients.upsert(b.id, '850412300125');
        expect(inB.id).not.toBe(p.id);
        expect(await r.patients.find(b.id, '990101300123')).toBeNull();
        const many = await Promise.all(Array.from({ length: 8 }, () => r.patients.upsert(a.id, '900101300123')));
        expect(new Set(many.map((x) => x.id)).size).toBe(1);
      });
    });

    describe('templates', () => {
      const enc = (n: number) => ({
        keyId: `k${n}`,
        iv: Buffer.alloc(12, n),
        ciphertext: randomBytes(2048),
        tag: Buffer.alloc(16, 255 - n),
      });
      // Who changes the templates here (their MIS events and audit entries: test/enrollment-roles.test.ts).
      const admin = { kind: 'admin', id: null } as const;
      const change = { actor: admin, images: 1, confirmation: null };

      it('replace revokes the active template and stores the new one byte for byte', async () => {
        const clinic = await r.clinics.create('T');
        const patient = await r.patients.upsert(clinic.id, '700101300111');
        expect(await r.templates.active(clinic.id, patient.id)).toBeNull();
        const first = enc(1);
        const t1 = (await r.templates.replace(clinic.id, patient.id, first, change)).template;
        expect(t1).toEqual({
          ...first,
          id: expect.any(String),
          clinicId: clinic.id,
          patientId: patient.id,
          createdAt: expect.any(Date),
          revokedAt: null,
        });
        expect(Buffer.isBuffer(t1.ciphertext)).toBe(true);
        expect(await r.templates.active(clinic.id, patient.id)).toEqual(t1);

        const second = enc(2);
        const t2 = (await r.templates.replace(clinic.id, patient.id, second, change)).template;
        const active = await r.templates.active(clinic.id, patient.id);
        expect(active).toEqual(t2);
        expect(active!.ciphertext.equals(second.ciphertext)).toBe(true);
        expect(await r.templates.revoke(clinic.id, patient.id, admin)).toBe(1); // t1 was already revoked: one active
        expect(await r.templates.revoke(clinic.id, patient.id, admin)).toBe(0);
        expect(await r.templates.active(clinic.id, patient.id)).toBeNull();
      });

      it('stay inside their clinic', async () => {
        const a = await r.clinics.create('A');
        const b = await r.clinics.create('B');
        const patient = await r.patients.upsert(a.id, '700101300222');
        await r.templates.replace(a.id, patient.id, enc(3), change);
        expect(await r.templates.active(b.id, patient.id)).toBeNull();
        expect(await r.templates.revoke(b.id, patient.id, admin)).toBe(0);
        await expect(r.templates.replace(b.id, patient.id, enc(4), change)).rejects.toMatchObject({
          code: 'reference_not_found',
        });
        expect(await r.templates.active(a.id, patient.id)).toMatchObject({ keyId: 'k3' });
      });

      it('concurrent replacements leave exactly one active template', async () => {
        const clinic = await r.clinics.create('T2');
        const patient = await r.patients.upsert(clinic.id, '700101300333');
        await Promise.all(
          Array.from({ length: 6 }, (_, i) => r.templates.replace(clinic.id, patient.id, enc(10 + i), change)),
        );
        expect(await r.templates.revoke(clinic.id, patient.id, admin)).toBe(1);
      });
    });

    describe('sessions and verdicts', () => {
      let clinicId: string;
      let otherClinicId: string;
      let workstationId: string;
      let patientId: string;

      beforeAll(async () => {
        clinicId = (await r.clinics.create('S')).id;
        otherClinicId = (await r.clinics.create('S2')).id;
        workstationId = (await r.workstations.create(clinicId, 'Desk', sha256(randomBytes(8).toString('hex')))).id;
        patientId = (await r.patients.upsert(clinicId, '650505400444')).id;
      });

      const newSession = async (ttlMs = 60_000, patient = patientId) => {
        const tokenHash = sha256(randomBytes(16).toString('hex'));
        const session = await r.sessions.create({
          clinicId,
          workstationId,
          patientId: patient,
          appointmentId: `apt-${randomBytes(3).toString('hex')}`,
          channel: 'in_person',
          tokenHash,
          tokenExpiresAt: new Date(Date.now() + ttlMs),
        });
        return { session, tokenHash };
      };

      it('create a session and read it in its clinic only', async () => {
        const { session } = await newSession();
        expect(session).toEqual({
          id: expect.any(String),
          clinicId,
          workstationId,
          patientId,
          appointmentId: expect.stringMatching(/^apt-/),
          channel: 'in_person',
          state: 'created',
          tokenExpiresAt: expect.any(Date),
          tokenUsedAt: null,
          createdAt: expect.any(Date),
          finishedAt: null,
          refusalReason: null,
        });
        expect(session).not.toHaveProperty('tokenHash');
        expect(await r.sessions.get(clinicId, session.id)).toEqual(session);
        expect(await r.sessions.get(otherClinicId, session.id)).toBeNull();
      });

      it('refuse a workstation or patient of another clinic', async () => {
        const foreignPatient = (await r.patients.upsert(otherClinicId, '650505400444')).id;
        await expect(newSession(60_000, foreignPatient)).rejects.toMatchObject({ code: 'reference_not_found' });
        await expect(
          r.sessions.create({
            clinicId: otherClinicId,
            workstationId,
            patientId: foreignPatient,
            appointmentId: 'a',
            channel: 'remote',
            tokenHash: sha256('cross'),
            tokenExpiresAt: new Date(Date.now() + 60_000),
          }),
        ).rejects.toMatchObject({ code: 'reference_not_found' });
      });

      it('consume a token once', async () => {
        const { session, tokenHash } = await newSession();
        const now = new Date();
        const used = await r.sessions.consumeToken(tokenHash, now);
        expect(used).toEqual({ ...session, state: 'connected', tokenUsedAt: now });
        expect(await r.sessions.consumeToken(tokenHash, new Date())).toBeNull();
        expect(await r.sessions.consumeToken(sha256('unknown'), new Date())).toBeNull();
      });

      it('let exactly one of several concurrent uses of a token win', async () => {
        const { tokenHash } = await newSession();
        const results = await Promise.all(
          Array.from({ length: 8 }, () => r.sessions.consumeToken(tokenHash, new Date())),
        );
        expect(results.filter((x) => x !== null)).toHaveLength(1);
      });

      it('admit a face session only while the patient has attempts left, counting failed and running ones atomically', async () => {
        // A patient of its own: six tokens opened in advance, then used all at once, against a limit of three.
        const patient = (await r.patients.upsert(clinicId, '900101300555')).id;
        const since = new Date(Date.now() - 60_000);
        const failed = await newSession(60_000, patient);
        expect(await r.sessions.consumeToken(failed.tokenHash, new Date())).not.toBeNull();
        await r.verdicts.finish({
          clinicId,
          sessionId: failed.session.id,
          result: 'no_match',
          method: 'face',
          score: 0.2,
          liveness: null,
          timings: null,
        });
        const tokens = await Promise.all(Array.from({ length: 6 }, () => newSession(60_000, patient)));
        const results = await Promise.all(
          tokens.map((t) => r.sessions.admitFace(t.tokenHash, new Date(), { since, max: 3 })),
        );
        // One failed + two running = three: the other four wait for a result, their tokens unused.
        expect(results.filter((x) => x.ok)).toHaveLength(2);
        const refused = results.filter((x) => !x.ok);
        expect(refused).toHaveLength(4);
        for (const x of refused)
          expect(x).toMatchObject({ reason: 'attempts_exceeded', clinicId, failed: 1, inFlight: 2 });
        // A refused token is still unused (the session can go to the code path); an unknown one is just invalid.
        const unused = tokens.find((_, i) => !results[i].ok)!;
        expect(await r.sessions.get(clinicId, unused.session.id)).toMatchObject({
          state: 'created',
          tokenUsedAt: null,
        });
        expect(await r.sessions.admitFace(sha256('unknown'), new Date(), { since, max: 3 })).toEqual({
          ok: false,
          reason: 'token_invalid',
        });
        // Another patient is not held up by this one's attempts.
        const mine = await newSession();
        expect(await r.sessions.admitFace(mine.tokenHash, new Date(), { since, max: 3 })).toMatchObject({
          ok: true,
          session: { id: mine.session.id, state: 'connected' },
        });
      });

      it("end a patient's earlier unused face tokens when a new one is opened", async () => {
        const patient = (await r.patients.upsert(clinicId, '900101300666')).id;
        const first = await newSession(60_000, patient);
        const used = await newSession(60_000, patient);
        expect(await r.sessions.consumeToken(used.tokenHash, new Date())).not.toBeNull();
        expect(await r.sessions.supersedeFaceTokens(clinicId, patient, new Date())).toBe(1);
        expect(await r.sessions.consumeToken(first.tokenHash, new Date())).toBeNull();
        expect(await r.sessions.get(clinicId, used.session.id)).toMatchObject({ state: 'connected' });
        expect(await r.sessions.supersedeFaceTokens(otherClinicId, patient, new Date())).toBe(0);
      });

      it('refuse an expired token (expiry itself included)', async () => {
        const { session, tokenHash } = await newSession(1000);
        expect(await r.sessions.consumeToken(tokenHash, session.tokenExpiresAt)).toBeNull();
        expect(await r.sessions.consumeToken(tokenHash, new Date(session.tokenExpiresAt.getTime() + 1))).toBeNull();
        // Still unused, so before the expiry it works.
        expect(await r.sessions.consumeToken(tokenHash, new Date(session.tokenExpiresAt.getTime() - 1))).not.toBeNull();
      });

      it('finish a session with one verdict, in one transaction', async () => {
        const { session } = await newSession();
        const input = {
          clinicId,
          sessionId: session.id,
          result: 'match' as const,
          method: 'face' as const,
          score: 0.8125,
          liveness: { mean: 0.42, frames: 3, blink: true },
          timings: { totalMs: 1234, frames: [12.5, 13] },
        };
        const verdict = await r.verdicts.finish(input);
        expect(verdict).toEqual({ ...input, id: expect.any(String), createdAt: expect.any(Date) });
        const finished = await r.sessions.get(clinicId, session.id);
        expect(finished).toMatchObject({ state: 'finished', finishedAt: verdict!.createdAt });
        expect(await r.verdicts.forSession(clinicId, session.id)).toEqual(verdict);
        expect(await r.verdicts.forSession(otherClinicId, session.id)).toBeNull();

        expect(await r.verdicts.finish({ ...input, result: 'no_match', score: 0.1 })).toBeNull();
        expect(await r.verdicts.forSession(clinicId, session.id)).toEqual(verdict);
      });

      it('store one verdict when several finish a session at once', async () => {
        const { session } = await newSession();
        const results = await Promise.all(
          (['match', 'no_match', 'timeout', 'error'] as const).map((result) =>
            r.verdicts.finish({
              clinicId,
              sessionId: session.id,
              result,
              method: 'face',
              score: null,
              liveness: null,
              timings: null,
            }),
          ),
        );
        const stored = results.filter((v) => v !== null);
        expect(stored).toHaveLength(1);
        expect(await r.verdicts.forSession(clinicId, session.id)).toEqual(stored[0]);
      });

      it("refuse a verdict for another clinic's session, leaving the session as it was", async () => {
        const { session } = await newSession();
        await expect(
          r.verdicts.finish({
            clinicId: otherClinicId,
            sessionId: session.id,
            result: 'match',
            method: 'face',
            score: 1,
            liveness: null,
            timings: null,
          }),
        ).rejects.toMatchObject({ code: 'reference_not_found' });
        expect(await r.sessions.get(clinicId, session.id)).toEqual(session);
      });

      it('count failed face sessions of a patient since a time', async () => {
        const patient = (await r.patients.upsert(clinicId, '650505400555')).id;
        const since = new Date(Date.now() - 1000);
        const finishWith = async (
          result: 'match' | 'no_match' | 'spoof_suspected' | 'timeout',
          method: 'face' | 'code' = 'face',
        ) => {
          const { session } = await newSession(60_000, patient);
          await r.verdicts.finish({
            clinicId,
            sessionId: session.id,
            result,
            method,
            score: null,
            liveness: null,
            timings: null,
          });
        };
        await finishWith('no_match');
        await finishWith('spoof_suspected');
        await finishWith('match');
        await finishWith('timeout');
        await finishWith('no_match', 'code');
        await newSession(60_000, patient); // not finished
        expect(await r.sessions.countFailedFace(clinicId, patient, since)).toBe(2);
        expect(await r.sessions.countFailedFace(clinicId, patient, new Date(Date.now() + 1000))).toBe(0);
        expect(await r.sessions.countFailedFace(otherClinicId, patient, since)).toBe(0);
        // Another patient of the clinic, whose only face session matched.
        const matched = (await r.patients.upsert(clinicId, '650505400666')).id;
        const { session } = await newSession(60_000, matched);
        await r.verdicts.finish({
          clinicId,
          sessionId: session.id,
          result: 'match',
          method: 'face',
          score: 0.9,
          liveness: null,
          timings: null,
        });
        expect(await r.sessions.countFailedFace(clinicId, matched, since)).toBe(0);
      });

      describe('MIS event outbox', () => {
        const face = (sessionId: string, result: 'match' | 'no_match' = 'match') => ({
          clinicId,
          sessionId,
          result,
          method: 'face' as const,
          score: 0.71,
          liveness: { passive: 0.9, blink: true },
          timings: { firstFrameToVerdictMs: 1234, framesReceived: 20, framesAnalysed: 12, framesDropped: 8 },
        });
        const codeHash = () => `k1:${sha256(randomBytes(8).toString('hex'))}`;
        /** A unit of work that only marks the code used (the only way to mark one). */
        const markUsed = (id: string, max: number, now: Date) => r.work.run((w) => w.codes.markUsed(id, max, now));
        const auditFailure = {
          sqlite: {
            on: `CREATE TRIGGER "AuditLog_fail" BEFORE INSERT ON "AuditLog" BEGIN SELECT RAISE(ABORT, 'audit insert refused'); END`,
            off: [`DROP TRIGGER "AuditLog_fail"`],
          },
          postgres: {
            on:
              `CREATE FUNCTION audit_fail() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit insert refused'; END $$ ` +
              `LANGUAGE plpgsql; CREATE TRIGGER "AuditLog_fail" BEFORE INSERT ON "AuditLog" FOR EACH ROW EXECUTE FUNCTION audit_fail()`,
            off: [`DROP TRIGGER "AuditLog_fail" ON "AuditLog"`, `DROP FUNCTION audit_fail()`],
          },
        }[provider];
        /** The audit entry a verdict of this session carries. */
        const verdictAudit = (sessionId: string, detail: Record<string, unknown> = { method: 'face' }) => ({
          clinicId,
          actor: 'system',
          action: 'session.verdict',
          subject: sessionId,
          detail,
        });
        const auditOf = async (sessionId: string) =>
          (await r.audit.entriesAfter(0, 100_000)).filter((e) => e.subject === sessionId);
        /** A session on the code path, with its code. */
        const onCodePath = async () => {
          const { session } = await newSession();
          await r.sessions.beginCodePath({
            clinicId,
            sessionId: session.id,
            codeHash: codeHash(),
            codeExpiresAt: new Date(Date.now() + 60_000),
            refusal: { reason: 'patient_refused_photo' },
          });
          return { session, code: (await r.codes.forSession(clinicId, session.id))! };
        };
        const codeMatch = (sessionId: string) => ({
          clinicId,
          sessionId,
          result: 'match' as const,
          method: 'code' as const,
          score: null,
          liveness: null,
          timings: { codeAgeMs: 1000, wrongAttempts: 0 },
        });
        const eventFailure = {
          sqlite: {
            on: `CREATE TRIGGER "Event_fail" BEFORE INSERT ON "Event" BEGIN SELECT RAISE(ABORT, 'event insert refused'); END`,
            off: [`DROP TRIGGER "Event_fail"`],
          },
          postgres: {
            on:
              `CREATE FUNCTION event_fail() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'event insert refused'; END $$ ` +
              `LANGUAGE plpgsql; CREATE TRIGGER "Event_fail" BEFORE INSERT ON "Event" FOR EACH ROW EXECUTE FUNCTION event_fail()`,
            off: [`DROP TRIGGER "Event_fail" ON "Event"`, `DROP FUNCTION event_fail()`],
          },
        }[provider];

        it('write the verdict, the finished session and its event in one transaction', async () => {
          const before = await r.events.latestSeq(clinicId);
          const woken: string[] = [];
          const off = r.events.onCommitted((c) => woken.push(c));
          const { session } = await newSession();
          const verdict = await r.verdicts.finish(face(session.id));
          off();
          expect(verdict).not.toBeNull();
          const [event] = await r.events.after(clinicId, before, 10);
          expect(event.seq).toBe(before + 1);
          expect(await r.events.latestSeq(clinicId)).toBe(before + 1);
          expect(event.payload).toEqual({
            id: event.id,
            type: 'identification.verdict',
            version: 1,
            clinicId,
            seq: before + 1,
            sessionId: session.id,
            appointmentId: session.appointmentId,
            iin: '650505400444',
            channel: 'in_person',
            method: 'face',
            result: 'match',
            reason: null,
            score: 0.71,
            liveness: { passive: 0.9, blink: true },
            timings: { firstFrameToVerdictMs: 1234, framesReceived: 20, framesAnalysed: 12, framesDropped: 8 },
            occurredAt: verdict!.createdAt.toISOString(),
          });
          expect(await r.events.get(clinicId, event.id)).toEqual(event);
          expect(await r.events.get(otherClinicId, event.id)).toBeNull();
          expect(woken).toEqual([clinicId]);
        });

        it('leave no verdict and no finished session when the event cannot be written', async () => {
          const { session } = await newSession();
          const before = await r.events.latestSeq(clinicId);
          let woken = 0;
          const off = r.events.onCommitted(() => woken++);
          await h.sql(target, eventFailure.on);
          try {
            // (SQLite's adapter reports a trigger's abort as a constraint error without its text.)
            await expect(r.verdicts.finish(face(session.id))).rejects.toThrow();
          } finally {
            for (const q of eventFailure.off) await h.sql(target, q);
            off();
          }
          expect(await r.verdicts.forSession(clinicId, session.id)).toBeNull();
          expect(await r.sessions.get(clinicId, session.id)).toEqual(session);
          expect(await r.events.latestSeq(clinicId)).toBe(before);
          expect(woken).toBe(0);
          // And once the database accepts events again, the same verdict goes through.
          expect(await r.verdicts.finish(face(session.id))).not.toBeNull();
          expect(await r.events.latestSeq(clinicId)).toBe(before + 1);
        });

        it('write a verdict and its audit entry in one transaction: when the audit entry cannot be written, neither is', async () => {
          const { session } = await newSession();
          const before = await r.events.latestSeq(clinicId);
          const chainLength = (await r.audit.entriesAfter(0, 100_000)).length;
          let woken = 0;
          const off = r.events.onCommitted(() => woken++);
          await h.sql(target, auditFailure.on);
          try {
            await expect(r.verdicts.finish(face(session.id), { audit: verdictAudit(session.id) })).rejects.toThrow();
          } finally {
            for (const q of auditFailure.off) await h.sql(target, q);
            off();
          }
          expect(await r.verdicts.forSession(clinicId, session.id)).toBeNull();
          expect(await r.sessions.get(clinicId, session.id)).toEqual(session);
          expect(await r.events.latestSeq(clinicId)).toBe(before);
          expect((await r.audit.entriesAfter(0, 100_000)).length).toBe(chainLength);
          expect(woken).toBe(0);

          // Once the audit log takes entries again: the verdict, its event and its audit entry, all there.
          const verdict = await r.verdicts.finish(face(session.id), { audit: verdictAudit(session.id) });
          expect(verdict).not.toBeNull();
          expect(await r.events.latestSeq(clinicId)).toBe(before + 1);
          const [entry, ...more] = await auditOf(session.id);
          expect(more).toEqual([]);
          expect(entry).toMatchObject({ ...verdictAudit(session.id), keyId: 'test1' });
          expect(await verifyAuditChain(r.audit)).toBeNull();
        });

        it('write no audit entry for a verdict that is not stored, and none without being given one', async () => {
          const { session } = await newSession();
          expect(await r.verdicts.finish(face(session.id))).not.toBeNull();
          expect(await auditOf(session.id)).toEqual([]);
          // Finished already: no second verdict, and no audit entry for it either.
          expect(await r.verdicts.finish(face(session.id, 'no_match'), { audit: verdictAudit(session.id) })).toBeNull();
          expect(await auditOf(session.id)).toEqual([]);
        });

        it('mark a code used only with its verdict: a unit that cannot store the verdict leaves the code unused', async () => {
          // The sweep expired the session first: the code's verdict cannot finish it, and the unit throws.
          const expired = await onCodePath();
          expect(
            await r.verdicts.finish({
              ...codeMatch(expired.session.id),
              result: 'expired',
              method: 'none',
              timings: null,
            }),
          ).not.toBeNull();
          const lost = new Error('session finished meanwhile');
          await expect(
            r.work.run(async (w) => {
              expect(await w.codes.markUsed(expired.code.id, 5, new Date())).toBe(true);
              if (!(await w.verdicts.finish(codeMatch(expired.session.id)))) throw lost;
            }),
          ).rejects.toBe(lost);
          expect((await r.codes.forSession(clinicId, expired.session.id))!.usedAt).toBeNull();
          expect(await r.verdicts.forSession(clinicId, expired.session.id)).toMatchObject({ result: 'expired' });

          // The verdict's event cannot be written: the code stays unused, the session on the code path.
          const failing = await onCodePath();
          await h.sql(target, eventFailure.on);
          try {
            await expect(
              r.work.run(async (w) => {
                await w.codes.markUsed(failing.code.id, 5, new Date());
                return w.verdicts.finish(codeMatch(failing.session.id), { audit: verdictAudit(failing.session.id) });
              }),
            ).rejects.toThrow();
          } finally {
            for (const q of eventFailure.off) await h.sql(target, q);
          }
          expect((await r.codes.forSession(clinicId, failing.session.id))!.usedAt).toBeNull();
          expect(await r.sessions.get(clinicId, failing.session.id)).toMatchObject({ state: 'code_pending' });
          expect(await auditOf(failing.session.id)).toEqual([]);

          // And when it can: the code used, the verdict, its event and audit entry, together.
          const used = new Date();
          const verdict = await r.work.run(async (w) => {
            expect(await w.codes.markUsed(failing.code.id, 5, used)).toBe(true);
            return w.verdicts.finish(codeMatch(failing.session.id), { audit: verdictAudit(failing.session.id) });
          });
          expect(verdict).toMatchObject({ method: 'code', result: 'match' });
          expect((await r.codes.forSession(clinicId, failing.session.id))!.usedAt).toEqual(used);
          expect(await auditOf(failing.session.id)).toEqual([
            expect.objectContaining({ action: 'session.verdict', subject: failing.session.id }),
          ]);
        });

        it('let one of two concurrent uses of a code win, with its verdict', async () => {
          const { session, code } = await onCodePath();
          const use = () =>
            r.work
              .run(async (w) => {
                if (!(await w.codes.markUsed(code.id, 5, new Date()))) return null;
                const verdict = await w.verdicts.finish(codeMatch(session.id), { audit: verdictAudit(session.id) });
                if (!verdict) throw new Error('no verdict');
                return verdict;
              })
              .catch((err: unknown) => err);
          const results = await Promise.all([use(), use(), use()]);
          expect(results.filter((x) => x !== null && !(x instanceof Error))).toHaveLength(1);
          expect(results.filter((x) => x instanceof Error)).toEqual([]);
          expect(await auditOf(session.id)).toHaveLength(1);
        });

        it('keep the audit chain intact when verdicts append their entries concurrently with other appends', async () => {
          const sessions = await Promise.all(Array.from({ length: 10 }, () => newSession()));
          const verdicts = sessions.map(({ session }) =>
            r.verdicts.finish(face(session.id), { audit: verdictAudit(session.id, { i: session.id.length }) }),
          );
          const appends = Array.from({ length: 10 }, (_, i) =>
            r.audit.append({ clinicId, actor: 'system', action: 'test.concurrent', subject: `c${i}`, detail: { i } }),
          );
          if (target.provider === 'postgres') {
            // Another process's pool too: PostgreSQL's advisory lock orders the chain across processes.
            const second = await openStorage(target, { auditKeys: AUDIT_KEYS });
            try {
              const others = await Promise.all([newSession(), newSession(), newSession()]);
              await Promise.all([
                ...verdicts,
                ...appends,
                ...others.map(({ session }) =>
                  second.repos.verdicts.finish(face(session.id), { audit: verdictAudit(session.id) }),
                ),
              ]);
              for (const { session } of others) expect(await auditOf(session.id)).toHaveLength(1);
            } finally {
              await second.close();
            }
          } else {
            await Promise.all([...verdicts, ...appends]);
          }
          for (const { session } of sessions) expect(await auditOf(session.id)).toHaveLength(1);
          const all = await r.audit.entriesAfter(0, 100_000);
          for (let i = 1; i < all.length; i++) expect(all[i].prevHash).toBe(all[i - 1].hash);
          expect(await verifyAuditChain(r.audit)).toBeNull();
        });

        it('number one clinic’s events 1, 2, 3... without gaps under concurrent verdicts, apart from other clinics', async () => {
          const own = await r.clinics.create('Busy clinic');
          const desk = (await r.workstations.create(own.id, 'Desk', sha256(randomBytes(8).toString('hex')))).id;
          const patient = (await r.patients.upsert(own.id, '650505400777')).id;
          const sessions = await Promise.all(
            Array.from({ length: 12 }, (_, i) =>
              r.sessions.create({
                clinicId: own.id,
                workstationId: desk,
                patientId: patient,
                appointmentId: `apt-busy-${i}`,
                channel: 'in_person',
                tokenHash: sha256(randomBytes(16).toString('hex')),
                tokenExpiresAt: new Date(Date.now() + 60_000),
              }),
            ),
          );
          const otherBefore = await r.events.latestSeq(clinicId);
          await Promise.all(sessions.map((x) => r.verdicts.finish({ ...face(x.id), clinicId: own.id })));
          const events = await r.events.after(own.id, 0, 100);
          expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
          expect(new Set(events.map((e) => outcome(e).sessionId))).toEqual(new Set(sessions.map((x) => x.id)));
          expect(await r.events.latestSeq(clinicId)).toBe(otherBefore);
          expect(await r.events.after(own.id, 10, 100)).toEqual(events.slice(10));
        });

        it('write one event for a session however many finish it at once', async () => {
          const { session } = await newSession();
          const before = await r.events.latestSeq(clinicId);
          const results = await Promise.all([1, 2, 3, 4].map(() => r.verdicts.finish(face(session.id))));
          expect(results.filter((v) => v !== null)).toHaveLength(1);
          expect((await r.events.after(clinicId, before, 10)).map((e) => outcome(e).sessionId)).toEqual([session.id]);
        });

        it('refuse the photo: the code path starts with a refused event; only a code verdict can end it', async () => {
          const { session } = await newSession();
          const before = await r.events.latestSeq(clinicId);
          const ever = [new Date(0), new Date(Date.now() + 3_600_000)] as const;
          const countsBefore = await r.events.outcomeCounts(clinicId, ...ever);
          const started = await r.sessions.beginCodePath({
            clinicId,
            sessionId: session.id,
            codeHash: codeHash(),
            codeExpiresAt: new Date(Date.now() + 300_000),
            refusal: { reason: 'patient_refused_photo' },
          });
          expect(started).toMatchObject({
            id: session.id,
            state: 'code_pending',
            refusalReason: 'patient_refused_photo',
          });
          expect(
            await r.sessions.beginCodePath({
              clinicId,
              sessionId: session.id,
              codeHash: codeHash(),
              codeExpiresAt: new Date(),
            }),
          ).toBeNull();
          // The face token died with the face path.
          expect(started!.tokenExpiresAt.getTime()).toBeLessThanOrEqual(Date.now());
          expect(await r.verdicts.finish(face(session.id))).toBeNull();
          const verdict = await r.verdicts.finish({
            ...face(session.id),
            method: 'code',
            score: null,
            liveness: null,
            timings: null,
          });
          expect(verdict).toMatchObject({ method: 'code', result: 'match' });
          const events = await r.events.after(clinicId, before, 10);
          expect(events.map((e) => [e.type, outcome(e).method, outcome(e).result, outcome(e).reason])).toEqual([
            ['identification.refused', 'none', 'refused', 'patient_refused_photo'],
            ['identification.verdict', 'code', 'match', null],
          ]);
          // Statistics count both: each row of outcomeCounts grew by what this session added.
          const counted = (rows: OutcomeCount[], o: Omit<OutcomeCount, 'count'>) =>
            rows.find(
              (x) => x.type === o.type && x.method === o.method && x.result === o.result && x.reason === o.reason,
            )?.count ?? 0;
          const countsAfter = await r.events.outcomeCounts(clinicId, ...ever);
          const grown = countsAfter
            .map((x) => ({ ...x, count: x.count - counted(countsBefore, x) }))
            .filter((x) => x.count !== 0);
          expect(grown).toEqual([
            {
              type: 'identification.refused',
              method: 'none',
              result: 'refused',
              reason: 'patient_refused_photo',
              count: 1,
            },
            { type: 'identification.verdict', method: 'code', result: 'match', reason: null, count: 1 },
          ]);
        });

        it('count outcomes and times to verdict in the database, per clinic and window, never returning rows', async () => {
          const own = await r.clinics.create('Stats clinic');
          const desk = (await r.workstations.create(own.id, 'Desk', sha256(randomBytes(8).toString('hex')))).id;
          const patient = (await r.patients.upsert(own.id, '650505400888')).id;
          const finish = async (durationMs: number | null, result: 'match' | 'no_match' = 'match') => {
            const session = await r.sessions.create({
              clinicId: own.id,
              workstationId: desk,
              patientId: patient,
              appointmentId: `apt-stats-${randomBytes(3).toString('hex')}`,
              channel: 'in_person',
              tokenHash: sha256(randomBytes(16).toString('hex')),
              tokenExpiresAt: new Date(Date.now() + 60_000),
            });
            const timings = durationMs === null ? null : { firstFrameToVerdictMs: durationMs, framesReceived: 3 };
            expect(await r.verdicts.finish({ ...face(session.id, result), clinicId: own.id, timings })).not.toBeNull();
          };
          const started = new Date(Date.now() - 1000);
          for (const d of [70_000, 3001, 100, 3000, 250]) await finish(d);
          await finish(null, 'no_match');
          const window = [started, new Date(Date.now() + 1000)] as const;

          const counts = await r.events.outcomeCounts(own.id, ...window);
          expect(counts.sort((a, b) => a.result.localeCompare(b.result))).toEqual([
            { type: 'identification.verdict', method: 'face', result: 'match', reason: null, count: 5 },
            { type: 'identification.verdict', method: 'face', result: 'no_match', reason: null, count: 1 },
          ]);

          const request = { quantiles: [0.5, 0.9], histogramBits: 8 };
          const d = await r.events.verdictDurations(own.id, ...window, request);
          if (provider === 'postgres') {
            // percentile_cont: median 3000; p90 at h = 3.6: 3001 + 0.6 * (70000 - 3001).
            expect(d.face).toEqual({
              kind: 'exact',
              count: 5,
              quantiles: [
                { q: 0.5, value: 3000 },
                { q: 0.9, value: expect.closeTo(43_200.4, 6) },
              ],
            });
          } else {
            // Below 2^8 ms a bucket per ms; 3000 and 3001 keep their top 8 bits (16 ms buckets), 70000 (512 ms).
            expect(d.face).toEqual({
              kind: 'histogram',
              count: 5,
              buckets: [
                { lo: 100, hi: 101, count: 1 },
                { lo: 250, hi: 251, count: 1 },
                { lo: 2992, hi: 3008, count: 2 },
                { lo: 69_632, hi: 70_144, count: 1 },
              ],
            });
          }
          expect(d.all).toEqual(d.face); // no code verdicts
          expect(d.code.count).toBe(0);

          // Two of them ten days earlier: a window that SQLite reads in several slices (one turn each) adds them up.
          const day = 24 * 60 * 60 * 1000;
          const earlier = new Date(started.getTime() - 10 * day).toISOString();
          if (provider === 'sqlite') {
            const sql = `UPDATE "Event" SET "createdAt" = ? WHERE "clinicId" = ? AND "durationMs" IN (100, 70000)`;
            await h.sql(target, sql, [earlier.replace('Z', '+00:00'), own.id]);
          } else {
            const sql = `UPDATE "Event" SET "createdAt" = $1 WHERE "clinicId" = $2 AND "durationMs" IN (100, 70000)`;
            await h.sql(target, sql, [earlier.replace('T', ' ').replace('Z', ''), own.id]);
          }
          const month = [new Date(started.getTime() - 30 * day), window[1]] as const;
          expect(await r.events.verdictDurations(own.id, ...month, request)).toEqual(d);
          expect(
            (await r.events.outcomeCounts(own.id, ...month)).sort((a, b) => a.result.localeCompare(b.result)),
          ).toEqual(counts);
          const moved = await r.events.verdictDurations(own.id, month[0], started, request);
          expect([moved.face.count, moved.code.count, moved.all.count]).toEqual([2, 0, 2]);
          expect(await r.events.outcomeCounts(own.id, month[0], started)).toEqual([
            { type: 'identification.verdict', method: 'face', result: 'match', reason: null, count: 2 },
          ]);

          // Another clinic, or a window that ends before the verdicts: nothing.
          const none = await r.events.verdictDurations(otherClinicId, ...window, request);
          expect([none.face.count, none.code.count, none.all.count]).toEqual([0, 0, 0]);
          const before = await r.events.verdictDurations(own.id, new Date(0), month[0], request);
          expect(before.all).toEqual(
            provider === 'postgres'
              ? {
                  kind: 'exact',
                  count: 0,
                  quantiles: [
                    { q: 0.5, value: null },
                    { q: 0.9, value: null },
                  ],
                }
              : { kind: 'histogram', count: 0, buckets: [] },
          );
          await expect(
            r.events.verdictDurations(own.id, ...window, { quantiles: [1.5], histogramBits: 8 }),
          ).rejects.toThrow(RangeError);
        });

        it('read a year of statistics in weekly turns on SQLite, so an operation queued meanwhile waits for one only', async () => {
          const db = await openDb(target);
          try {
            const order: string[] = [];
            const tracked: Db = { ...db, run: (fn) => db.run((c) => (order.push('stats'), fn(c))) };
            const { events } = createRepositories(tracked, AUDIT_KEYS);
            const to = new Date();
            const from = new Date(to.getTime() - 366 * 24 * 60 * 60 * 1000);
            const reading = events.verdictDurations(clinicId, from, to, { quantiles: [0.5], histogramBits: 8 });
            const other = db.run(async () => void order.push('verdict'));
            await Promise.all([reading, other]);
            // SQLite runs one operation at a time, in the order asked: the verdict goes after the first week (of 53).
            // PostgreSQL has a pool and reads the year at once.
            expect(order).toEqual(
              provider === 'sqlite' ? ['stats', 'verdict', ...Array(52).fill('stats')] : ['stats', 'verdict'],
            );
          } finally {
            await db.close();
          }
        });

        it('count wrong codes atomically and stop at the cap; a used or expired code cannot be tried', async () => {
          const { session } = await newSession();
          await r.sessions.beginCodePath({
            clinicId,
            sessionId: session.id,
            codeHash: codeHash(),
            codeExpiresAt: new Date(Date.now() + 60_000),
          });
          const code = (await r.codes.forSession(clinicId, session.id))!;
          expect(code).toMatchObject({
            sessionId: session.id,
            attempts: 0,
            sends: 1,
            usedAt: null,
            workstationId,
            patientId,
          });
          expect(await r.codes.forSession(otherClinicId, session.id)).toBeNull();
          const now = new Date();
          const tries = await Promise.all(Array.from({ length: 7 }, () => r.codes.recordFailure(code.id, 5, now)));
          expect(tries.filter((t) => t !== null).sort()).toEqual([1, 2, 3, 4, 5]);
          expect(await markUsed(code.id, 5, now)).toBe(false);
          expect(
            await r.codes.failedAttempts(clinicId, { patientId }, new Date(Date.now() - 60_000)),
          ).toBeGreaterThanOrEqual(5);
          expect(
            await r.codes.failedAttempts(clinicId, { workstationId }, new Date(Date.now() - 60_000)),
          ).toBeGreaterThanOrEqual(5);
          expect(await r.codes.failedAttempts(otherClinicId, { patientId }, new Date(Date.now() - 60_000))).toBe(0);

          const { session: s2 } = await newSession();
          await r.sessions.beginCodePath({
            clinicId,
            sessionId: s2.id,
            codeHash: codeHash(),
            codeExpiresAt: new Date(Date.now() + 60_000),
          });
          const c2 = (await r.codes.forSession(clinicId, s2.id))!;
          expect(await markUsed(c2.id, 5, new Date())).toBe(true);
          expect(await markUsed(c2.id, 5, new Date())).toBe(false);
          expect(await r.codes.recordFailure(c2.id, 5, new Date())).toBeNull();
          expect(await markUsed(c2.id, 5, new Date(Date.now() + 120_000))).toBe(false);
          expect(
            await r.codes.replace(c2.id, { codeHash: codeHash(), expiresAt: new Date(), maxAttempts: 5, maxSends: 3 }),
          ).toBeNull();
        });

        it('replace a lost code: new hash and expiry, the wrong attempts kept, the sends counted and capped', async () => {
          const { session } = await newSession();
          await r.sessions.beginCodePath({
            clinicId,
            sessionId: session.id,
            codeHash: codeHash(),
            codeExpiresAt: new Date(Date.now() + 60_000),
          });
          const first = (await r.codes.forSession(clinicId, session.id))!;
          expect(await r.codes.recordFailure(first.id, 5, new Date())).toBe(1);
          const hash = codeHash();
          const expiresAt = new Date(Date.now() + 300_000);
          const second = await r.codes.replace(first.id, { codeHash: hash, expiresAt, maxAttempts: 5, maxSends: 3 });
          expect(second).toMatchObject({
            id: first.id,
            codeHash: hash,
            expiresAt,
            attempts: 1,
            sends: 2,
            usedAt: null,
          });
          expect(
            await r.codes.replace(first.id, { codeHash: codeHash(), expiresAt, maxAttempts: 5, maxSends: 3 }),
          ).toMatchObject({ sends: 3 });
          expect(
            await r.codes.replace(first.id, { codeHash: codeHash(), expiresAt, maxAttempts: 5, maxSends: 3 }),
          ).toBeNull();
          expect(
            await r.codes.replace(first.id, { codeHash: codeHash(), expiresAt, maxAttempts: 1, maxSends: 9 }),
          ).toBeNull();
        });

        it('find the sessions nobody can finish any more, and end them with an expired event', async () => {
          const { session: unused } = await newSession(-1000);
          const { session: waiting } = await newSession();
          const { session: coded } = await newSession();
          await r.sessions.beginCodePath({
            clinicId,
            sessionId: coded.id,
            codeHash: codeHash(),
            codeExpiresAt: new Date(Date.now() - 1),
          });
          const stale = (await r.sessions.stale(new Date(), new Date(Date.now() - 60_000), 1000)).map((x) => x.id);
          expect(stale).toEqual(expect.arrayContaining([unused.id, coded.id]));
          expect(stale).not.toContain(waiting.id);
          const before = await r.events.latestSeq(clinicId);
          for (const id of [unused.id, coded.id]) {
            expect(
              await r.verdicts.finish({
                clinicId,
                sessionId: id,
                result: 'expired',
                method: 'none',
                score: null,
                liveness: null,
                timings: null,
              }),
            ).not.toBeNull();
          }
          expect((await r.sessions.get(clinicId, unused.id))!.state).toBe('expired');
          expect((await r.events.after(clinicId, before, 10)).map((e) => [e.type, outcome(e).sessionId])).toEqual([
            ['identification.expired', unused.id],
            ['identification.expired', coded.id],
          ]);
        });

        it('record a face lock-out that has no session', async () => {
          const event = await r.events.appendLockout({
            clinicId,
            patientId,
            appointmentId: 'apt-locked',
            channel: 'in_person',
          });
          expect(event.payload).toMatchObject({
            type: 'identification.locked_out',
            sessionId: null,
            method: 'face',
            iin: '650505400444',
          });
          await expect(
            r.events.appendLockout({
              clinicId: otherClinicId,
              patientId,
              appointmentId: 'apt-x',
              channel: 'in_person',
            }),
          ).rejects.toMatchObject({ code: 'reference_not_found' });
        });

        it('write a face lock-out and its audit entry in one transaction: when the audit entry cannot be written, neither is', async () => {
          const lockout = { clinicId, patientId, appointmentId: 'apt-locked-audit', channel: 'in_person' as const };
          const audit = { ...verdictAudit(patientId, { failed: 3 }), action: 'session.locked_out' };
          const before = await r.events.latestSeq(clinicId);
          const chainLength = (await r.audit.entriesAfter(0, 100_000)).length;
          let woken = 0;
          const off = r.events.onCommitted(() => woken++);
          await h.sql(target, auditFailure.on);
          try {
            await expect(r.events.appendLockout(lockout, { audit })).rejects.toThrow();
          } finally {
            for (const q of auditFailure.off) await h.sql(target, q);
            off();
          }
          expect(await r.events.latestSeq(clinicId)).toBe(before);
          expect((await r.audit.entriesAfter(0, 100_000)).length).toBe(chainLength);
          expect(woken).toBe(0);

          // Once the audit log takes entries again: the event and its audit entry, together.
          const event = await r.events.appendLockout(lockout, { audit });
          expect(event.seq).toBe(before + 1);
          const entries = (await r.audit.entriesAfter(0, 100_000)).slice(chainLength);
          expect(entries).toEqual([expect.objectContaining({ ...audit, keyId: 'test1' })]);
          expect(await verifyAuditChain(r.audit)).toBeNull();
        });
      });
    });

    describe('audit log', () => {
      // Runs after the other tests' appends on this database (key changes write audit entries in their transaction):
      // the chain goes on from their last entry, or starts at the genesis hash.
      const entry = (i: number, clinicId: string | null = null) => ({
        clinicId,
        actor: 'system',
        action: 'test.appended',
        subject: `s${i}`,
        detail: { i, z: 'last', a: { nested: [1, 2.5, null] } },
      });

      it('chains entries from the previous one (the genesis hash first) and verifies', async () => {
        const clinic = await r.clinics.create('Audited');
        const prevHash = (await r.audit.entriesAfter(0, 100_000)).at(-1)?.hash ?? AUDIT_GENESIS;
        const first = await r.audit.append(entry(0, clinic.id));
        expect(first).toEqual({
          seq: expect.any(Number),
          ...entry(0, clinic.id),
          at: expect.any(Date),
          prevHash,
          hash: auditMac(AUDIT_KEY, 'test1', prevHash, { ...entry(0, clinic.id), at: first.at }),
          keyId: 'test1',
        });
        const second = await r.audit.append({ ...entry(1), detail: null, subject: null });
        expect(second.prevHash).toBe(first.hash);
        expect(second.seq).toBeGreaterThan(first.seq);
        await r.audit.append(entry(2, clinic.id));

        expect((await r.audit.list(clinic.id, 10)).map((e) => e.subject)).toEqual(['s2', 's0']);
        expect((await r.audit.list(clinic.id, 1)).map((e) => e.subject)).toEqual(['s2']);
        expect(
          (await r.audit.list(null, 10)).filter((e) => e.action === 'test.appended').map((e) => e.subject),
        ).toEqual([null]);
        expect(await r.audit.list((await r.clinics.create('Other')).id, 10)).toEqual([]);
        expect(await verifyAuditChain(r.audit)).toBeNull();
      });

      it('hashes the canonical JSON: key order does not matter', async () => {
        const e = await r.audit.append({
          clinicId: null,
          actor: 'cli',
          action: 'test.order',
          subject: null,
          detail: { b: 1, a: { d: 2, c: 3 } },
        });
        const swapped = { ...e, detail: { a: { c: 3, d: 2 }, b: 1 } };
        expect(auditMac(AUDIT_KEY, 'test1', e.prevHash, swapped)).toBe(e.hash);
      });

      it('keep the chain intact under concurrent appends from two processes', async () => {
        const before = (await r.audit.entriesAfter(0, 10_000)).length;
        const mine = () => Promise.all(Array.from({ length: 25 }, (_, i) => r.audit.append(entry(100 + i))));
        if (target.provider === 'postgres') {
          const second = await openStorage(target, { auditKeys: AUDIT_KEYS }); // its own pool, as a second process would have
          try {
            await Promise.all([
              mine(),
              ...Array.from({ length: 25 }, (_, i) => second.repos.audit.append(entry(200 + i))),
            ]);
          } finally {
            await second.close();
          }
        } else {
          // The child opens the file, says ready, waits for "go", then appends while this process does too.
          const script = `
            const { openStorage, auditChainKeys } = require('./src/storage');
            const { KeyRing } = require('./src/keyring');
            (async () => {
              const ring = new KeyRing([{ id: 'test1', key: Buffer.from(process.argv[2], 'base64') }]);
              const s = await openStorage({ provider: 'sqlite', file: process.argv[1] }, { auditKeys: auditChainKeys(ring) });
              console.log('ready');
              await new Promise((go) => process.stdin.once('data', go));
              await Promise.all(Array.from({ length: 25 }, (_, i) => s.repos.audit.append(
                { clinicId: null, actor: 'child', action: 'test.appended', subject: 'c' + i, detail: { i } })));
              await s.close();
              console.log('done');
            })().catch((e) => { console.error(e); process.exit(1); });`;
          let started: Promise<unknown> = Promise.resolve();
          const lines = await tsChild(script, [target.file, TEST_KEY.toString('base64')], (line, child) => {
            if (line !== 'ready') return;
            child.stdin!.end('go\n'); // ending stdin also lets the child exit when done
            started = mine();
          });
          await started;
          expect(lines).toEqual(['ready', 'done']);
        }
        const all = await r.audit.entriesAfter(0, 10_000);
        expect(all.length).toBe(before + 50);
        for (let i = 1; i < all.length; i++) expect(all[i].prevHash).toBe(all[i - 1].hash);
        expect(await verifyAuditChain(r.audit, 7)).toBeNull(); // small pages: the paging is exercised too
      });

      it('refuse UPDATE and DELETE in the database itself', async () => {
        const e = await r.audit.append(entry(300));
        // The error's message, read as a property: under jest, better-sqlite3's errors may come from another test
        // file's realm (its native module is shared), where `instanceof Error` and so `rejects.toThrow` fail.
        const refusal = (sql: string) =>
          h.sql(target, sql).then(
            (rows) => `not refused: ${JSON.stringify(rows)}`,
            (err: { message?: unknown }) => String(err?.message),
          );
        expect(await refusal(`UPDATE "AuditLog" SET "actor" = 'mallory' WHERE "seq" = ${e.seq}`)).toMatch(
          /append-only/,
        );
        expect(await refusal(`DELETE FROM "AuditLog" WHERE "seq" = ${e.seq}`)).toMatch(/append-only/);
        expect(await h.sql(target, `SELECT "actor" FROM "AuditLog" WHERE "seq" = ${e.seq}`)).toEqual([
          { actor: 'system' },
        ]);
      });

      /** Somebody with the database owner's rights: switch the guard off, change a row, switch it on again. */
      const tamper = async (t: StorageTarget, seq: number, set: string) => {
        if (provider === 'sqlite') {
          const db = new Database((t as { file: string }).file);
          try {
            const triggers = db
              .prepare(`SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'AuditLog'`)
              .all() as { sql: string }[];
            db.exec(`DROP TRIGGER "AuditLog_no_update"`);
            db.exec(`DROP TRIGGER "AuditLog_no_delete"`);
            db.exec(`UPDATE "AuditLog" SET ${set} WHERE "seq" = ${seq}`);
            for (const trigger of triggers) db.exec(trigger.sql);
          } finally {
            db.close();
          }
        } else {
          await h.sql(
            t,
            `BEGIN; ALTER TABLE "AuditLog" DISABLE TRIGGER USER; UPDATE "AuditLog" SET ${set} WHERE "seq" = ${seq}; ` +
              `ALTER TABLE "AuditLog" ENABLE TRIGGER USER; COMMIT;`,
          );
        }
      };

      it('detect a tampered row, even one whose hash was recomputed, or a tail rewritten as plain SHA-256', async () => {
        const entries = [];
        for (let i = 0; i < 4; i++) entries.push(await r.audit.append(entry(400 + i)));
        const victim = entries[1];
        expect(entries.map((e) => e.keyId)).toEqual(['test1', 'test1', 'test1', 'test1']);
        await tamper(target, victim.seq, `"detail" = '{"i": 999}'`);
        expect((await walkAuditChain(r.audit)).broken).toEqual({ seq: victim.seq, reason: 'hash', keyId: 'test1' });

        // Its hash recomputed: without the chain key only the plain SHA-256 can be, and that is not its HMAC.
        const forged = { ...victim, detail: { i: 999 } };
        await tamper(target, victim.seq, `"hash" = '${auditHash(victim.prevHash, forged)}'`);
        expect((await walkAuditChain(r.audit)).broken).toEqual({ seq: victim.seq, reason: 'hash', keyId: 'test1' });

        // The whole tail from it rewritten as legacy entries (no key id, each SHA-256 linked to the one before): every
        // link and hash checks out the old way, but plain entries after keyed ones are refused.
        let prev = victim.prevHash;
        for (const e of await r.audit.entriesAfter(victim.seq - 1, 10_000)) {
          const hash = auditHash(prev, e.seq === victim.seq ? forged : e);
          await tamper(target, e.seq, `"keyId" = NULL, "prevHash" = '${prev}', "hash" = '${hash}'`);
          prev = hash;
        }
        const tail = await r.audit.entriesAfter(victim.seq - 1, 10_000);
        expect(tail.every((e) => e.keyId === null)).toBe(true);
        expect(tail[0].detail).toEqual({ i: 999 });
        expect((await walkAuditChain(r.audit)).broken).toEqual({
          seq: victim.seq,
          reason: 'unkeyed_after_keyed',
          keyId: null,
        });
        expect(await verifyAuditChain(r.audit)).toBe(victim.seq);
      });

      it('keep verifying the entries written before the chain was keyed, as legacy SHA-256', async () => {
        // A database of the build before: migrated up to the migration before the keyed chain, with entries written
        // the old way (sha256 of prevHash + canonical JSON, no key id).
        const t = await h.fresh();
        const dir = copyMigrations(provider, scratch);
        for (const name of fs.readdirSync(dir)) {
          if (/^\d{14}_/.test(name) && name >= '20261204140000_audit_hmac')
            fs.rmSync(path.join(dir, name), { recursive: true });
        }
        await migrate(t, { migrationsDir: dir });
        const legacy = [];
        let prev = AUDIT_GENESIS;
        for (let i = 0; i < 3; i++) {
          const fields = {
            clinicId: null,
            actor: 'cli',
            action: 'clinic.created',
            subject: `old${i}`,
            detail: { i },
            at: new Date(Date.UTC(2026, 10, 28, 12, i)),
          };
          const hash = auditHash(prev, fields);
          const at = provider === 'sqlite' ? fields.at.toISOString().replace('Z', '+00:00') : fields.at.toISOString();
          await h.sql(
            t,
            provider === 'sqlite'
              ? `INSERT INTO "AuditLog" ("clinicId", "actor", "action", "subject", "detail", "at", "prevHash", "hash") VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)`
              : `INSERT INTO "AuditLog" ("clinicId", "actor", "action", "subject", "detail", "at", "prevHash", "hash") VALUES (NULL, $1, $2, $3, $4, $5, $6, $7)`,
            [fields.actor, fields.action, fields.subject, JSON.stringify(fields.detail), at, prev, hash],
          );
          legacy.push(hash);
          prev = hash;
        }
        // The new build starts on it: the migration adds the key id, and new entries are keyed and linked on.
        const upgraded = await openStorage(t, { auditKeys: AUDIT_KEYS });
        try {
          expect(upgraded.migration.applied).toContain('20261204140000_audit_hmac');
          const keyed = await upgraded.repos.audit.append(entry(500));
          expect(keyed).toMatchObject({ prevHash: legacy[2], keyId: 'test1' });
          await upgraded.repos.audit.append(entry(501));
          const report = await walkAuditChain(upgraded.repos.audit);
          expect(report).toEqual({
            entries: 5,
            legacy: 3,
            legacyUntilSeq: 3,
            keys: [{ keyId: 'test1', fromSeq: keyed.seq, toSeq: keyed.seq + 1, entries: 2 }],
            broken: null,
          });
          // A legacy entry changed is still caught, at that entry.
          await tamper(t, 2, `"subject" = 'rewritten'`);
          expect((await walkAuditChain(upgraded.repos.audit)).broken).toEqual({ seq: 2, reason: 'hash', keyId: null });
        } finally {
          await upgraded.close();
        }
      });
    });
  });
}

describe('StorageModule', () => {
  it('provides every repository, migrated and connected at init, and closes on shutdown', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-module-'));
    const config = loadConfig({ FACEID_DATA_DIR: dataDir });
    @Module({ imports: [ConfigModule.forRoot(config), StorageModule] })
    class Root {}
    const app = await NestFactory.createApplicationContext(Root, { logger: false });
    try {
      const clinics = app.get<ClinicRepository>(CLINICS);
      for (const token of [WORKSTATIONS, PATIENTS, TEMPLATES, SESSIONS, VERDICTS, AUDIT])
        expect(app.get(token)).toBeDefined();
      const clinic = await clinics.create('Module clinic');
      expect(fs.existsSync(path.join(dataDir, 'faceid.db'))).toBe(true);
      await app.close();
      await expect(clinics.get(clinic.id)).rejects.toThrow();
      const reopened = await openStorage(config);
      expect(await reopened.repos.clinics.get(clinic.id)).toEqual(clinic);
      await reopened.close();
    } finally {
      await app.close().catch(() => undefined);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('reads the committed migrations in order, for both providers', () => {
    for (const provider of ['sqlite', 'postgres'] as const) {
      expect(readMigrations(provider).map((m) => m.name)).toEqual(MIGRATIONS);
    }
    expect(() => readMigrations('postgres', SQLITE_MIGRATIONS)).toThrow(/is for sqlite, not postgresql/);
  });
});
