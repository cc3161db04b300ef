import { Inject, Injectable } from '@nestjs/common';
import { AUDIT, type AuditEntry, type AuditRepository, type NewAuditEntry } from '../storage/ports';

export interface AuditRecord {
  /** The clinic the action concerns, or null for system-wide actions. */
  clinicId: string | null;
  /** What it was done to (an id, never an IIN or other personal data), or null. */
  subject?: string | null;
  /** A small JSON object of counts, codes and flags. Never biometric data. */
  detail?: Record<string, unknown> | null;
}

/** Limits of a detail object: big enough for counts and codes, too small to smuggle an embedding or a frame. */
const MAX_ARRAY = 16;
const MAX_STRING = 512;
const MAX_DEPTH = 4;
const MAX_KEYS = 32;

/** A detail that could carry biometric data or is not plain JSON: a bug in the caller (500 `audit_detail_rejected`). */
export class AuditDetailError extends Error {
  readonly code = 'audit_detail_rejected';

  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`Audit detail rejected at ${path}: ${reason}.`);
    this.name = 'AuditDetailError';
  }
}

/**
 * Throws if the detail holds binary data (Buffers, typed arrays, ArrayBuffers, DataViews), a numeric array longer than
 * MAX_ARRAY (an embedding is 512 numbers), any array longer than MAX_ARRAY, a string longer than MAX_STRING (base64),
 * or anything that is not plain JSON. The error names the path, never the value.
 */
export function checkAuditDetail(detail: unknown, path = 'detail', depth = 0): void {
  if (detail === null || typeof detail === 'boolean') return;
  if (typeof detail === 'number') {
    if (!Number.isFinite(detail)) throw new AuditDetailError(path, 'not a finite number');
    return;
  }
  if (typeof detail === 'string') {
    if (detail.length > MAX_STRING) throw new AuditDetailError(path, `a string longer than ${MAX_STRING}`);
    return;
  }
  if (typeof detail !== 'object') throw new AuditDetailError(path, `a ${typeof detail} is not JSON`);
  if (ArrayBuffer.isView(detail) || detail instanceof ArrayBuffer || detail instanceof SharedArrayBuffer) {
    throw new AuditDetailError(path, 'binary data (Buffer, typed array)');
  }
  if (depth >= MAX_DEPTH) throw new AuditDetailError(path, `nested deeper than ${MAX_DEPTH}`);
  if (Array.isArray(detail)) {
    if (detail.length > MAX_ARRAY) {
      const numeric = detail.every((v) => typeof v === 'number');
      throw new AuditDetailError(path, `${numeric ? 'a numeric array' : 'an array'} longer than ${MAX_ARRAY}`);
    }
    detail.forEach((v, i) => checkAuditDetail(v, `${path}[${i}]`, depth + 1));
    return;
  }
  const proto = Object.getPrototypeOf(detail);
  if (proto !== Object.prototype && proto !== null) throw new AuditDetailError(path, 'not a plain object');
  const entries = Object.entries(detail);
  if (entries.length > MAX_KEYS) throw new AuditDetailError(path, `more than ${MAX_KEYS} keys`);
  for (const [k, v] of entries) checkAuditDetail(v, `${path}.${k}`, depth + 1);
}

/**
 * The audit trail: who did what to which subject. Storage chains the entries by hash; this service checks that no
 * entry can carry biometric data. Actors look like `workstation:<id>`, `system`, `cli`.
 */
@Injectable()
export class AuditService {
  constructor(@Inject(AUDIT) private readonly repo: AuditRepository) {}

  async record(actor: string, action: string, record: AuditRecord): Promise<AuditEntry> {
    return this.repo.append(this.entry(actor, action, record));
  }

  /**
   * The checked entry, for storage to append inside the transaction of the change it records (e.g. a verdict's:
   * VerdictRepository.finish's `audit`), so that both are stored or neither. Throws AuditDetailError as record() does.
   */
  entry(actor: string, action: string, record: AuditRecord): NewAuditEntry {
    if (!actor || actor.length > 128) throw new AuditDetailError('actor', 'empty or longer than 128');
    if (!/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/.test(action)) {
      throw new AuditDetailError('action', 'not a dotted lower-case name such as template.enrolled');
    }
    if (record.subject != null) checkAuditDetail(record.subject, 'subject');
    const detail = record.detail ?? null;
    if (detail !== null) {
      if (typeof detail !== 'object' || Array.isArray(detail)) throw new AuditDetailError('detail', 'not an object');
      checkAuditDetail(detail);
    }
    return { clinicId: record.clinicId, actor, action, subject: record.subject ?? null, detail };
  }
}
