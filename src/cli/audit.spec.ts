import { AUDIT_GENESIS, auditHash, type AuditChainReader } from '../storage/audit-chain';
import type { AuditEntry } from '../storage/ports';
import { checkAuditChain } from './audit';

/** A real chain of n entries (hashes as storage computes them), read from memory. */
function chain(n: number): AuditEntry[] {
  const entries: AuditEntry[] = [];
  let prev = AUDIT_GENESIS;
  for (let seq = 1; seq <= n; seq++) {
    const fields = {
      clinicId: null,
      actor: 'cli',
      action: 'clinic.listed',
      subject: null,
      detail: { count: seq },
      at: new Date(seq * 1000),
    };
    const hash = auditHash(prev, fields);
    entries.push({ seq, ...fields, prevHash: prev, hash });
    prev = hash;
  }
  return entries;
}

const reader = (entries: AuditEntry[]): AuditChainReader => ({
  entriesAfter: async (after, limit) => entries.filter((e) => e.seq > after).slice(0, limit),
});

function io(tty: boolean) {
  let err = '';
  return { err: (s: string) => void (err += s), errIsTTY: tty, text: () => err };
}

describe('checkAuditChain', () => {
  it('counts every entry of an intact chain; no progress within one page', async () => {
    const out = io(true);
    expect(await checkAuditChain(reader(chain(7)), out, 10)).toEqual({ entries: 7, brokenSeq: null });
    expect(out.text()).toBe('');
    expect(await checkAuditChain(reader([]), out, 10)).toEqual({ entries: 0, brokenSeq: null });
  });

  it('rewrites one progress line on a terminal for a chain longer than a page', async () => {
    const out = io(true);
    expect(await checkAuditChain(reader(chain(25)), out, 10)).toEqual({ entries: 25, brokenSeq: null });
    expect(out.text()).toBe(
      '\rverifying the audit chain: 10 entries read\x1b[K\rverifying the audit chain: 20 entries read\x1b[K\n',
    );
  });

  it('prints a plain line only every 10000 entries without a terminal', async () => {
    const quiet = io(false);
    await checkAuditChain(reader(chain(25)), quiet, 10);
    expect(quiet.text()).toBe('');
    const long = io(false);
    expect(await checkAuditChain(reader(chain(10_050)), long, 1000)).toEqual({ entries: 10_050, brokenSeq: null });
    expect(long.text()).toBe('verifying the audit chain: 10000 entries read\n');
  });

  it('names the first entry whose content no longer matches its hash', async () => {
    const entries = chain(30);
    entries[16] = { ...entries[16], detail: { count: 999 } };
    expect((await checkAuditChain(reader(entries), io(false), 10)).brokenSeq).toBe(17);
  });
});
