import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { Client as PgClient } from 'pg';
import { hashApiKey } from '../src/auth';
import { loadConfig } from '../src/config';
import { migrate, openStorage } from '../src/storage';
import { defaultMigrationsDir } from '../src/storage/migrate';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';

// The key-lifecycle migration on a database that already has data, SQLite and PostgreSQL: an MIS client's previous
// key in its grace moves to PreviousKey (and keeps working), the old columns go, and each identification event
// learns its workstation from its session (so a workstation key reads its own history, and only that).

const MIGRATION = '20261204120000_key_lifecycle';

/** A copy of the migrations folder with only the migrations before this one. */
function migrationsBefore(provider: 'sqlite' | 'postgres'): string {
  const from = defaultMigrationsDir(provider);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-migrations-'));
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (entry.isDirectory() && entry.name >= MIGRATION) continue;
    fs.cpSync(path.join(from, entry.name), path.join(dir, entry.name), { recursive: true });
  }
  return dir;
}

interface Sql {
  run(sql: string, params?: unknown[]): Promise<void>;
  all(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

async function connect(db: TestDatabase): Promise<Sql> {
  if (db.kind === 'sqlite') {
    const conn = new Database(db.location);
    // $1, $2... as PostgreSQL numbers them: one ? per occurrence, with its value.
    const sqlite = (sql: string, params: unknown[]) => {
      const values: unknown[] = [];
      const text = sql.replace(/\$(\d+)/g, (_m, n: string) => {
        values.push(params[Number(n) - 1]);
        return '?';
      });
      return { text, values };
    };
    return {
      run: async (sql, params = []) => {
        const q = sqlite(sql, params);
        conn.prepare(q.text).run(...q.values);
      },
      all: async (sql, params = []) => {
        const q = sqlite(sql, params);
        return conn.prepare(q.text).all(...q.values) as Record<string, unknown>[];
      },
      close: async () => void conn.close(),
    };
  }
  const conn = new PgClient({ connectionString: db.location });
  await conn.connect();
  return {
    run: async (sql, params = []) => void (await conn.query(sql, params)),
    all: async (sql, params = []) => (await conn.query(sql, params)).rows,
    close: () => conn.end(),
  };
}

for (const kind of TEST_DATABASES) {
  describe(`migration ${MIGRATION} with data (${kind})`, () => {
    let db: TestDatabase;
    afterAll(async () => db?.drop());

    it('moves previous MIS keys in their grace to PreviousKey and gives identification events their workstation', async () => {
      db = await createTestDatabase(kind, 'keymig');
      const target =
        kind === 'sqlite'
          ? ({ provider: 'sqlite', file: db.location } as const)
          : ({ provider: 'postgres', url: db.location } as const);
      const before = migrationsBefore(kind);
      try {
        const first = await migrate(target, { migrationsDir: before });
        expect(first.applied).not.toContain(MIGRATION);
      } finally {
        fs.rmSync(before, { recursive: true, force: true });
      }

      // Dates as each database stores them for Prisma.
      const at = (ms: number) =>
        kind === 'sqlite' ? new Date(ms).toISOString().replace('Z', '+00:00') : new Date(ms).toISOString();
      const now = Date.now();
      const sql = await connect(db);
      const ids = {
        clinic: randomUUID(),
        deskA: randomUUID(),
        deskB: randomUUID(),
        patient: randomUUID(),
        sA: randomUUID(),
        sB: randomUUID(),
      };
      const active = {
        id: randomUUID(),
        current: hashApiKey('fid_mis_current'),
        previous: hashApiKey('fid_mis_previous'),
      };
      const revoked = {
        id: randomUUID(),
        current: hashApiKey('fid_mis_r_current'),
        previous: hashApiKey('fid_mis_r_previous'),
      };
      const events = { a: randomUUID(), b: randomUUID(), camera: randomUUID(), lockout: randomUUID() };
      try {
        await sql.run(`INSERT INTO "Clinic" ("id", "name", "createdAt", "eventSeq") VALUES ($1, 'C', $2, 4)`, [
          ids.clinic,
          at(now),
        ]);
        for (const [desk, hash] of [
          [ids.deskA, 'a'.repeat(64)],
          [ids.deskB, 'b'.repeat(64)],
        ]) {
          await sql.run(
            `INSERT INTO "Workstation" ("id", "clinicId", "name", "apiKeyHash", "createdAt") VALUES ($1, $2, 'Desk', $3, $4)`,
            [desk, ids.clinic, hash, at(now)],
          );
        }
        await sql.run(
          `INSERT INTO "Patient" ("id", "clinicId", "iin", "createdAt") VALUES ($1, $2, '900101300027', $3)`,
          [ids.patient, ids.clinic, at(now)],
        );
        for (const [session, desk, token] of [
          [ids.sA, ids.deskA, 'c'.repeat(64)],
          [ids.sB, ids.deskB, 'd'.repeat(64)],
        ]) {
          await sql.run(
            `INSERT INTO "IdentificationSession" ("id", "clinicId", "workstationId", "patientId", "appointmentId", "channel", "state", "tokenHash", "tokenExpiresAt", "createdAt")
             VALUES ($1, $2, $3, $4, 'apt', 'in_person', 'finished', $5, $6, $6)`,
            [session, ids.clinic, desk, ids.patient, token, at(now)],
          );
        }
        const event = (id: string, seq: number, type: string, sessionId: string | null, payload: object) =>
          sql.run(
            `INSERT INTO "Event" ("id", "clinicId", "seq", "type", "version", "sessionId", "method", "result", "payload", "createdAt")
             VALUES ($1, $2, $3, $4, 1, $5, 'none', 'x', $6, $7)`,
            [id, ids.clinic, seq, type, sessionId, JSON.stringify(payload), at(now)],
          );
        await event(events.a, 1, 'identification.verdict', ids.sA, { id: events.a });
        await event(events.b, 2, 'identification.expired', ids.sB, { id: events.b });
        await event(events.camera, 3, 'workstation.camera_changed', null, {
          id: events.camera,
          workstationId: ids.deskA,
        });
        await event(events.lockout, 4, 'identification.locked_out', null, { id: events.lockout });
        for (const [client, revokedAt] of [
          [active, null],
          [revoked, at(now - 1000)],
        ] as const) {
          await sql.run(
            `INSERT INTO "MisClient" ("id", "clinicId", "name", "apiKeyHash", "previousKeyHash", "previousExpiresAt", "createdAt", "rotatedAt", "revokedAt")
             VALUES ($1, $2, 'MIS', $3, $4, $5, $6, $7, $8)`,
            [
              client.id,
              ids.clinic,
              client.current,
              client.previous,
              at(now + 3_600_000),
              at(now - 60_000),
              at(now - 1000),
              revokedAt,
            ],
          );
        }
      } finally {
        await sql.close();
      }

      // This one, and any that came after it.
      expect((await migrate(target)).applied[0]).toBe(MIGRATION);

      const after = await connect(db);
      try {
        const previous = await after.all(`SELECT "clinicId", "holderKind", "holderId", "keyHash" FROM "PreviousKey"`);
        expect(previous).toEqual([
          { clinicId: ids.clinic, holderKind: 'mis_client', holderId: active.id, keyHash: active.previous },
        ]);
        const [{ id: previousId }] = await after.all(`SELECT "id" FROM "PreviousKey"`);
        expect(previousId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        const rows = await after.all(`SELECT "id", "workstationId" FROM "Event" ORDER BY "seq"`);
        expect(rows).toEqual([
          { id: events.a, workstationId: ids.deskA },
          { id: events.b, workstationId: ids.deskB },
          { id: events.camera, workstationId: null },
          { id: events.lockout, workstationId: null },
        ]);
      } finally {
        await after.close();
      }

      // Through storage: the moved key still works until its grace ends; a desk reads its own event only.
      const storage = await openStorage(loadConfig(db.env));
      try {
        expect(await storage.repos.misClients.findByKeyHash(active.previous, new Date(now))).toMatchObject({
          id: active.id,
        });
        expect(await storage.repos.misClients.findByKeyHash(active.previous, new Date(now + 3_600_001))).toBeNull();
        expect(await storage.repos.misClients.findByKeyHash(revoked.previous, new Date(now))).toBeNull();
        expect(await storage.repos.misClients.findByKeyHash(active.current, new Date(now))).toMatchObject({
          id: active.id,
        });
        const holder = await storage.repos.keys.get('mis_client', ids.clinic, active.id, new Date(now));
        expect(holder?.previousKeys).toEqual([
          { id: expect.any(String), retiredAt: expect.any(Date), validUntil: new Date(now + 3_600_000) },
        ]);
        const own = await storage.repos.events.after(ids.clinic, 0, 10, { workstationId: ids.deskA });
        expect(own.map((e) => e.id)).toEqual([events.a]);
        expect((await storage.repos.events.after(ids.clinic, 0, 10)).map((e) => e.id)).toEqual([
          events.a,
          events.b,
          events.camera,
          events.lockout,
        ]);
      } finally {
        await storage.close();
      }
    });
  });
}
