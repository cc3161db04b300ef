import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createApp } from '../src/app.factory';
import { hashApiKey, WorkstationsService } from '../src/auth';
import { loadConfig } from '../src/config';
import { JsonLogger, type LogLine } from '../src/json-logger';
import {
  AUDIT,
  CLINICS,
  WORKSTATIONS,
  type AuditRepository,
  type ClinicRepository,
  type WorkstationRepository,
} from '../src/storage/ports';

// Workstation API keys on the real app and real storage (SQLite in a temporary folder), over real HTTP.

const IIN = '900101300027';

interface Started {
  app: NestExpressApplication;
  url: string;
  logs: LogLine[];
}

async function start(dir: string, env: Record<string, string> = {}): Promise<Started> {
  const logs: LogLine[] = [];
  const config = loadConfig({
    ...process.env,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    ENGINE_WORKERS: '1',
    FACEID_DATA_DIR: dir,
    DATABASE_URL: '',
    TEMPLATE_KEYS: '',
    FACEID_BOOTSTRAP: 'true',
    RATE_LIMIT_PER_MINUTE: '1000',
    ...env,
  });
  const app = await createApp({ config, logger: new JsonLogger(config.LOG_LEVEL, (l) => logs.push(JSON.parse(l))) });
  await app.listen(config.PORT, config.HOST);
  return { app, url: await app.getUrl(), logs };
}

const bootstrapLines = (logs: LogLine[]) => logs.filter((l) => /shown only this once/.test(l.msg));

/** An authenticated request that needs no engine: revoking a template nobody enrolled (404 once authorised). */
function revoke(url: string, authorization?: string): Promise<Response> {
  return fetch(`${url}/patients/${IIN}/template`, {
    method: 'DELETE',
    headers: authorization === undefined ? {} : { authorization },
  });
}

