import { randomBytes } from 'node:crypto';
import { KeyRing } from '../keyring';
import { CodeHasher, newCode } from './code-hash';

const key = (id: string) => ({ id, key: randomBytes(32) });

describe('CodeHasher', () => {
  const k1 = key('k1');
  const k2 = key('k2');

  it('stores <keyId>:<hmac hex>, never the code, and verifies only the same code of the same session', () => {
    const hasher = new CodeHasher(new KeyRing([k1]));
    const stored = hasher.hash('session-a', '042137');
    expect(stored).toMatch(/^k1:[0-9a-f]{64}$/);
    expect(stored).not.toContain('042137');
    expect(hasher.verify(stored, 'session-a', '042137')).toBe(true);
    expect(hasher.verify(stored, 'session-a', '042138')).toBe(false);
    // Bound to the session: the same code's hash does not verify for another session.
    expect(hasher.verify(stored, 'session-b', '042137')).toBe(false);
    expect(hasher.hash('session-b', '042137')).not.toBe(stored);
  });

  it('keeps verifying hashes of an older key after a rotation, with new hashes under the new key', () => {
    const before = new CodeHasher(new KeyRing([k1])).hash('s', '123456');
    const rotated = new CodeHasher(new KeyRing([k2, k1]));
    expect(rotated.verify(before, 's', '123456')).toBe(true);
    expect(rotated.hash('s', '123456')).toMatch(/^k2:/);
  });

  it('refuses a hash whose key is gone with a typed error, and malformed hashes as wrong', () => {
    const stored = new CodeHasher(new KeyRing([k1])).hash('s', '123456');
    expect(() => new CodeHasher(new KeyRing([k2])).verify(stored, 's', '123456')).toThrow(
      expect.objectContaining({ code: 'template_key_unknown' }),
    );
    expect(new CodeHasher(new KeyRing([k1])).verify('k1:nothex', 's', '123456')).toBe(false);
    expect(new CodeHasher(new KeyRing([k1])).verify('', 's', '123456')).toBe(false);
  });

  it('derives its key: the hash is not an HMAC under the template key itself', () => {
    const { createHmac } = jest.requireActual<typeof import('node:crypto')>('node:crypto');
    const direct = createHmac('sha256', k1.key).update('s\u0000123456').digest('hex');
    expect(new CodeHasher(new KeyRing([k1])).hash('s', '123456')).not.toBe(`k1:${direct}`);
  });

  it('draws six digits, leading zeros kept, spread over the whole range', () => {
    const codes = Array.from({ length: 2000 }, newCode);
    for (const c of codes) expect(c).toMatch(/^\d{6}$/);
    expect(new Set(codes).size).toBeGreaterThan(1980);
    expect(codes.some((c) => c.startsWith('0'))).toBe(true);
  });
});
