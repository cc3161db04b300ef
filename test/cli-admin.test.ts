import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { hashApiKey } from '../src/auth';
import { loadConfig } from '../src/config';
import { openStorage, type Storage } from '../src/storage';
import { cliJson as json, cliLines as lines, runCli } from './support/cli';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';

// The admin commands through the real CLI entry (main() with captured output), against a throwaway SQLite file and
// a PostgreSQL database: the same storage the service opens. Then the audit chain is tampered with under the
// database's append-only trigger (disabled for the test) and `faceid audit verify` must name the entry.

type Json = any; // parsed command output, checked field by field

const ROOT = path.resolve(__dirname, '..');

for (const kind of TEST_DATABASES) {
  describe(`faceid admin commands (${kind})`, () => {
    let db: TestDatabase;
    let storage: Storage; // a second connection, to check what the commands stored
    const keys: string[] = [];

    const run = (...argv: string[]) => runCli(argv, db.env);

    beforeAll(async () => {
      db = await createTestDatabase(kind, 'cli');
    });
    afterAll(async () => {
      await storage?.close();
      await db?.drop();
    });

    let clinicId = '';
    let misId = '';

    it('creates and lists clinics', async () => {
      const created = await run('clinic', 'create', '--name', 'City polyclinic 4');
      expect(created.code).toBe(0);
      expect(created.out).toMatch(/^clinic [0-9a-f-]{36} "City polyclinic 4" created\n$/);
      const second = json(await run('clinic', 'create', '--name', '  Rural clinic  ', '--json'));
      expect(second).toEqual({
        id: expect.any(String),
        name: 'Rural clinic',
        createdAt: expect.any(String),
        smsLanguages: 'kk+ru',
      });
      clinicId = /^clinic (\S+)/.exec(created.out)![1];

      const list = await run('clinic', 'list', '--json');
      expect(list.code).toBe(0);
      expect(lines(list).map((c) => [c.id, c.name])).toEqual([
        [clinicId, 'City polyclinic 4'],
        [second.id, 'Rural clinic'],
      ]);
      const text = await run('clinic', 'list');
      expect(text.out.split('\n')[0]).toMatch(/^ID\s+CREATED\s+SMS\s+NAME$/);
      expect(text.out).toMatch(new RegExp(`^${clinicId}  \\S+  kk\\+ru  City polyclinic 4$`, 'm'));

      storage = await openStorage(loadConfig(db.env));
    });

    it('creates a workstation and prints its key once (only the hash is stored)', async () => {
      const r = await run('workstation', 'create', '--clinic', clinicId, '--name', 'Room 12');
      expect(r.code).toBe(0);
      const key = /API key \(shown only this once\): (fid_ws_[A-Za-z0-9_-]{43})\n/.exec(r.out)![1];
      expect(r.err).toContain('cannot be shown again');
      expect(r.err).not.toContain(key);
      keys.push(key);
      const ws = await storage.repos.workstations.findByKeyHash(hashApiKey(key));
      expect(ws).toMatchObject({ clinicId, name: 'Room 12', revokedAt: null });

      const more = json(await run('workstation', 'create', '--clinic', clinicId, '--name', 'Room 13', '--json'));
      expect(more).toMatchObject({ clinicId, name: 'Room 13', apiKey: expect.stringMatching(/^fid_ws_/) });
      expect(more.apiKey).not.toBe(key);
      keys.push(more.apiKey);
    });

    it('creates, lists, rotates and revokes MIS clients', async () => {
      const created = json(await run('mis', 'create', '--clinic', clinicId, '--name', 'Hospital HIS', '--json'));
      expect(created).toMatchObject({
        clinicId,
        name: 'Hospital HIS',
        apiKey: expect.stringMatching(/^fid_mis_[A-Za-z0-9_-]{43}$/),
      });
      misId = created.id;
      keys.push(created.apiKey);
      const byKey = (key: string, at = new Date()) => storage.repos.misClients.findByKeyHash(hashApiKey(key), at);
      expect(await byKey(created.apiKey)).toMatchObject({ id: misId });

      expect(lines(await run('mis', 'list', '--clinic', clinicId, '--json'))).toEqual([
        {
          id: misId,
          clinicId,
          name: 'Hospital HIS',
          state: 'active',
          createdAt: created.createdAt,
          rotatedAt: null,
          revokedAt: null,
          previousKeys: [],
        },
      ]);

      const rotated = await run('mis', 'rotate', '--clinic', clinicId, '--id', misId);
      expect(rotated.code).toBe(0);
      const newKey = /API key \(shown only this once\): (fid_mis_\S+)\n/.exec(rotated.out)![1];
      keys.push(newKey);
      const until = Date.parse(/works until (\S+)\n/.exec(rotated.out)![1]);
      expect(until - Date.now()).toBeGreaterThan(23.9 * 3600_000);
      // Both work now: the old one for its grace.
      expect(await byKey(newKey)).toMatchObject({ id: misId });
      expect(await byKey(created.apiKey)).toMatchObject({ id: misId });
      expect(await byKey(created.apiKey, new Date(until + 1))).toBeNull();

      const revoked = await run('mis', 'revoke', '--clinic', clinicId, '--id', misId);
      expect(revoked).toEqual({ code: 0, out: `MIS client ${misId} revoked\n`, err: '' });
      expect((await byKey(newKey))!.revokedAt).not.toBeNull();
      const table = await run('mis', 'list', '--clinic', clinicId);
      expect(table.out).toMatch(new RegExp(`^${misId}\\s+revoked\\s`, 'm'));

      // Revoking twice, or a client of another clinic: nothing to revoke.
      const again = await run('mis', 'revoke', '--clinic', clinicId, '--id', misId);
      expect(again.code).toBe(1);
      expect(again.err).toContain('[mis_client_not_found]');
    });

    it('lists, rotates and revokes workstation keys; no rotation shortens an earlier key’s grace; each change is an event', async () => {
      const ws = json(await run('workstation', 'create', '--clinic', clinicId, '--name', 'Room 14', '--json'));
      keys.push(ws.apiKey);
      const byKey = (key: string) => storage.repos.workstations.findByKeyHash(hashApiKey(key));
      const r1 = json(await run('workstation', 'rotate', '--clinic', clinicId, '--id', ws.id, '--json'));
      expect(r1).toEqual({
        id: ws.id,
        clinicId,
        apiKey: expect.stringMatching(/^fid_ws_/),
        previousKeyValidUntil: expect.any(String),
      });
      expect(Date.parse(r1.previousKeyValidUntil) - Date.now()).toBeGreaterThan(23.9 * 3600_000);
      const r2 = json(
        await run('workstation', 'rotate', '--clinic', clinicId, '--id', ws.id, '--grace-hours', '1.5', '--json'),
      );
      keys.push(r1.apiKey, r2.apiKey);
      // The first key keeps its 24 h: the second rotation gave the second key a grace of its own.
      for (const k of [ws.apiKey, r1.apiKey, r2.apiKey])
        expect(await byKey(k)).toMatchObject({ id: ws.id, revokedAt: null });
      const listed = lines(await run('workstation', 'keys', '--clinic', clinicId, '--json')).find(
        (w) => w.id === ws.id,
      );
      expect(listed).toMatchObject({
        name: 'Room 14',
        state: 'active',
        rotatedAt: expect.any(String),
        revokedAt: null,
      });
      expect(listed.previousKeys.map((k: Json) => k.validUntil)).toEqual([
        r2.previousKeyValidUntil,
        r1.previousKeyValidUntil,
      ]);
      const text = await run('workstation', 'keys', '--clinic', clinicId);
      expect(text.out.split('\n')[0]).toMatch(/^ID\s+STATE\s+CREATED\s+ROTATED\s+PREVIOUS KEYS\s+NAME$/);
      expect(text.out).toMatch(
        new RegExp(`^${ws.id}\\s+active\\s+\\S+\\s+\\S+\\s+2 until ${r1.previousKeyValidUntil}\\s+Room 14$`, 'm'),
      );

      // Without grace (a leaked key): every earlier key stops at once.
      const r3 = await run('workstation', 'rotate', '--clinic', clinicId, '--id', ws.id, '--grace-hours', '0');
      expect(r3.code).toBe(0);
      expect(r3.out).toMatch(new RegExp(`^workstation ${ws.id}: new key; the previous keys stopped working\n`));
      const k3 = /API key \(shown only this once\): (fid_ws_\S+)\n/.exec(r3.out)![1];
      keys.push(k3);
      for (const k of [ws.apiKey, r1.apiKey, r2.apiKey]) expect(await byKey(k)).toBeNull();
      expect(await run('workstation', 'revoke', '--clinic', clinicId, '--id', ws.id)).toEqual({
        code: 0,
        out: `workstation ${ws.id} revoked\n`,
        err: '',
      });
      expect((await byKey(k3))!.revokedAt).not.toBeNull();
      const again = await run('workstation', 'rotate', '--clinic', clinicId, '--id', ws.id);
      expect(again.code).toBe(1);
      expect(again.err).toContain('[workstation_not_found]');
      for (const grace of ['200', '-1', 'soon']) {
        const bad = await run('workstation', 'rotate', '--clinic', clinicId, '--id', ws.id, '--grace-hours', grace);
        expect(bad.code).toBe(2);
        expect(bad.err).toContain('--grace-hours');
      }

      // An MIS client rotated twice keeps its first key working (before, the second rotation ended it).
      const mis = json(await run('mis', 'create', '--clinic', clinicId, '--name', 'Second HIS', '--json'));
      const m1 = json(await run('mis', 'rotate', '--clinic', clinicId, '--id', mis.id, '--json'));
      const m2 = json(await run('mis', 'rotate', '--clinic', clinicId, '--id', mis.id, '--json'));
      keys.push(mis.apiKey, m1.apiKey, m2.apiKey);
      const misByKey = (key: string) => storage.repos.misClients.findByKeyHash(hashApiKey(key), new Date());
      for (const k of [mis.apiKey, m1.apiKey, m2.apiKey]) expect(await misByKey(k)).toMatchObject({ id: mis.id });

      // The MIS is told of every change, by the operator.
      const events = (await storage.repos.events.after(clinicId, 0, 1000)).map((e) => e.payload as Json);
      expect(
        events
          .filter((e) => e.type === 'workstation.key_changed' && e.workstationId === ws.id)
          .map((e) => [e.change, e.by]),
      ).toEqual([
        ['created', 'operator'],
        ['rotated', 'operator'],
        ['rotated', 'operator'],
        ['rotated', 'operator'],
        ['revoked', 'operator'],
      ]);
      expect(
        events.filter((e) => e.type === 'mis_client.key_changed' && e.misClientId === mis.id).map((e) => e.change),
      ).toEqual(['created', 'rotated', 'rotated']);
    });

    it('refuses bad input: usage errors (2) before touching the database, unknown clinics (1)', async () => {
      const missing = await run('mis', 'create', '--name', 'X');
      expect(missing.code).toBe(2);
      expect(missing.err).toContain('--clinic is required');
      expect(missing.err).toContain('Usage: faceid mis create');
      const badId = await run('workstation', 'create', '--clinic', 'not-an-id', '--name', 'X');
      expect(badId.code).toBe(2);
      expect(badId.err).toContain('--clinic must be an id');
      expect((await run('clinic', 'create', '--name', '   ')).code).toBe(2);
      expect((await run('mis', 'frobnicate')).code).toBe(2);

      const nowhere = '00000000-0000-4000-8000-000000000000';
      const unknown = await run('mis', 'create', '--clinic', nowhere, '--name', 'X');
      expect(unknown.code).toBe(1);
      expect(unknown.err).toContain('[reference_not_found]');
      expect((await run('workstation', 'create', '--clinic', nowhere, '--name', 'X')).code).toBe(1);
      expect((await run('mis', 'list', '--clinic', nowhere)).code).toBe(1);
    });

    it('audits every admin command (actor cli), never with a key', async () => {
      const entries = await storage.repos.audit.entriesAfter(0, 1000);
      expect(entries.every((e) => e.actor === 'cli')).toBe(true);
      expect(entries.map((e) => e.action)).toEqual([
        'clinic.created',
        'clinic.created',
        'clinic.listed',
        'clinic.listed',
        'workstation.created',
        'workstation.created',
        'mis_client.created',
        'mis_client.listed',
        'mis_client.key_rotated',
        'mis_client.revoked',
        'mis_client.listed',
        'workstation.created',
        'workstation.key_rotated',
        'workstation.key_rotated',
        'workstation.listed',
        'workstation.listed',
        'workstation.key_rotated',
        'workstation.revoked',
        'mis_client.created',
        'mis_client.key_rotated',
        'mis_client.key_rotated',
      ]);
      const text = JSON.stringify(entries);
      for (const key of keys) expect(text).not.toContain(key);
    });

    it('audit verify: intact, with the key that verified it, then a row changed under the disabled trigger is named', async () => {
      const entries = await storage.repos.audit.entriesAfter(0, 1000);
      // Keyed with the key ring of the service's configuration (here the key file in FACEID_DATA_DIR).
      const keyId = entries[0].keyId!;
      expect(keyId).toMatch(/^gen\d{8}$/);
      expect(entries.every((e) => e.keyId === keyId)).toBe(true);
      const [first, last] = [entries[0].seq, entries[entries.length - 1].seq];
      const intact = await run('audit', 'verify');
      expect(intact).toEqual({
        code: 0,
        out: `audit chain intact: ${entries.length} entries; HMAC-SHA256 with key ${keyId} (seq ${first}-${last})\n`,
        err: '',
      });

      const target = (await storage.repos.audit.entriesAfter(0, 1000))[4]; // workstation.created
      await tamper(db, target.seq);
      const broken = await run('audit', 'verify');
      expect(broken.code).toBe(1);
      expect(broken.out).toBe(
        `audit chain broken at entry seq ${target.seq}: its HMAC under key ${keyId} does not match its content ` +
          `(changed, or its hash forged); entries before it are intact (HMAC-SHA256 with key ${keyId} (seq ${first}-${target.seq - 1}))\n`,
      );
      // The trigger is back: the table refuses changes again.
      // (Compared by message: better-sqlite3's error class can come from another test file's module registry.)
      const refused = await tamper(db, target.seq, false).then(
        () => 'not refused',
        (e: unknown) => String((e as { message?: unknown })?.message),
      );
      expect(refused).toMatch(/append-only/);

      // The real executable agrees (exit code and output through the process).
      if (kind === 'sqlite') {
        const child = spawnSync(
          process.execPath,
          ['-r', 'ts-node/register/transpile-only', path.join(ROOT, 'src/cli/main.ts'), 'audit', 'verify'],
          { cwd: ROOT, env: db.env, encoding: 'utf8', timeout: 120_000 },
        );
        expect(child.status).toBe(1);
        expect(child.stdout).toContain(`broken at entry seq ${target.seq}`);
      }

      // Without the key that made the entries (another key ring), they cannot be verified: said as such.
      const { code, out } = await runCli(['audit', 'verify'], {
        ...db.env,
        TEMPLATE_KEYS: `other:${Buffer.alloc(32, 3).toString('base64')}`,
      });
      expect(code).toBe(1);
      expect(out).toBe(
        `audit chain not verifiable from entry seq ${first}: it was keyed with key ${keyId}, which is not in the key ` +
          'ring (TEMPLATE_KEYS), so it cannot be checked; entries before it are intact\n',
      );
    });
  });
}

