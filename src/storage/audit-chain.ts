import { createHash } from 'node:crypto';
import type { AuditEntry } from './ports';

/** prevHash of the first entry. */
export const AUDIT_GENESIS = '0'.repeat(64);

/** The fields an entry's hash covers (everything but seq and the hashes themselves). */
export type AuditFields = Pick<AuditEntry, 'clinicId' | 'actor' | 'action' | 'subject' | 'detail' | 'at'>;

/**
 * Canonical JSON: object keys sorted (by UTF-16 code units), no whitespace, undefined members dropped, Dates as ISO
 * strings; otherwise JSON.stringify's rules (so a non-finite number becomes null). The same value always gives the
 * same text, whatever its key order or where it was read back from (SQLite text, PostgreSQL jsonb).
 */
export function canonicalJson(value: unknown): string {
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined && typeof obj[k] !== 'function')
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** hash = sha256 hex of (prevHash + canonical JSON of the entry's fields). */
export function auditHash(prevHash: string, fields: AuditFields): string {
  const body = canonicalJson({
    action: fields.action,
    actor: fields.actor,
    at: fields.at,
    clinicId: fields.clinicId,
    detail: fields.detail,
    subject: fields.subject,
  });
  return createHash('sha256').update(prevHash).update(body).digest('hex');
}

/** Reads the whole chain in seq order, a page at a time (implemented by the audit repository of openStorage()). */
export interface AuditChainReader {
  /** Entries with seq > afterSeq, ascending, at most `limit`. */
  entriesAfter(afterSeq: number, limit: number): Promise<AuditEntry[]>;
}

/**
 * Walks the chain from the first entry. Returns the seq of the first entry that is broken (its prevHash is not the
 * previous entry's hash, or its hash does not match its content), or null when the whole chain is intact.
 * A row changed in place is caught at that row (or at the next one, if its hash was recomputed too); a row removed
 * from the middle, at the row after the gap. Removing the newest rows is not detectable from the chain alone.
 */
export async function verifyAuditChain(reader: AuditChainReader, pageSize = 1000): Promise<number | null> {
  let prev = AUDIT_GENESIS;
  let after = 0;
  for (;;) {
    const page = await reader.entriesAfter(after, pageSize);
    for (const entry of page) {
      if (entry.prevHash !== prev || auditHash(entry.prevHash, entry) !== entry.hash) return entry.seq;
      prev = entry.hash;
      after = entry.seq;
    }
    if (page.length < pageSize) return null;
  }
}
