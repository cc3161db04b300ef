import type { Db, Tx } from '../db';
import { isUniqueViolation } from '../errors';
import { AUDIT_GENESIS, auditHash, canonicalJson, type AuditChainReader } from '../audit-chain';
import type { AuditEntry, AuditRepository } from '../ports';
import type { StorageProvider } from '../target';
import { jsonInput, toAuditEntry } from './map';

/** PostgreSQL transaction-level advisory lock that serialises appends across processes. */
export const PG_AUDIT_LOCK = 72707370;

const MAX_LIST = 1000;

export type AuditInput = Pick<AuditEntry, 'clinicId' | 'actor' | 'action' | 'subject' | 'detail'>;

/**
 * Appends one entry inside the caller's transaction, chained to the current head. The caller's transaction holds
 * the chain's lock until it commits: the write lock from BEGIN on SQLite, the advisory lock taken here on PostgreSQL.
 */
export async function appendAuditEntry(tx: Tx, provider: StorageProvider, entry: AuditInput): Promise<AuditEntry> {
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
  const hash = auditHash(prevHash, fields);
  const row = await tx.auditLog.create({ data: { ...fields, detail: jsonInput(detail), prevHash, hash } });
  return toAuditEntry(row);
}

export class PrismaAuditRepository implements AuditRepository, AuditChainReader {
  constructor(private readonly db: Db) {}

  /**
   * Serialised so the chain never forks: on SQLite the transaction holds the write lock from BEGIN, on PostgreSQL
   * an advisory lock is taken first. prevHash is also unique in the table, so a fork is impossible even for a writer
   * that bypassed the lock; should that ever collide, the append is retried on the new head.
   */
  async append(entry: AuditInput): Promise<AuditEntry> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.tx((tx) => appendAuditEntry(tx, this.db.provider, entry));
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
      const rows = await c.auditLog.findMany({ where: { seq: { gt: afterSeq } }, orderBy: { seq: 'asc' }, take: limit });
      return rows.map(toAuditEntry);
    });
  }
}
