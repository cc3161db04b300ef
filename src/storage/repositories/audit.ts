import type { Db, Tx } from '../db';
import { isUniqueViolation } from '../errors';
import { AUDIT_GENESIS, auditMac, canonicalJson, type AuditChainKeys, type AuditChainReader } from '../audit-chain';
import type { AuditEntry, AuditRepository } from '../ports';
import type { StorageProvider } from '../target';
import { jsonInput, toAuditEntry } from './map';

/** PostgreSQL transaction-level advisory lock that serialises appends across processes. */
export const PG_AUDIT_LOCK = 72707370;

const MAX_LIST = 1000;

export type AuditInput = Pick<AuditEntry, 'clinicId' | 'actor' | 'action' | 'subject' | 'detail'>;

/** What appending needs: the database kind (for its lock) and the chain keys (the current one makes new hashes). */
export interface AuditChainWriter {
  readonly provider: StorageProvider;
  readonly keys: AuditChainKeys;
}

/**
 * Appends one entry inside the caller's transaction, chained to the current head and keyed with the current chain
 * key. The caller's transaction holds the chain's lock until it commits: the write lock from BEGIN on SQLite, the
 * advisory lock taken here on PostgreSQL.
 */
export async function appendAuditEntry(tx: Tx, chain: AuditChainWriter, entry: AuditInput): Promise<AuditEntry> {
  const { provider, keys } = chain;
  const keyId = keys.currentKeyId;
  const key = keys.keys.get(keyId);
  if (!key) throw new Error(`The audit chain has no key ${keyId}.`);
  // Stored exactly as hashed: the canonical form, re-parsed.
  const detail = entry.detail == null ? null : (JSON.parse(canonicalJson(entry.detail)) as Record<string, unknown>);
  if (provider === 'postgres') await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${PG_AUDIT_LOCK})`);
  const head = await tx.auditLog.findFirst({ orderBy: { seq: 'desc' }, select: { hash: true } });
  const prevHash = head?.hash ?? AUDIT_GENESIS;
  const fields = {
    clinicId: entry.clinicId,
    actor: entry.actor,
    action: entry.action,
    subject: entry.subject,
    detail,
    at: new Date(),
  };
  const hash = auditMac(key, keyId, prevHash, fields);
  const row = await tx.auditLog.create({ data: { ...fields, detail: jsonInput(detail), prevHash, hash, keyId } });
  return toAuditEntry(row);
}

export class PrismaAuditRepository implements AuditRepository, AuditChainReader, AuditChainWriter {
  constructor(
    private readonly db: Db,
    readonly keys: AuditChainKeys,
  ) {}

  get provider(): StorageProvider {
    return this.db.provider;
  }

  /** The keys that verify the chain: the same as those that write it. */
  get chainKeys(): AuditChainKeys {
    return this.keys;
  }

  /**
   * Serialised so the chain never forks: on SQLite the transaction holds the write lock from BEGIN, on PostgreSQL
   * an advisory lock is taken first. prevHash is also unique in the table, so a fork is impossible even for a writer
   * that bypassed the lock; should that ever collide, the append is retried on the new head.
   */
  async append(entry: AuditInput): Promise<AuditEntry> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.tx((tx) => appendAuditEntry(tx, this, entry));
      } catch (err) {
        if (attempt < 3 && isUniqueViolation(err)) continue;
        throw err;
      }
    }
  }

  /** The newest entries first. clinicId null lists the entries that concern no clinic (system-wide actions). */
  list(clinicId: string | null, limit: number): Promise<AuditEntry[]> {
    const take = Math.max(0, Math.min(MAX_LIST, Math.floor(limit)));
    return this.db.run(async (c) => {
      const rows = await c.auditLog.findMany({ where: { clinicId }, orderBy: { seq: 'desc' }, take });
      return rows.map(toAuditEntry);
    });
  }

  /** Every clinic's entries, oldest first: for verifyAuditChain() (`faceid audit verify`). */
  entriesAfter(afterSeq: number, limit: number): Promise<AuditEntry[]> {
    return this.db.run(async (c) => {
      const rows = await c.auditLog.findMany({
        where: { seq: { gt: afterSeq } },
        orderBy: { seq: 'asc' },
        take: limit,
      });
      return rows.map(toAuditEntry);
    });
  }
}
