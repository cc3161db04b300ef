import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import WebSocket from 'ws';
import { createApp } from '../src/app.factory';
import { createMisClient, createWorkstation } from '../src/auth';
import { loadConfig } from '../src/config';
import { CLINICS, MIS_CLIENTS, WORKSTATIONS, type ClinicRepository } from '../src/storage/ports';
import { createTestDatabase, TEST_DATABASES, type TestDatabase } from './support/databases';

// Rate limits behind a reverse proxy, on the real app over real HTTP and WebSockets (SQLite and PostgreSQL). Every
// request here comes from 127.0.0.1: the "proxy". With TRUSTED_PROXIES=loopback its X-Forwarded-For names the
// client; with a list that leaves it out, the header is ignored. Keys that check out spend their own budget only.

const PER_MINUTE = 3; // one token every 20 s: nothing here refills while a test runs
const UNKNOWN_SESSION = '00000000-0000-4000-8000-000000000000';

interface Started {
  app: INestApplication;
  base: string;
  database: TestDatabase;
}

async function start(kind: (typeof TEST_DATABASES)[number], trustedProxies: string): Promise<Started> {
  const database = await createTestDatabase(kind, 'proxy');
  const app = await createApp({
    config: loadConfig({
      ...database.env,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      FACEID_BOOTSTRAP: 'false',
      ENGINE_WORKERS: '1',
      RATE_LIMIT_PER_MINUTE: String(PER_MINUTE),
      TRUSTED_PROXIES: trustedProxies,
    }),
  });
  await app.listen(0, '127.0.0.1');
  return { app, base: `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`, database };
}

/** GET /sessions/<unknown id>: 404 with a working workstation key, 401 without, 429 when limited. */
async function desk(base: string, key: string, forwardedFor?: string): Promise<number> {
  const res = await fetch(`${base}/sessions/${UNKNOWN_SESSION}`, {
    headers: { authorization: `Bearer ${key}`, ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}) },
  });
  await res.arrayBuffer();
  return res.status;
}

