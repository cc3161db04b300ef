import { Inject, Injectable } from '@nestjs/common';
import { generateApiKey, hashApiKey } from '../auth/api-key';
import { generateMisKey } from '../auth/mis-key';
import { KEYS, type KeyActor, type KeyHolder, type KeyHolderKind, type KeyRepository } from '../storage/ports';
import { KeysError } from './errors';

/** After a rotation the replaced key keeps working this long by default, so its holder can deploy the new one. */
export const KEY_ROTATION_GRACE_MS = 24 * 60 * 60 * 1000;
/** The longest grace an operator may give (7 days). */
export const MAX_KEY_ROTATION_GRACE_MS = 7 * KEY_ROTATION_GRACE_MS;
/**
 * Previous keys a holder may have in their grace at once. A leaked key can rotate itself, but not without end: each
 * rotation leaves the earlier keys working for their own grace, so the holder's real key is never cut off early, and
 * the holder learns of it (the `*.key_changed` event); the operator's rotation without grace ends them all.
 */
export const MAX_PREVIOUS_KEYS = 3;

const LABEL: Record<KeyHolderKind, string> = { workstation: 'workstation', mis_client: 'MIS client' };

export function holderNotFound(kind: KeyHolderKind): KeysError {
  return new KeysError(`${kind}_not_found`, `No active ${LABEL[kind]} with this id in this clinic.`);
}

export interface IssuedKey {
  holder: KeyHolder;
  /** The only time the key exists outside its holder: hand it over, never log or store it. */
  apiKey: string;
}

export interface RotatedKey extends IssuedKey {
  /** Until when the key it replaced still works; null when it stopped at once. */
  previousKeyValidUntil: Date | null;
}

/** What changed, for listeners in this process (the events WebSocket closes connections of revoked keys). */
export interface KeyChangeNotice {
  kind: KeyHolderKind;
  clinicId: string;
  id: string;
  change: 'created' | 'rotated' | 'revoked';
}

/**
 * The lifecycle of workstation and MIS client keys, for the admin CLI, the admin HTTP routes and an MIS rotating its
 * own key alike: create, list, rotate (the replaced key keeps working for a grace), revoke (at once). Storage writes
 * each change's audit entry and MIS event in the change's own transaction. Keys are returned once and never logged,
 * audited or stored (only their sha256).
 */
@Injectable()
export class KeysService {
  private readonly listeners = new Set<(notice: KeyChangeNotice) => void>();

  constructor(@Inject(KEYS) private readonly keys: KeyRepository) {}

  /** A new workstation or MIS client of the clinic and its first key. StorageError reference_not_found: no such clinic. */
  async create(kind: KeyHolderKind, who: KeyActor, clinicId: string, name: string): Promise<IssuedKey> {
    const apiKey = kind === 'workstation' ? generateApiKey() : generateMisKey();
    const holder = await this.keys.create(kind, clinicId, name, hashApiKey(apiKey), who);
    this.notify({ kind, clinicId, id: holder.id, change: 'created' });
    return { holder, apiKey };
  }

  list(kind: KeyHolderKind, clinicId: string, now = new Date()): Promise<KeyHolder[]> {
    return this.keys.list(kind, clinicId, now);
  }

  /** The clinic's holder with this id (revoked ones too), or null. */
  get(kind: KeyHolderKind, clinicId: string, id: string, now = new Date()): Promise<KeyHolder | null> {
    return this.keys.get(kind, clinicId, id, now);
  }

  /**
   * A new key. The replaced one keeps working for `graceMs` (0: it stops at once, and so does every earlier key still
   * in its grace: the answer to a leaked key); earlier keys otherwise keep their own end, whoever rotates. 404 for no
   * such active holder, 409 `key_rotation_limit` while MAX_PREVIOUS_KEYS keys are still in their grace.
   */
  async rotate(
    kind: KeyHolderKind,
    who: KeyActor,
    clinicId: string,
    id: string,
    graceMs = KEY_ROTATION_GRACE_MS,
    now = new Date(),
  ): Promise<RotatedKey> {
    if (!(graceMs >= 0 && graceMs <= MAX_KEY_ROTATION_GRACE_MS)) throw new RangeError('grace out of range');
    const apiKey = kind === 'workstation' ? generateApiKey() : generateMisKey();
    const graceUntil = graceMs > 0 ? new Date(now.getTime() + graceMs) : null;
    const result = await this.keys.rotate(
      { kind, clinicId, id, newKeyHash: hashApiKey(apiKey), graceUntil, maxPrevious: MAX_PREVIOUS_KEYS, now },
      who,
    );
    if (!result.ok) {
      if (result.reason === 'not_found') throw holderNotFound(kind);
      throw new KeysError(
        'key_rotation_limit',
        `${MAX_PREVIOUS_KEYS} earlier keys of this ${LABEL[kind]} are still in their grace: rotate again once one ` +
          'has ended, or ask the operator to rotate without grace (which ends them all).',
      );
    }
    this.notify({ kind, clinicId, id, change: 'rotated' });
    return { holder: result.holder, apiKey, previousKeyValidUntil: result.previousKeyValidUntil };
  }

  /** Revokes the holder: its current and previous keys stop working at once. 404 for no such active holder. */
  async revoke(kind: KeyHolderKind, who: KeyActor, clinicId: string, id: string, now = new Date()): Promise<KeyHolder> {
    const holder = await this.keys.revoke(kind, clinicId, id, who, now);
    if (!holder) throw holderNotFound(kind);
    this.notify({ kind, clinicId, id, change: 'revoked' });
    return holder;
  }

  /** Calls `listener` after every change made through this service in this process. Returns the unsubscribe function. */
  onChanged(listener: (notice: KeyChangeNotice) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(notice: KeyChangeNotice): void {
    for (const l of this.listeners) {
      try {
        l(notice);
      } catch {
        // A listener's failure is its own; the change is committed.
      }
    }
  }
}
