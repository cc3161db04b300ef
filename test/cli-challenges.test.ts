import { loadConfig } from '../src/config';
import { normaliseChallenges } from '../src/identification/challenge-policy.service';
import { openStorage, type Storage } from '../src/storage';
import { runCli, type CliRun as Run } from './support/cli';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';

// `faceid workstation challenges` and `faceid clinic challenges` through the real CLI entry (main() with captured
// output), against a throwaway SQLite file and a PostgreSQL database, then what they stored and audited.

type Json = any; // parsed command output, checked field by field

const NOWHERE = '00000000-0000-4000-8000-000000000000';

for (const kind of TEST_DATABASES) {
  describe(`faceid challenges commands (${kind})`, () => {
    let db: TestDatabase;
    let storage: Storage; // a second connection, to check what the commands stored
    let clinicId = '';
    let deskId = '';

    /** The service default here is turn,blink, so each level's effect shows. */
    const run = (...argv: string[]): Promise<Run> => runCli(argv, { ...db.env, LIVENESS_CHALLENGES: 'turn,blink' });
    const json = (r: Run): Json => {
      expect(r).toMatchObject({ code: 0 });
      return JSON.parse(r.out);
    };
    const norm = normaliseChallenges;

    beforeAll(async () => {
      db = await createTestDatabase(kind, 'cli-challenges');
      clinicId = json(await run('clinic', 'create', '--name', 'Polyclinic 2', '--json')).id;
      deskId = json(await run('workstation', 'create', '--clinic', clinicId, '--name', 'Room 5', '--json')).id;
      storage = await openStorage(loadConfig(db.env));
    });
    afterAll(async () => {
      await storage?.close();
      await db?.drop();
    });

    const settings = () => storage.repos.workstations.livenessChallenges(clinicId, deskId);

    it("set a workstation's own challenges", async () => {
      const r = await run('workstation', 'challenges', deskId, 'turn,blink');
      expect(r).toEqual({
        code: 0,
        out: `workstation ${deskId}: liveness challenges ${norm('turn,blink')} (its own setting)\n`,
        err: '',
      });
      expect(await settings()).toEqual({ workstation: norm('turn,blink'), clinic: null });
    });

    it("set a clinic's challenges; a workstation with its own keeps them", async () => {
      expect(json(await run('clinic', 'challenges', clinicId, ' Light , turn,BLINK ', '--json'))).toEqual({
        id: clinicId,
        challenges: norm('light,turn,blink'),
        effective: norm('light,turn,blink'),
        source: 'clinic',
      });
      expect(await settings()).toEqual({ workstation: norm('turn,blink'), clinic: norm('light,turn,blink') });
    });

    it("return a workstation to its clinic's, and the clinic to LIVENESS_CHALLENGES", async () => {
      expect(json(await run('workstation', 'challenges', deskId, 'default', '--json'))).toEqual({
        id: deskId,
        clinicId,
        challenges: null,
        effective: norm('light,turn,blink'),
        source: 'clinic',
      });
      const text = await run('workstation', 'challenges', deskId, 'default');
      expect(text.out).toBe(
        `workstation ${deskId}: liveness challenges ${norm('light,turn,blink')} (the clinic's setting)\n`,
      );
      const clinic = await run('clinic', 'challenges', clinicId, 'DEFAULT');
      expect(clinic.out).toBe(
        `clinic ${clinicId}: liveness challenges ${norm('turn,blink')} (the service default, LIVENESS_CHALLENGES)\n`,
      );
      expect(await settings()).toEqual({ workstation: null, clinic: null });
    });

    it('refuse bad arguments with the usage (2) before touching the database; unknown ids fail (1)', async () => {
      const cases: [string[], string][] = [
        [['workstation', 'challenges'], 'expected WORKSTATION_ID and LIST or default, got 0'],
        [['workstation', 'challenges', deskId], 'got 1 argument'],
        [['workstation', 'challenges', deskId, 'turn,blink', 'extra'], 'got 3 argument'],
        [['workstation', 'challenges', 'desk-5', 'turn,blink'], 'WORKSTATION_ID must be an id'],
        [['workstation', 'challenges', deskId, 'sparkle,blink'], 'LIST: '],
        [['clinic', 'challenges', clinicId, ''], 'LIST: '],
        [['clinic', 'challenges', 'c1', 'default'], 'CLINIC_ID must be an id'],
        [['clinic', 'challenges', clinicId, 'turn,blink', '--bogus'], 'Unknown option'],
      ];
      for (const [argv, message] of cases) {
        const r = await run(...argv);
        expect({ argv, code: r.code }).toEqual({ argv, code: 2 });
        expect(r.err).toContain(message);
        expect(r.err).toContain(`Usage: faceid ${argv[0]} challenges`);
        expect(r.out).toBe('');
      }
      for (const argv of [
        ['workstation', 'challenges', NOWHERE, 'turn,blink'],
        ['clinic', 'challenges', NOWHERE, 'default'],
      ]) {
        const r = await run(...argv);
        expect(r.code).toBe(1);
        expect(r.err).toContain('[reference_not_found]');
      }
      expect(await settings()).toEqual({ workstation: null, clinic: null });
    });

    it('print their usage for --help, and are listed in their groups', async () => {
      const help = await run('workstation', 'challenges', '--help');
      expect(help.code).toBe(0);
      expect(help.out).toContain('Usage: faceid workstation challenges WORKSTATION_ID LIST|default [--json]');
      expect(help.out).toContain('turn,blink');
      const group = await run('clinic', '--help');
      expect(group.out).toMatch(/^ {2}challenges /m);
    });

    it('audit every change (actor cli) with the value it replaced', async () => {
      const entries = (await storage.repos.audit.entriesAfter(0, 1000)).filter((e) =>
        e.action.endsWith('.liveness_challenges_set'),
      );
      expect(entries.map((e) => [e.actor, e.action, e.clinicId, e.subject, e.detail])).toEqual([
        [
          'cli',
          'workstation.liveness_challenges_set',
          clinicId,
          deskId,
          { challenges: norm('turn,blink'), previous: null },
        ],
        [
          'cli',
          'clinic.liveness_challenges_set',
          clinicId,
          clinicId,
          { challenges: norm('light,turn,blink'), previous: null },
        ],
        [
          'cli',
          'workstation.liveness_challenges_set',
          clinicId,
          deskId,
          { challenges: null, previous: norm('turn,blink') },
        ],
        ['cli', 'workstation.liveness_challenges_set', clinicId, deskId, { challenges: null, previous: null }],
        [
          'cli',
          'clinic.liveness_challenges_set',
          clinicId,
          clinicId,
          { challenges: null, previous: norm('light,turn,blink') },
        ],
      ]);
    });
  });
}