/** The close code of an events WebSocket opened with this key (and X-Forwarded-For), once it is refused or ready. */
function eventsSocket(
  base: string,
  key: string,
  forwardedFor: string,
): Promise<{ close: number | null; code: string | null }> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws/events`, ['faceid.events.v1', `key.${key}`], {
    headers: { 'x-forwarded-for': forwardedFor },
  });
  return new Promise((resolve, reject) => {
    let code: string | null = null;
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.type === 'error') code = msg.code;
      if (msg.type === 'ready') {
        ws.terminate();
        resolve({ close: null, code: 'ready' });
      }
    });
    ws.on('close', (close) => resolve({ close, code }));
    ws.on('error', reject);
  });
}

const badKey = (i: number) => `fid_ws_${String(i).padStart(43, 'x')}`;

for (const db of TEST_DATABASES) {
  describe(`rate limits behind a proxy (${db})`, () => {
    let trusted: Started;
    let untrusted: Started;

    beforeAll(async () => {
      trusted = await start(db, 'loopback');
      // A proxy list without this peer: its X-Forwarded-For is not believed.
      untrusted = await start(db, '10.0.0.0/8, fd00::/8');
    });
    afterAll(async () => {
      for (const s of [trusted, untrusted]) {
        await s?.app.close();
        await s?.database.drop();
      }
    });

    const keysOf = async (s: Started) => {
      const clinics = s.app.get<ClinicRepository>(CLINICS);
      const a = await clinics.create('Clinic A');
      const b = await clinics.create('Clinic B');
      return {
        a: (await createWorkstation(s.app.get(WORKSTATIONS), a.id, 'A desk')).apiKey,
        b: (await createWorkstation(s.app.get(WORKSTATIONS), b.id, 'B desk')).apiKey,
        bMis: (await createMisClient(s.app.get(MIS_CLIENTS), b.id, 'B MIS')).apiKey,
      };
    };

    for (const which of ['trusted', 'untrusted'] as const) {
      it(`a burst on clinic A's key never refuses clinic B's keys from the same address (${which} proxy)`, async () => {
        const s = which === 'trusted' ? trusted : untrusted;
        const { a, b, bMis } = await keysOf(s);
        // All through the one proxy address, as behind a TLS terminator; no X-Forwarded-For at all.
        const burst = [];
        for (let i = 0; i < PER_MINUTE + 3; i++) burst.push(await desk(s.base, a));
        expect(burst).toEqual([...Array(PER_MINUTE).fill(404), 429, 429, 429]);
        expect(await desk(s.base, b)).toBe(404);
        const me = await fetch(`${s.base}/mis/me`, { headers: { authorization: `Bearer ${bMis}` } });
        expect(me.status).toBe(200);
        for (let i = 0; i < PER_MINUTE - 1; i++) expect(await desk(s.base, b)).toBe(404);
        expect(await desk(s.base, b)).toBe(429); // B's own budget, spent by B
      });
    }

    it('behind a trusted proxy, failed key checks count per forwarded client address (HTTP and the events WebSocket)', async () => {
      const { b } = await keysOf(trusted);
      const guesser = '203.0.113.7';
      for (let i = 0; i < PER_MINUTE; i++) expect(await desk(trusted.base, badKey(i), `${guesser}`)).toBe(401);
      expect(await desk(trusted.base, badKey(99), guesser)).toBe(429);
      // The guesser's address is refused, even with a working key (checked before any lookup)...
      expect(await desk(trusted.base, b, guesser)).toBe(429);
      expect(await eventsSocket(trusted.base, b, guesser)).toEqual({ close: 4429, code: 'rate_limited' });
      // ...but not the other clients behind the same proxy, nor the proxy's own address.
      expect(await desk(trusted.base, badKey(100), '203.0.113.8')).toBe(401);
      expect(await desk(trusted.base, b, '198.51.100.20')).toBe(404);
      expect(await desk(trusted.base, badKey(101))).toBe(401);
      // A chain of proxies: the rightmost address the trusted proxies did not add is the client.
      expect(await desk(trusted.base, badKey(102), `${guesser}, 127.0.0.1`)).toBe(429);
      expect(await desk(trusted.base, badKey(103), `${guesser}, 198.51.100.30`)).toBe(401);

      // The events WebSocket reads the same address.
      const wsGuesser = '203.0.113.50';
      for (let i = 0; i < PER_MINUTE; i++) {
        expect(await eventsSocket(trusted.base, badKey(200 + i), wsGuesser)).toEqual({
          close: 4001,
          code: 'unauthorized',
        });
      }
      expect(await eventsSocket(trusted.base, badKey(210), wsGuesser)).toEqual({ close: 4429, code: 'rate_limited' });
      expect(await eventsSocket(trusted.base, badKey(211), '203.0.113.51')).toEqual({
        close: 4001,
        code: 'unauthorized',
      });
      expect(await eventsSocket(trusted.base, b, '203.0.113.51')).toEqual({ close: null, code: 'ready' });
    });

    it('from a peer that is not a trusted proxy, X-Forwarded-For is ignored: the peer address counts', async () => {
      const { b } = await keysOf(untrusted);
      for (let i = 0; i < PER_MINUTE; i++)
        expect(await desk(untrusted.base, badKey(i), `203.0.113.${10 + i}`)).toBe(401);
      // Another forwarded address changes nothing: the failures were the peer's.
      expect(await desk(untrusted.base, badKey(50), '203.0.113.99')).toBe(429);
      expect(await eventsSocket(untrusted.base, badKey(51), '203.0.113.98')).toEqual({
        close: 4429,
        code: 'rate_limited',
      });
      expect(await desk(untrusted.base, b, '198.51.100.20')).toBe(429);
    });
  });
}
