import { KeyRing } from '../keyring';
import { AUDIT_GENESIS, auditChainKeys, auditHash, auditMac, type AuditChainReader } from '../storage/audit-chain';
import type { AuditEntry } from '../storage/ports';
import { checkAuditChain, describeAuditChain } from './audit';

const ring = new KeyRing([
  { id: 'k2', key: Buffer.alloc(32, 2) },
  { id: 'k1', key: Buffer.alloc(32, 1) },
]);
const keys = auditChainKeys(ring);

const fieldsOf = (seq: number) => ({
  clinicId: null,
  actor: 'cli',
  action: 'clinic.listed',
  subject: null,
  detail: { count: seq },
  at: new Date(seq * 1000),
});

/**
 * A real chain of n entries (hashes as storage computes them), read from memory: the first `legacy` as plain SHA-256
 * (as written before the chain was keyed), the rest keyed with `keyIdOf(seq)`.
 */
function chain(n: number, legacy = 0, keyIdOf: (seq: number) => string = () => 'k2'): AuditEntry[] {
  const entries: AuditEntry[] = [];
  let prev = AUDIT_GENESIS;
  for (let seq = 1; seq <= n; seq++) {
    const fields = fieldsOf(seq);
    const keyId = seq <= legacy ? null : keyIdOf(seq);
    const hash =
      keyId === null
        ? auditHash(prev, fields)
        : auditMac(keys.keys.get(keyId) ?? Buffer.alloc(32, 0xee), keyId, prev, fields);
    entries.push({ seq, ...fields, prevHash: prev, hash, keyId });
    prev = hash;
  }
  return entries;
}

const reader = (entries: AuditEntry[]): AuditChainReader => ({
  chainKeys: keys,
  entriesAfter: async (after, limit) => entries.filter((e) => e.seq > after).slice(0, limit),
});

function io(tty: boolean) {
  let err = '';
  return { err: (s: string) => void (err += s), errIsTTY: tty, text: () => err };
}

describe('checkAuditChain', () => {
  it('counts every entry of an intact chain; no progress within one page', async () => {
    const out = io(true);
    expect(await checkAuditChain(reader(chain(7)), out, 10)).toMatchObject({ entries: 7, broken: null });
    expect(out.text()).toBe('');
    expect(await checkAuditChain(reader([]), out, 10)).toMatchObject({ entries: 0, broken: null });
  });

  it('rewrites one progress line on a terminal for a chain longer than a page', async () => {
    const out = io(true);
    expect(await checkAuditChain(reader(chain(25)), out, 10)).toMatchObject({ entries: 25, broken: null });
    expect(out.text()).toBe(
      '\rverifying the audit chain: 10 entries read\x1b[K\rverifying the audit chain: 20 entries read\x1b[K\n',
    );
  });

  it('prints a plain line only every 10000 entries without a terminal', async () => {
    const quiet = io(false);
    await checkAuditChain(reader(chain(25)), quiet, 10);
    expect(quiet.text()).toBe('');
    const long = io(false);
    expect(await checkAuditChain(reader(chain(10_050)), long, 1000)).toMatchObject({ entries: 10_050, broken: null });
    expect(long.text()).toBe('verifying the audit chain: 10000 entries read\n');
  });

  it('names the first entry whose content no longer matches its hash', async () => {
    const entries = chain(30);
    entries[16] = { ...entries[16], detail: { count: 999 } };
    const report = await checkAuditChain(reader(entries), io(false), 10);
    expect(report.broken).toEqual({ seq: 17, reason: 'hash', keyId: 'k2' });
    expect(describeAuditChain(report)).toBe(
      'audit chain broken at entry seq 17: its HMAC under key k2 does not match its content (changed, or its hash ' +
        'forged); entries before it are intact (HMAC-SHA256 with key k2 (seq 1-16))',
    );
  });
});

describe('the keyed audit chain', () => {
  it('verifies legacy SHA-256 entries before the keyed ones, and says which key verified which entries', async () => {
    const entries = chain(12, 4, (seq) => (seq <= 8 ? 'k1' : 'k2')); // k1 until a rotation, then k2
    const report = await checkAuditChain(reader(entries), io(false), 5);
    expect(report).toEqual({
      entries: 12,
      legacy: 4,
      legacyUntilSeq: 4,
      keys: [
        { keyId: 'k1', fromSeq: 5, toSeq: 8, entries: 4 },
        { keyId: 'k2', fromSeq: 9, toSeq: 12, entries: 4 },
      ],
      broken: null,
    });
    expect(describeAuditChain(report)).toBe(
      'audit chain intact: 12 entries; 4 legacy SHA-256 entries up to seq 4 (written before the chain was keyed); ' +
        'HMAC-SHA256 with keys k1 (seq 5-8), k2 (seq 9-12)',
    );
    expect(describeAuditChain(await checkAuditChain(reader(chain(3, 3)), io(false)))).toBe(
      'audit chain intact: 3 entries; 3 legacy SHA-256 entries up to seq 3 (written before the chain was keyed)',
    );
  });

  it('detects an entry changed with its tail recomputed as plain SHA-256 (no key needed for that)', async () => {
    const entries = chain(10, 2);
    // Somebody who can write the database changes entry 6 and recomputes every hash from there the legacy way.
    let prev = entries[4].hash;
    for (let i = 5; i < entries.length; i++) {
      const fields = i === 5 ? { ...entries[i], detail: { count: 999 } } : entries[i];
      const hash = auditHash(prev, fields);
      entries[i] = { ...fields, prevHash: prev, hash, keyId: null };
      prev = hash;
    }
    const report = await checkAuditChain(reader(entries), io(false));
    expect(report.broken).toEqual({ seq: 6, reason: 'unkeyed_after_keyed', keyId: null });
    expect(describeAuditChain(report)).toMatch(
      /^audit chain broken at entry seq 6: a plain SHA-256 entry after keyed ones/,
    );
    // The same rewrite keyed with a key of its own making fails the HMAC; relabelled with another ring key too.
    const forged = chain(10, 2);
    const tampered = { ...forged[5], detail: { count: 999 } };
    const otherKeys = auditChainKeys(new KeyRing([{ id: 'k2', key: Buffer.alloc(32, 9) }]));
    forged[5] = { ...tampered, hash: auditMac(otherKeys.keys.get('k2')!, 'k2', tampered.prevHash, tampered) };
    expect((await checkAuditChain(reader(forged), io(false))).broken).toEqual({ seq: 6, reason: 'hash', keyId: 'k2' });
    const relabelled = chain(10, 2);
    relabelled[5] = { ...relabelled[5], keyId: 'k1' };
    expect((await checkAuditChain(reader(relabelled), io(false))).broken).toEqual({
      seq: 6,
      reason: 'hash',
      keyId: 'k1',
    });
  });

  it('names a removed entry by the broken link, and an entry whose key left the ring as not verifiable', async () => {
    const entries = chain(6, 1);
    entries.splice(3, 1); // seq 4 removed
    const gap = await checkAuditChain(reader(entries), io(false));
    expect(gap.broken).toEqual({ seq: 5, reason: 'link', keyId: 'k2' });
    const old = chain(4, 0, () => 'k0');
    const unknown = await checkAuditChain(reader(old), io(false));
    expect(unknown.broken).toEqual({ seq: 1, reason: 'key_unknown', keyId: 'k0' });
    expect(describeAuditChain(unknown)).toBe(
      'audit chain not verifiable from entry seq 1: it was keyed with key k0, which is not in the key ring ' +
        '(TEMPLATE_KEYS), so it cannot be checked; entries before it are intact',
    );
  });
});
