import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { AuditEntry } from './ports';

/** prevHash of the first entry. */
export const AUDIT_GENESIS = '0'.repeat(64);

/** HKDF `info` of the audit chain's keys: derived from each key ring key, apart from every other purpose. */
export const AUDIT_HKDF_INFO = 'faceid-audit-chain-v1';
/** The first bytes of every keyed entry's MAC input (a version of its layout). */
const MAC_DOMAIN = 'faceid-audit-hmac-v1';

/** The fields an entry's hash covers (everything but seq, the key id and the hashes themselves). */
export type AuditFields = Pick<AuditEntry, 'clinicId' | 'actor' | 'action' | 'subject' | 'detail' | 'at'>;

/**
 * The keys of the chain: derived from the key ring (HKDF-SHA256 with AUDIT_HKDF_INFO), under the ring's key ids.
 * New entries are keyed with `currentKeyId`; an entry keyed before a rotation is verified with its own key id.
 */
export interface AuditChainKeys {
  readonly currentKeyId: string;
  readonly keys: ReadonlyMap<string, Buffer>;
}

/** The chain keys of a key ring (src/keyring). */
export function auditChainKeys(ring: {
  deriveKeys(info: string): { currentKeyId: string; keys: Map<string, Buffer> };
}): AuditChainKeys {
  return ring.deriveKeys(AUDIT_HKDF_INFO);
}

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

function body(fields: AuditFields): string {
  return canonicalJson({
    action: fields.action,
    actor: fields.actor,
    at: fields.at,
    clinicId: fields.clinicId,
    detail: fields.detail,
    subject: fields.subject,
  });
}

/**
 * The legacy, unkeyed hash: sha256 hex of (prevHash + canonical JSON of the entry's fields). Entries written before
 * the chain was keyed (keyId null) carry it; anyone can recompute it, so it only proves the order of those entries.
 */
export function auditHash(prevHash: string, fields: AuditFields): string {
  return createHash('sha256').update(prevHash).update(body(fields)).digest('hex');
}

/**
 * The hash of a keyed entry: HMAC-SHA256 hex, under the chain key `keyId`, of
 * `faceid-audit-hmac-v1 NUL keyId NUL prevHash NUL canonical JSON of the fields`. Without the key nobody can
 * compute it, so an entry changed (or a tail rewritten) by someone who can only write the database shows.
 */
export function auditMac(key: Buffer, keyId: string, prevHash: string, fields: AuditFields): string {
  return createHmac('sha256', key).update(`${MAC_DOMAIN}\0${keyId}\0${prevHash}\0`).update(body(fields)).digest('hex');
}

/** Reads the whole chain in seq order, a page at a time (implemented by the audit repository of openStorage()). */
export interface AuditChainReader {
  /** Entries with seq > afterSeq, ascending, at most `limit`. */
  entriesAfter(afterSeq: number, limit: number): Promise<AuditEntry[]>;
  /** The keys that verify keyed entries (the key ring's chain keys). */
  readonly chainKeys: AuditChainKeys;
}

/** Why an entry breaks the chain. */
export type AuditBreak =
  /** Its prevHash is not the previous entry's hash: an entry before it was removed or replaced. */
  | 'link'
  /** Its HMAC (or, for a legacy entry, its SHA-256) does not match its content. */
  | 'hash'
  /** A plain SHA-256 entry after keyed ones: written without the key, e.g. a tail rewritten by hand. */
  | 'unkeyed_after_keyed'
  /** Keyed with a key id the key ring does not hold: it cannot be checked (the key was removed too early). */
  | 'key_unknown';

export interface AuditChainReport {
  /** Entries read: every entry when the chain is intact, else up to the broken one (included). */
  entries: number;
  /** Legacy SHA-256 entries at the start of the chain (written before it was keyed). */
  legacy: number;
  /** seq of the last legacy entry, or null when there is none. */
  legacyUntilSeq: number | null;
  /** The keys that verified keyed entries, in chain order, with the seq range each covered. */
  keys: Array<{ keyId: string; fromSeq: number; toSeq: number; entries: number }>;
  /** The first broken entry, or null when the whole chain is intact. */
  broken: { seq: number; reason: AuditBreak; keyId: string | null } | null;
}

/**
 * Walks the chain from the first entry and checks each link and hash. Legacy entries (no key id: plain SHA-256,
 * written before the chain was keyed) are accepted only before the first keyed entry; from there on every entry
 * must carry an HMAC under a key of the ring. A row changed in place is caught at that row (or at the next one, if
 * its hash was recomputed: a keyed hash cannot be without the key); a row removed from the middle, at the row after
 * the gap. Removing the newest rows is not detectable from the chain alone.
 */
export async function walkAuditChain(reader: AuditChainReader, pageSize = 1000): Promise<AuditChainReport> {
  const report: AuditChainReport = { entries: 0, legacy: 0, legacyUntilSeq: null, keys: [], broken: null };
  let prev = AUDIT_GENESIS;
  let after = 0;
  let keyed = false;
  const fail = (entry: AuditEntry, reason: AuditBreak): AuditChainReport => {
    report.broken = { seq: entry.seq, reason, keyId: entry.keyId };
    return report;
  };
  for (;;) {
    const page = await reader.entriesAfter(after, pageSize);
    for (const entry of page) {
      report.entries++;
      if (entry.prevHash !== prev) return fail(entry, 'link');
      if (entry.keyId === null) {
        if (keyed) return fail(entry, 'unkeyed_after_keyed');
        if (auditHash(entry.prevHash, entry) !== entry.hash) return fail(entry, 'hash');
        report.legacy++;
        report.legacyUntilSeq = entry.seq;
      } else {
        const key = reader.chainKeys.keys.get(entry.keyId);
        if (!key) return fail(entry, 'key_unknown');
        if (!sameHex(auditMac(key, entry.keyId, entry.prevHash, entry), entry.hash)) return fail(entry, 'hash');
        keyed = true;
        const last = report.keys[report.keys.length - 1];
        if (last?.keyId === entry.keyId) {
          last.toSeq = entry.seq;
          last.entries++;
        } else {
          report.keys.push({ keyId: entry.keyId, fromSeq: entry.seq, toSeq: entry.seq, entries: 1 });
        }
      }
      prev = entry.hash;
      after = entry.seq;
    }
    if (page.length < pageSize) return report;
  }
}

/** The seq of the first broken entry, or null when the whole chain is intact (walkAuditChain() tells why). */
export async function verifyAuditChain(reader: AuditChainReader, pageSize = 1000): Promise<number | null> {
  return (await walkAuditChain(reader, pageSize)).broken?.seq ?? null;
}

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