// `faceid workstation list` (one clinic, or all) and `faceid workstation revoke <id>` through the same KeysService as
// the admin route (its audit entry and its MIS event), and `faceid clinic sms-languages`, on a database of their own.
for (const kind of TEST_DATABASES) {
  describe(`faceid workstation list / revoke ID, clinic sms-languages (${kind})`, () => {
    let db: TestDatabase;
    let storage: Storage;
    const run = (...argv: string[]) => runCli(argv, db.env);

    beforeAll(async () => {
      db = await createTestDatabase(kind, 'cli-ws');
    });
    afterAll(async () => {
      await storage?.close();
      await db?.drop();
    });

    it('lists the workstations of every clinic or of one, and revokes one by its id alone', async () => {
      const a = json(await run('clinic', 'create', '--name', 'Clinic A', '--json')).id;
      const b = json(await run('clinic', 'create', '--name', 'Clinic B', '--json')).id;
      storage = await openStorage(loadConfig(db.env));
      expect((await run('workstation', 'list')).err).toContain('no workstation yet');
      const a1 = json(await run('workstation', 'create', '--clinic', a, '--name', 'Room 1', '--json'));
      const b1 = json(await run('workstation', 'create', '--clinic', b, '--name', 'Room 9', '--json'));
      const a2 = json(await run('workstation', 'create', '--clinic', a, '--name', 'Room 2', '--json'));

      // Every clinic's, oldest clinic first, with the clinic in the table; never a key.
      const all = await run('workstation', 'list');
      expect(all.code).toBe(0);
      const [header, ...rows] = all.out.trimEnd().split('\n');
      expect(header).toMatch(/^ID\s+CLINIC\s+STATE\s+CREATED\s+ROTATED\s+PREVIOUS KEYS\s+NAME$/);
      expect(rows.map((r) => r.split(/\s{2,}/))).toEqual([
        [a1.id, a, 'active', a1.createdAt, '-', '-', 'Room 1'],
        [a2.id, a, 'active', a2.createdAt, '-', '-', 'Room 2'],
        [b1.id, b, 'active', b1.createdAt, '-', '-', 'Room 9'],
      ]);
      for (const key of [a1.apiKey, b1.apiKey, a2.apiKey]) expect(all.out).not.toContain(key);
      // One clinic's (the old name `keys` too), as JSON lines like GET /admin/clinics/{id}/workstations.
      const onlyB = lines(await run('workstation', 'list', '--clinic', b, '--json'));
      expect(onlyB).toEqual([
        {
          id: b1.id,
          clinicId: b,
          name: 'Room 9',
          state: 'active',
          createdAt: b1.createdAt,
          rotatedAt: null,
          revokedAt: null,
          previousKeys: [],
        },
      ]);
      expect(lines(await run('workstation', 'keys', '--clinic', a, '--json')).map((w) => w.id)).toEqual([a1.id, a2.id]);
      expect((await run('workstation', 'list', '--clinic', b)).out.split('\n')[0]).toMatch(/^ID\s+STATE\s+/);

      // Revoked by its id alone: the clinic is its own.
      expect(await run('workstation', 'revoke', a2.id)).toEqual({
        code: 0,
        out: `workstation ${a2.id} revoked\n`,
        err: '',
      });
      const byKey = await storage.repos.workstations.findByKeyHash(hashApiKey(a2.apiKey));
      expect(byKey?.revokedAt).toBeInstanceOf(Date);
      // --json prints the holder as the admin route answers it.
      const revoked = json(await run('workstation', 'revoke', b1.id, '--json'));
      expect(revoked).toMatchObject({
        id: b1.id,
        clinicId: b,
        state: 'revoked',
        revokedAt: expect.any(String),
        previousKeys: [],
      });
      expect(lines(await run('workstation', 'list', '--json')).map((w) => [w.id, w.state])).toEqual([
        [a1.id, 'active'],
        [a2.id, 'revoked'],
        [b1.id, 'revoked'],
      ]);

      // The audit entry and the MIS event the admin route's revocation writes (there: actor admin).
      const audit = await storage.repos.audit.entriesAfter(0, 1000);
      expect(
        audit.filter((e) => e.action === 'workstation.revoked').map((e) => [e.actor, e.clinicId, e.subject]),
      ).toEqual([
        ['cli', a, a2.id],
        ['cli', b, b1.id],
      ]);
      for (const [clinicId, ws] of [
        [a, a2.id],
        [b, b1.id],
      ]) {
        const events = (await storage.repos.events.after(clinicId, 0, 100)).map((e) => e.payload as Json);
        expect(
          events
            .filter((e) => e.type === 'workstation.key_changed' && e.workstationId === ws)
            .map((e) => [e.change, e.by]),
        ).toEqual([
          ['created', 'operator'],
          ['revoked', 'operator'],
        ]);
      }
      expect(audit.filter((e) => e.action === 'workstation.listed').map((e) => [e.clinicId, e.detail])).toEqual([
        [null, { count: 0, clinics: 2 }],
        [null, { count: 3, clinics: 2 }],
        [b, { count: 1 }],
        [a, { count: 2 }],
        [b, { count: 1 }],
        [null, { count: 3, clinics: 2 }],
      ]);

      // Once revoked, again: not found. Another clinic given: not found either (the clinic must match).
      const again = await run('workstation', 'revoke', a2.id);
      expect(again.code).toBe(1);
      expect(again.err).toContain('[workstation_not_found]');
      const wrongClinic = await run('workstation', 'revoke', a1.id, '--clinic', b);
      expect(wrongClinic.code).toBe(1);
      expect(wrongClinic.err).toContain('[workstation_not_found]');
      const nobody = await run('workstation', 'revoke', '00000000-0000-4000-8000-000000000000');
      expect(nobody.code).toBe(1);
      expect(nobody.err).toContain('[reference_not_found] No such workstation.');
      // The old form still works.
      expect((await run('workstation', 'revoke', '--clinic', a, '--id', a1.id)).out).toBe(
        `workstation ${a1.id} revoked\n`,
      );
    });

    it('refuses a bad revoke or list before touching the database (exit 2)', async () => {
      for (const [argv, message] of [
        [['workstation', 'revoke'], 'WORKSTATION_ID is required'],
        [['workstation', 'revoke', 'not-an-id'], 'WORKSTATION_ID must be an id'],
        [
          [
            'workstation',
            'revoke',
            '00000000-0000-4000-8000-000000000000',
            '--id',
            '00000000-0000-4000-8000-000000000000',
          ],
          'give WORKSTATION_ID once',
        ],
        [['workstation', 'revoke', 'a', 'b'], 'expected one WORKSTATION_ID'],
        [['workstation', 'list', '--clinic', 'x'], '--clinic must be an id'],
        [['mis', 'revoke', '00000000-0000-4000-8000-000000000000'], '--clinic is required'],
      ] as const) {
        const r = await run(...argv);
        expect({ code: r.code, message: r.err.includes(message) }).toEqual({ code: 2, message: true });
        expect(r.err).toContain(`Usage: faceid ${argv[0]} ${argv[1]}`);
      }
    });

    it("sets the languages of a clinic's SMS texts, shows them in the clinic list, audits the change", async () => {
      const [a, b] = lines(await run('clinic', 'list', '--json'));
      expect([a.smsLanguages, b.smsLanguages]).toEqual(['kk+ru', 'kk+ru']);
      expect(json(await run('clinic', 'sms-languages', a.id, 'ru', '--json'))).toEqual({
        id: a.id,
        smsLanguages: 'ru',
        previous: 'kk+ru',
      });
      expect(await run('clinic', 'sms-languages', b.id, 'KK')).toEqual({
        code: 0,
        out: `clinic ${b.id}: SMS texts in Kazakh only\n`,
        err: '',
      });
      expect((await storage.repos.clinics.get(a.id))?.smsLanguages).toBe('ru');
      expect(lines(await run('clinic', 'list', '--json')).map((c) => [c.id, c.smsLanguages])).toEqual([
        [a.id, 'ru'],
        [b.id, 'kk'],
      ]);
      const [header, ...rows] = (await run('clinic', 'list')).out.trimEnd().split('\n');
      expect(header).toMatch(/^ID\s+CREATED\s+SMS\s+NAME$/);
      expect(rows.map((r) => r.split(/\s{2,}/))).toEqual([
        [a.id, a.createdAt, 'ru', 'Clinic A'],
        [b.id, b.createdAt, 'kk', 'Clinic B'],
      ]);
      expect(json(await run('clinic', 'sms-languages', a.id, 'kk+ru', '--json'))).toEqual({
        id: a.id,
        smsLanguages: 'kk+ru',
        previous: 'ru',
      });
      const audit = await storage.repos.audit.entriesAfter(0, 1000);
      expect(
        audit.filter((e) => e.action === 'clinic.sms_languages_set').map((e) => [e.actor, e.subject, e.detail]),
      ).toEqual([
        ['cli', a.id, { smsLanguages: 'ru', previous: 'kk+ru' }],
        ['cli', b.id, { smsLanguages: 'kk', previous: 'kk+ru' }],
        ['cli', a.id, { smsLanguages: 'kk+ru', previous: 'ru' }],
      ]);

      for (const [argv, message] of [
        [['clinic', 'sms-languages', a.id, 'en'], 'must be one of kk+ru, kk, ru'],
        [['clinic', 'sms-languages', a.id], 'expected CLINIC_ID and kk+ru, kk or ru'],
        [['clinic', 'sms-languages', 'x', 'kk'], 'CLINIC_ID must be an id'],
      ] as const) {
        const r = await run(...argv);
        expect({ code: r.code, message: r.err.includes(message) }).toEqual({ code: 2, message: true });
      }
      const unknown = await run('clinic', 'sms-languages', '00000000-0000-4000-8000-000000000000', 'kk');
      expect(unknown.code).toBe(1);
      expect(unknown.err).toContain('[reference_not_found]');
    });
  });
}

