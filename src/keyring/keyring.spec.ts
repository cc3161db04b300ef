import { createDecipheriv, hkdfSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KEY_FILE_NAME, keyRingFromConfig, loadOrCreateKeyFile } from './key-file';
import { KeyRing } from './keyring';

const key = (byte: number) => Buffer.alloc(32, byte);
const context = { purpose: 'webhook-secret', ids: ['clinic-a', 'https://mis.example/h'] };

describe('KeyRing', () => {
  const ring = new KeyRing([{ id: 'k1', key: key(1) }]);

  it('seals with the first key and opens only with the same context', () => {
    const secret = Buffer.alloc(32, 0xab);
    const sealed = ring.seal(secret, context);
    expect(sealed.keyId).toBe('k1');
    expect(sealed.ciphertext.equals(secret)).toBe(false);
    expect(ring.open(sealed, context).equals(secret)).toBe(true);
    expect(() => ring.open(sealed, { ...context, ids: ['clinic-b', context.ids[1]] })).toThrow(
      expect.objectContaining({ code: 'unseal_failed' }),
    );
    expect(() => ring.open(sealed, { ...context, purpose: 'other' })).toThrow(
      expect.objectContaining({ code: 'unseal_failed' }),
    );
    // The separator keeps "ab"+"c" apart from "a"+"bc".
    const split = ring.seal(secret, { purpose: 'p', ids: ['ab', 'c'] });
    expect(() => ring.open(split, { purpose: 'p', ids: ['a', 'bc'] })).toThrow(
      expect.objectContaining({ code: 'unseal_failed' }),
    );
    const tampered = { ...sealed, tag: Buffer.from(sealed.tag) };
    tampered.tag[0] ^= 1;
    expect(() => ring.open(tampered, context)).toThrow(expect.objectContaining({ code: 'unseal_failed' }));
  });

  it('keeps the AAD of secrets sealed before it had its own module (stored webhook secrets still open)', () => {
    const secret = Buffer.alloc(32, 0x5a);
    const sealed = ring.seal(secret, context);
    // The AAD layout of TemplateCipher.encryptBytes(), decrypted without the ring.
    const decipher = createDecipheriv('aes-256-gcm', key(1), sealed.iv, { authTagLength: 16 });
    decipher.setAAD(Buffer.from('faceid-bytes-v1\0webhook-secret\0clinic-a\0https://mis.example/h', 'utf8'));
    decipher.setAuthTag(sealed.tag);
    expect(Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]).equals(secret)).toBe(true);
  });

  it('rotates: the first key seals, every key opens, a removed key is named', () => {
    const old = new KeyRing([{ id: 'old', key: key(2) }]);
    const sealedOld = old.seal(Buffer.from('x'), context);
    const rotated = new KeyRing([
      { id: 'new', key: key(3) },
      { id: 'old', key: key(2) },
    ]);
    expect(rotated.currentKeyId).toBe('new');
    expect(rotated.keyIds).toEqual(['new', 'old']);
    expect(rotated.open(sealedOld, context).toString()).toBe('x');
    const fresh = rotated.seal(Buffer.from('y'), context);
    expect(fresh.keyId).toBe('new');
    expect(() => old.open(fresh, context)).toThrow(
      expect.objectContaining({ code: 'key_unknown', message: expect.stringContaining('"new"') }),
    );
  });

  it('derives one key per ring key and purpose, never a ring key itself', () => {
    const two = new KeyRing([
      { id: 'a', key: key(4) },
      { id: 'b', key: key(5) },
    ]);
    const audit = two.deriveKeys('faceid-audit-chain-v1');
    const codes = two.deriveKeys('faceid-one-time-code-v1');
    expect(audit.currentKeyId).toBe('a');
    expect([...audit.keys.keys()]).toEqual(['a', 'b']);
    expect(
      audit.keys
        .get('a')!
        .equals(Buffer.from(hkdfSync('sha256', key(4), Buffer.alloc(0), 'faceid-audit-chain-v1', 32))),
    ).toBe(true);
    expect(audit.keys.get('a')!.equals(codes.keys.get('a')!)).toBe(false);
    expect(audit.keys.get('a')!.equals(key(4))).toBe(false);
  });

  it('refuses bad keys and never puts key material into errors', () => {
    expect(() => new KeyRing([])).toThrow();
    expect(() => new KeyRing([{ id: 'a', key: Buffer.alloc(16) }])).toThrow();
    expect(
      () =>
        new KeyRing([
          { id: 'a', key: key(1) },
          { id: 'a', key: key(2) },
        ]),
    ).toThrow(/twice/);
    const sealed = ring.seal(Buffer.from('secret'), context);
    sealed.tag[0] ^= 1;
    let text = '';
    try {
      ring.open(sealed, context);
    } catch (err) {
      text = `${(err as Error).message} ${(err as Error).stack}`;
    }
    expect(text).toContain('authentication');
    expect(text).not.toContain(key(1).toString('base64'));
  });
});