async function reply(res: Response): Promise<{ status: number; body: unknown }> {
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const unauthorized = { status: 401, body: { error: { code: 'unauthorized', message: expect.any(String) } } };

describe('workstation API keys (real app and storage)', () => {
  const dirs: string[] = [];
  const apps: NestExpressApplication[] = [];
  const tempDir = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-auth-'));
    dirs.push(d);
    return d;
  };
  const started = async (dir: string, env?: Record<string, string>) => {
    const s = await start(dir, env);
    apps.push(s.app);
    return s;
  };

  afterAll(async () => {
    for (const app of apps) await app.close().catch(() => undefined);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('a fresh install prints a working workstation key and MIS key, once; a restart creates nothing more', async () => {
    const dir = tempDir();
    const first = await started(dir);
    const lines = bootstrapLines(first.logs);
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line.level).toBe('warn');
      expect(line.msg).toContain('Authorization: Bearer');
    }
    const key = /(fid_ws_[A-Za-z0-9_-]{43})/.exec(lines[0].msg)![1];
    expect(lines[0].msg).toContain('FACEID_BOOTSTRAP=false');
    const misKey = /(fid_mis_[A-Za-z0-9_-]{43})/.exec(lines[1].msg)![1];
    expect(lines[1].msg).toContain('"Demo MIS"');
    // Each key appears in its own line only.
    expect(JSON.stringify(first.logs.filter((l) => l !== lines[0]))).not.toContain(key);
    expect(JSON.stringify(first.logs.filter((l) => l !== lines[1]))).not.toContain(misKey);
    expect(await reply(await revoke(first.url, `Bearer ${key}`))).toMatchObject({
      status: 404,
      body: { error: { code: 'template_not_found' } },
    });
    // Only the hash is stored.
    const ws = (await first.app.get<WorkstationRepository>(WORKSTATIONS).findByKeyHash(hashApiKey(key)))!;
    expect(ws.name).toBe('Demo workstation');
    expect((await first.app.get<ClinicRepository>(CLINICS).get(ws.clinicId))!.name).toBe('Demo clinic');
    const audit = await first.app.get<AuditRepository>(AUDIT).list(ws.clinicId, 10);
    expect(audit.map((e) => e.action)).toEqual(expect.arrayContaining(['clinic.bootstrapped', 'mis_client.created']));
    expect(JSON.stringify(audit)).not.toContain(key);
    expect(JSON.stringify(audit)).not.toContain(misKey);
    // The MIS key works on the MIS endpoints, scoped to the demo clinic.
    const me = await reply(await fetch(`${first.url}/mis/me`, { headers: { authorization: `Bearer ${misKey}` } }));
    expect(me).toMatchObject({
      status: 200,
      body: { name: 'Demo MIS', clinic: { id: ws.clinicId, name: 'Demo clinic' } },
    });
    for (const f of fs.readdirSync(dir).filter((n) => n.startsWith('faceid.db'))) {
      const bytes = fs.readFileSync(path.join(dir, f));
      expect(bytes.includes(Buffer.from(key))).toBe(false);
      expect(bytes.includes(Buffer.from(misKey))).toBe(false);
    }
    await first.app.close();

    const second = await started(dir);
    expect(bootstrapLines(second.logs)).toHaveLength(0);
    expect(await second.app.get<ClinicRepository>(CLINICS).count()).toBe(1);
    expect((await reply(await revoke(second.url, `Bearer ${key}`))).status).toBe(404);
  });

  it('FACEID_BOOTSTRAP=false creates nothing', async () => {
    const s = await started(tempDir(), { FACEID_BOOTSTRAP: 'false' });
    expect(bootstrapLines(s.logs)).toHaveLength(0);
    expect(s.logs.some((l) => /count clinics/.test(l.msg))).toBe(false);
  });

  describe('guard', () => {
    let s: Started;
    let key: string;
    let otherKey: string;

    beforeAll(async () => {
      s = await started(tempDir(), { FACEID_BOOTSTRAP: 'false', RATE_LIMIT_PER_MINUTE: '5' });
      const clinic = await s.app.get<ClinicRepository>(CLINICS).create('Clinic');
      key = (await s.app.get(WorkstationsService).createWorkstation(clinic.id, 'Desk 1')).apiKey;
      otherKey = (await s.app.get(WorkstationsService).createWorkstation(clinic.id, 'Desk 2')).apiKey;
    });

    it('answers one 401 for a missing, malformed or unknown key', async () => {
      const answers = [
        await reply(await revoke(s.url)),
        await reply(await revoke(s.url, key)), // no scheme
        await reply(await revoke(s.url, `Basic ${key}`)),
        await reply(await revoke(s.url, `Bearer ${key.slice(0, -1)}`)),
      ];
      for (const a of answers) expect(a).toEqual(unauthorized);
      expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    });

    it('limits failed key checks per client address (429 rate_limited with Retry-After); working keys spend only their own budget', async () => {
      // The 4 failures above came from this address: one left of 5. Requests with a working key do not spend them.
      for (let i = 0; i < 3; i++) expect((await revoke(s.url, `Bearer ${key}`)).status).toBe(404);
      expect((await revoke(s.url, `Bearer ${otherKey}`)).status).toBe(404);
      expect(await reply(await revoke(s.url, `Bearer ${key.slice(0, -2)}`))).toEqual(unauthorized); // the fifth failure
      // Now the address is refused before any key lookup, whatever the key.
      const limited = await revoke(s.url, `Bearer ${otherKey}`);
      expect(await reply(limited.clone())).toEqual({
        status: 429,
        body: { error: { code: 'rate_limited', message: expect.any(String) } },
      });
      const retry = Number(limited.headers.get('retry-after'));
      expect(retry).toBeGreaterThanOrEqual(1);
      expect(retry).toBeLessThanOrEqual(12);
      // Routes without a key are not limited.
      expect((await fetch(`${s.url}/openapi.json`)).status).toBe(200);
    });

    it('documents the scheme in /openapi.json', async () => {
      const doc = (await (await fetch(`${s.url}/openapi.json`)).json()) as {
        components: { securitySchemes: Record<string, unknown> };
      };
      expect(doc.components.securitySchemes.workstationKey).toEqual({
        type: 'http',
        scheme: 'bearer',
        description: expect.stringContaining('fid_ws_'),
      });
    });

    it('never logs the keys', () => {
      const all = JSON.stringify(s.logs);
      expect(all).not.toContain(key);
      expect(all).not.toContain(otherKey);
    });
  });
});
