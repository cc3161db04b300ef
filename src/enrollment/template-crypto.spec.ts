import { KeyRing } from '../keyring';
import { TemplateCipher, EMBEDDING_LENGTH } from './template-crypto';
import { TemplateCryptoError } from './errors';

const key = (byte: number) => Buffer.alloc(32, byte);
const owner = { clinicId: 'clinic-a', patientId: 'patient-1' };

function embedding(seed: number): Float32Array {
  const e = new Float32Array(EMBEDDING_LENGTH);
  let norm = 0;
  for (let i = 0; i < e.length; i++) {
    e[i] = Math.sin(seed * 7.1 + i * 0.37);
    norm += e[i] * e[i];
  }
  for (let i = 0; i < e.length; i++) e[i] /= Math.sqrt(norm);
  return e;
}

function errorOf(fn: () => unknown): TemplateCryptoError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TemplateCryptoError);
    return err as TemplateCryptoError;
  }
  throw new Error('expected a TemplateCryptoError');
}

describe('TemplateCipher', () => {
  const cipher = new TemplateCipher([{ id: 'k1', key: key(1) }]);

  it('round-trips an embedding exactly and zeroes the plaintext it was given', () => {
    const original = embedding(1);
    const input = Float32Array.from(original);
    const t = cipher.encrypt(input, owner);
    expect(input.every((v) => v === 0)).toBe(true);
    expect(t.keyId).toBe('k1');
    expect(t.iv).toHaveLength(12);
    expect(t.tag).toHaveLength(16);
    expect(t.ciphertext).toHaveLength(EMBEDDING_LENGTH * 4);
    // The ciphertext is not the plaintext bytes.
    expect(Buffer.compare(t.ciphertext, Buffer.from(original.buffer))).not.toBe(0);
    expect(cipher.decrypt(t, owner)).toEqual(original);
  });

  it('uses a fresh nonce every time', () => {
    const a = cipher.encrypt(embedding(2), owner);
    const b = cipher.encrypt(embedding(2), owner);
    expect(a.iv.equals(b.iv)).toBe(false);
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
  });

  it.each([
    ['ciphertext', (t: { ciphertext: Buffer }) => (t.ciphertext[100] ^= 1)],
    ['tag', (t: { tag: Buffer }) => (t.tag[0] ^= 0x80)],
    ['nonce', (t: { iv: Buffer }) => (t.iv[11] ^= 1)],
  ])('refuses a template whose %s was altered', (_part, tamper) => {
    const t = cipher.encrypt(embedding(3), owner);
    tamper(t as never);
    const err = errorOf(() => cipher.decrypt(t, owner));
    expect(err.code).toBe('template_decrypt_failed');
  });

  it('refuses a template moved to another patient or clinic (AAD)', () => {
    const t = cipher.encrypt(embedding(4), owner);
    expect(errorOf(() => cipher.decrypt(t, { ...owner, patientId: 'patient-2' })).code).toBe('template_decrypt_failed');
    expect(errorOf(() => cipher.decrypt(t, { ...owner, clinicId: 'clinic-b' })).code).toBe('template_decrypt_failed');
    // The separator keeps "ab"+"c" apart from "a"+"bc".
    const t2 = cipher.encrypt(embedding(4), { clinicId: 'ab', patientId: 'c' });
    expect(errorOf(() => cipher.decrypt(t2, { clinicId: 'a', patientId: 'bc' })).code).toBe('template_decrypt_failed');
  });

  it('refuses truncated or padded ciphertexts', () => {
    const t = cipher.encrypt(embedding(5), owner);
    expect(errorOf(() => cipher.decrypt({ ...t, ciphertext: t.ciphertext.subarray(0, 100) }, owner)).code).toBe(
      'template_decrypt_failed',
    );
    expect(
      errorOf(() => cipher.decrypt({ ...t, ciphertext: Buffer.concat([t.ciphertext, Buffer.alloc(4)]) }, owner)).code,
    ).toBe('template_decrypt_failed');
  });

  it('rotates keys: the first encrypts, every key decrypts, a removed key is named', () => {
    const old = new TemplateCipher([{ id: 'old', key: key(2) }]);
    const oldTemplate = old.encrypt(embedding(6), owner);
    const rotated = new TemplateCipher([
      { id: 'new', key: key(3) },
      { id: 'old', key: key(2) },
    ]);
    expect(rotated.currentKeyId).toBe('new');
    expect(rotated.decrypt(oldTemplate, owner)).toEqual(embedding(6));
    const fresh = rotated.encrypt(embedding(7), owner);
    expect(fresh.keyId).toBe('new');
    const err = errorOf(() => old.decrypt(fresh, owner));
    expect(err.code).toBe('template_key_unknown');
    expect(err.message).toContain('"new"');
    // The same id with another key is a wrong key, not an unknown one.
    const impostor = new TemplateCipher([{ id: 'new', key: key(9) }]);
    expect(errorOf(() => impostor.decrypt(fresh, owner)).code).toBe('template_decrypt_failed');
  });

  it('never puts key or plaintext material into errors', () => {
    const t = cipher.encrypt(embedding(8), owner);
    t.tag[0] ^= 1;
    const err = errorOf(() => cipher.decrypt(t, owner));
    const text = `${err.message} ${err.stack}`;
    expect(text).not.toContain(key(1).toString('base64'));
    expect(text).not.toMatch(/\d\.\d{4,}/); // no float values
  });

  it('seals with the key ring it is given, and keeps templates apart from other sealed values', () => {
    const ring = new KeyRing([{ id: 'k1', key: key(1) }]);
    const t = new TemplateCipher(ring).encrypt(embedding(9), owner);
    expect(cipher.decrypt(t, owner)).toEqual(embedding(9)); // the same key: the same ring
    // Opened as a plain sealed value of the same ids, the template's AAD does not match.
    expect(() => ring.open(t, { purpose: 'template', ids: [owner.clinicId, owner.patientId] })).toThrow(
      expect.objectContaining({ code: 'unseal_failed' }),
    );
  });

  it('refuses bad keys and embeddings', () => {
    expect(() => new TemplateCipher([])).toThrow();
    expect(() => new TemplateCipher([{ id: 'a', key: Buffer.alloc(16) }])).toThrow();
    expect(
      () =>
        new TemplateCipher([
          { id: 'a', key: key(1) },
          { id: 'a', key: key(2) },
        ]),
    ).toThrow();
    const short = new Float32Array(128).fill(0.5);
    expect(() => cipher.encrypt(short, owner)).toThrow();
    expect(short.every((v) => v === 0)).toBe(true); // zeroed even on failure
  });
});