describe('loadOrCreateKeyFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-keys-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates one key with mode 0600 on first use, then reads the same key', () => {
    const data = path.join(dir, 'nested', 'data');
    const first = loadOrCreateKeyFile(data, new Date('2025-03-04T00:00:00Z'));
    expect(first.created).toBe(true);
    expect(first.keys).toHaveLength(1);
    expect(first.keys[0].id).toBe('gen20250304');
    expect(first.keys[0].key).toHaveLength(32);
    expect(first.warning).toBeUndefined();
    const file = path.join(data, KEY_FILE_NAME);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(data)).toEqual([KEY_FILE_NAME]); // no temporary file left behind

    const second = loadOrCreateKeyFile(data);
    expect(second.created).toBe(false);
    expect(second.keys).toEqual(first.keys);

    // A value sealed with the first survives a restart.
    const sealed = new KeyRing(first.keys).seal(Buffer.from('kept'), context);
    expect(new KeyRing(second.keys).open(sealed, context).toString()).toBe('kept');
  });

  it('warns when others can read the file, and refuses a broken one', () => {
    loadOrCreateKeyFile(dir);
    const file = path.join(dir, KEY_FILE_NAME);
    fs.chmodSync(file, 0o644);
    expect(loadOrCreateKeyFile(dir).warning).toMatch(/chmod 600/);
    fs.writeFileSync(file, 'not a key\n');
    expect(() => loadOrCreateKeyFile(dir)).toThrow(/invalid/);
  });

  it('keyRingFromConfig: TEMPLATE_KEYS first, else the key file; says key ids only', () => {
    const said: string[] = [];
    const log = { log: (m: string) => said.push(m), warn: (m: string) => said.push(`warn: ${m}`) };
    const fromEnv = keyRingFromConfig(
      { FACEID_DATA_DIR: dir, DATABASE_URL: undefined, TEMPLATE_KEYS: [{ id: 'env1', key: key(7) }] },
      log,
    );
    expect(fromEnv.keyIds).toEqual(['env1']);
    expect(fs.existsSync(path.join(dir, KEY_FILE_NAME))).toBe(false);
    const fromFile = keyRingFromConfig({ FACEID_DATA_DIR: dir, DATABASE_URL: 'postgresql://db/faceid' }, log);
    expect(fromFile.keyIds).toEqual([loadOrCreateKeyFile(dir).keys[0].id]);
    expect(said.some((m) => m.startsWith('warn: A shared database'))).toBe(true);
    expect(said.join('\n')).not.toContain(key(7).toString('base64'));
    expect(said.join('\n')).not.toContain(loadOrCreateKeyFile(dir).keys[0].key.toString('base64'));
    // Silent without a log.
    expect(() => keyRingFromConfig({ FACEID_DATA_DIR: dir, DATABASE_URL: undefined })).not.toThrow();
  });
});
