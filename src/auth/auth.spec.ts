import type { ExecutionContext } from '@nestjs/common';
import type { Workstation, WorkstationRepository } from '../storage/ports';
import { API_KEY_PATTERN, createWorkstation, generateApiKey, hashApiKey } from './api-key';
import { ApiKeyGuard } from './api-key.guard';
import { PRINCIPAL, principalOf } from './principal';
import { RateLimiter } from './rate-limiter';

describe('API keys', () => {
  it('look like fid_ws_ + 43 base64url characters (32 bytes) and differ every time', () => {
    const keys = new Set(Array.from({ length: 50 }, generateApiKey));
    expect(keys.size).toBe(50);
    for (const k of keys) {
      expect(k).toMatch(API_KEY_PATTERN);
      expect(Buffer.from(k.slice('fid_ws_'.length), 'base64url')).toHaveLength(32);
    }
  });

  it('are stored as sha256 hex only', async () => {
    expect(hashApiKey('fid_ws_x')).toMatch(/^[0-9a-f]{64}$/);
    const create = jest.fn(async (clinicId: string, name: string, hash: string) => ({
      id: 'w1',
      clinicId,
      name,
      hash,
    }));
    const repo = { create, findByKeyHash: jest.fn() } as unknown as WorkstationRepository;
    const { workstation, apiKey } = await createWorkstation(repo, 'c1', 'Desk 1');
    expect(create).toHaveBeenCalledWith('c1', 'Desk 1', hashApiKey(apiKey));
    expect(JSON.stringify(create.mock.calls)).not.toContain(apiKey);
    expect(workstation).toMatchObject({ id: 'w1' });
  });
});

describe('RateLimiter', () => {
  it('allows a burst of perMinute, then refills at perMinute a minute', () => {
    let now = 0;
    const rl = new RateLimiter(60, () => now);
    for (let i = 0; i < 60; i++) expect(rl.take('a')).toBe(0);
    expect(rl.take('a')).toBe(1); // one token a second
    expect(rl.take('b')).toBe(0); // keys are separate
    now += 1000;
    expect(rl.take('a')).toBe(0);
    expect(rl.take('a')).toBe(1);
    now += 500;
    expect(rl.take('a')).toBe(1); // half a token: wait the rest, rounded up
  });

  it('tells how long to wait at low rates', () => {
    let now = 0;
    const rl = new RateLimiter(2, () => now);
    expect(rl.take('k')).toBe(0);
    expect(rl.take('k')).toBe(0);
    expect(rl.take('k')).toBe(30);
    now += 29_000;
    expect(rl.take('k')).toBe(1);
  });

  it('is off at 0', () => {
    const rl = new RateLimiter(0);
    for (let i = 0; i < 1000; i++) expect(rl.take('a')).toBe(0);
    expect(rl.size).toBe(0);
  });

  it('forgets refilled buckets and caps how many it tracks', () => {
    let now = 0;
    const rl = new RateLimiter(10, () => now, 100);
    for (let i = 0; i < 500; i++) rl.take(`k${i}`);
    expect(rl.size).toBe(100);
    now += 120_000;
    for (let i = 0; i < 1100; i++) rl.take('same');
    expect(rl.size).toBeLessThanOrEqual(2);
  });
});

describe('ApiKeyGuard', () => {
  const active: Workstation = { id: 'ws1', clinicId: 'c1', name: 'Desk', createdAt: new Date(), revokedAt: null };
  const key = generateApiKey();
  const revokedKey = generateApiKey();
  const repo: WorkstationRepository = {
    create: jest.fn(),
    findById: jest.fn(),
    setLivenessChallenges: jest.fn(),
    livenessChallenges: jest.fn(),
    recordCamera: jest.fn(),
    findByKeyHash: jest.fn(async (hash: string) =>
      hash === hashApiKey(key)
        ? active
        : hash === hashApiKey(revokedKey)
          ? { ...active, id: 'ws2', revokedAt: new Date() }
          : null,
    ),
  };

  function contextFor(req: object): ExecutionContext {
    return { switchToHttp: () => ({ getRequest: () => req }) } as unknown as ExecutionContext;
  }

  async function attempt(guard: ApiKeyGuard, authorization?: string, ip = '10.0.0.1') {
    const req: Record<string | symbol, unknown> = { headers: authorization ? { authorization } : {}, ip };
    try {
      await guard.canActivate(contextFor(req));
      return { ok: true, principal: principalOf(req as never) };
    } catch (err) {
      return {
        ok: false,
        code: (err as { code?: string }).code,
        message: (err as Error).message,
        retry: (err as { retryAfterSeconds?: number }).retryAfterSeconds,
      };
    }
  }

  it('attaches the principal of an active key', async () => {
    const r = await attempt(new ApiKeyGuard(repo, new RateLimiter(100)), `Bearer ${key}`);
    expect(r).toEqual({ ok: true, principal: { clinicId: 'c1', workstationId: 'ws1' } });
    expect(await attempt(new ApiKeyGuard(repo, new RateLimiter(100)), `bearer  ${key}`)).toMatchObject({ ok: true });
  });

  it('answers the same unauthorized for a missing, malformed, unknown or revoked key', async () => {
    const guard = new ApiKeyGuard(repo, new RateLimiter(100));
    const results = await Promise.all([
      attempt(guard),
      attempt(guard, key),
      attempt(guard, `Basic ${key}`),
      attempt(guard, 'Bearer fid_ws_short'),
      attempt(guard, `Bearer ${generateApiKey()}`),
      attempt(guard, `Bearer ${revokedKey}`),
      attempt(guard, `Bearer ${key} extra`),
    ]);
    const messages = new Set(results.map((r) => `${r.ok}|${r.code}|${r.message}`));
    expect(messages.size).toBe(1);
    expect(results[0]).toMatchObject({ ok: false, code: 'unauthorized' });
    for (const r of results) expect(r.message).not.toContain(key);
  });

  it('rate limits per IP (before the lookup) and per key', async () => {
    const guard = new ApiKeyGuard(repo, new RateLimiter(3));
    for (let i = 0; i < 3; i++)
      expect(await attempt(guard, 'Bearer wrong', '10.0.0.9')).toMatchObject({ code: 'unauthorized' });
    expect(await attempt(guard, `Bearer ${key}`, '10.0.0.9')).toMatchObject({ code: 'rate_limited', retry: 20 });
    // The same key from other addresses: its own bucket runs out after 3.
    for (let i = 0; i < 3; i++)
      expect(await attempt(guard, `Bearer ${key}`, `10.1.0.${i}`)).toMatchObject({ ok: true });
    expect(await attempt(guard, `Bearer ${key}`, '10.1.0.99')).toMatchObject({ code: 'rate_limited' });
  });

  it('principalOf refuses a request the guard never saw', () => {
    expect(() => principalOf({})).toThrow(/guard/);
    expect(principalOf({ [PRINCIPAL]: { clinicId: 'c', workstationId: 'w' } })).toEqual({
      clinicId: 'c',
      workstationId: 'w',
    });
  });
});