/**
 * Changes one audit row's detail the way an intruder with database access would: the append-only trigger is
 * dropped (SQLite) or disabled (PostgreSQL) for the UPDATE and restored after. With `bypass` false, the UPDATE runs
 * under the trigger (which must refuse it).
 */
async function tamper(db: TestDatabase, seq: number, bypass = true): Promise<void> {
  const detail = JSON.stringify({ name: 'Someone else' });
  if (db.kind === 'sqlite') {
    const Database = (await import('better-sqlite3')).default;
    const conn = new Database(db.location);
    try {
      if (!bypass) {
        conn.prepare('UPDATE "AuditLog" SET "detail" = ? WHERE "seq" = ?').run(detail, seq);
        return;
      }
      const trigger = conn
        .prepare(`SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'AuditLog_no_update'`)
        .get() as { sql: string };
      conn.transaction(() => {
        conn.exec('DROP TRIGGER "AuditLog_no_update"');
        conn.prepare('UPDATE "AuditLog" SET "detail" = ? WHERE "seq" = ?').run(detail, seq);
        conn.exec(trigger.sql);
      })();
    } finally {
      conn.close();
    }
    return;
  }
  const { Client } = await import('pg');
  const conn = new Client({ connectionString: db.location });
  await conn.connect();
  try {
    if (!bypass) {
      await conn.query('UPDATE "AuditLog" SET "detail" = $1::jsonb WHERE "seq" = $2', [detail, seq]);
      return;
    }
    await conn.query('BEGIN');
    await conn.query('ALTER TABLE "AuditLog" DISABLE TRIGGER "AuditLog_no_update_delete"');
    await conn.query('UPDATE "AuditLog" SET "detail" = $1::jsonb WHERE "seq" = $2', [detail, seq]);
    await conn.query('ALTER TABLE "AuditLog" ENABLE TRIGGER "AuditLog_no_update_delete"');
    await conn.query('COMMIT');
  } finally {
    await conn.end();
  }
}
