import { randomUUID } from 'node:crypto';
import type { Db, Tx } from '../db';
import { isForeignKeyViolation, StorageError } from '../errors';
import type {
  KeyActor,
  KeyHolder,
  KeyHolderKind,
  KeyRepository,
  KeyState,
  PreviousKeyInfo,
  RotateKeyResult,
} from '../ports';
import type { Transactions, TxScope } from '../unit-of-work';
import { appendKeyChanged } from './events';

/** The audit actions of each kind (`workstation.created`, `mis_client.key_rotated`, ...). */
const AUDIT_PREFIX: Record<KeyHolderKind, string> = { workstation: 'workstation', mis_client: 'mis_client' };

interface HolderRow {
  id: string;
  clinicId: string;
  name: string;
  apiKeyHash: string;
  createdAt: Date;
  rotatedAt: Date | null;
  revokedAt: Date | null;
}

const HOLDER_SELECT = {
  id: true,
  clinicId: true,
  name: true,
  apiKeyHash: true,
  createdAt: true,
  rotatedAt: true,
  revokedAt: true,
} as const;

/**
 * Workstation and MIS client keys: creation, rotation with a grace for the replaced key, revocation. The current key's
 * hash stays on the holder's row (Workstation, MisClient: what the guards look up first); keys replaced by a rotation
 * go to PreviousKey, each with its own end, so no rotation can shorten the grace of a key replaced before it.
 */
export class PrismaKeyRepository implements KeyRepository {
  constructor(
    private readonly db: Db,
    /** Every change writes its event and audit entry in its own transaction. */
    private readonly transactions: Transactions,
  ) {}

  /** The holder rows of one kind, through the one client API both tables share. */
  private table(c: Tx, kind: KeyHolderKind) {
    // Both delegates have the same shape for these columns; one name keeps the code single.
    return (kind === 'workstation' ? c.workstation : c.misClient) as unknown as {
      findFirst(args: object): Promise<HolderRow | null>;
      findMany(args: object): Promise<HolderRow[]>;
      updateMany(args: object): Promise<{ count: number }>;
      create(args: object): Promise<HolderRow>;
    };
  }

  private async previous(
    c: Tx,
    kind: KeyHolderKind,
    ids: string[],
    now: Date,
  ): Promise<Map<string, PreviousKeyInfo[]>> {
    const rows = ids.length
      ? await c.previousKey.findMany({
          where: { holderKind: kind, holderId: { in: ids }, expiresAt: { gt: now } },
          orderBy: [{ expiresAt: 'asc' }, { id: 'asc' }],
          select: { id: true, holderId: true, retiredAt: true, expiresAt: true },
        })
      : [];
    const out = new Map<string, PreviousKeyInfo[]>();
    for (const r of rows) {
      const list = out.get(r.holderId) ?? [];
      list.push({ id: r.id, retiredAt: r.retiredAt, validUntil: r.expiresAt });
      out.set(r.holderId, list);
    }
    return out;
  }

  private holder(kind: KeyHolderKind, row: HolderRow, previousKeys: PreviousKeyInfo[]): KeyHolder {
    return {
      kind,
      id: row.id,
      clinicId: row.clinicId,
      name: row.name,
      createdAt: row.createdAt,
      rotatedAt: row.rotatedAt,
      revokedAt: row.revokedAt,
      previousKeys: row.revokedAt ? [] : previousKeys,
    };
  }

  private async record(
    scope: TxScope,
    input: { kind: KeyHolderKind; clinicId: string; holderId: string; who: KeyActor; at: Date },
    change: 'created' | 'rotated' | 'revoked',
    detail: Record<string, unknown> | null,
    previousKeyValidUntil: Date | null = null,
  ): Promise<void> {
    const action = { created: 'created', rotated: 'key_rotated', revoked: 'revoked' }[change];
    const event = await appendKeyChanged(scope, {
      clinicId: input.clinicId,
      kind: input.kind,
      holderId: input.holderId,
      change,
      by: input.who.by,
      previousKeyValidUntil,
      at: input.at,
    });
    scope.audit({
      clinicId: input.clinicId,
      actor: input.who.actor,
      action: `${AUDIT_PREFIX[input.kind]}.${action}`,
      subject: input.holderId,
      detail: { ...(detail ?? {}), by: input.who.by, eventSeq: event.seq },
    });
  }

  async create(
    kind: KeyHolderKind,
    clinicId: string,
    name: string,
    apiKeyHash: string,
    who: KeyActor,
  ): Promise<KeyHolder> {
    const at = new Date();
    try {
      return await this.transactions.transaction(async (scope) => {
        const { tx } = scope;
        // MisClient has no foreign key to Clinic; Workstation has. Check it either way, for one answer.
        if (!(await tx.clinic.findUnique({ where: { id: clinicId }, select: { id: true } }))) {
          throw new StorageError('reference_not_found', 'No such clinic.');
        }
        const row = await this.table(tx, kind).create({
          data: { id: randomUUID(), clinicId, name, apiKeyHash, createdAt: at },
          select: HOLDER_SELECT,
        });
        await this.record(scope, { kind, clinicId, holderId: row.id, who, at }, 'created', { name });
        return this.holder(kind, row, []);
      });
    } catch (err) {
      if (isForeignKeyViolation(err)) throw new StorageError('reference_not_found', 'No such clinic.', { cause: err });
      throw err;
    }
  }

  get(kind: KeyHolderKind, clinicId: string, id: string, now: Date): Promise<KeyHolder | null> {
    return this.db.run(async (c) => {
      const row = await this.table(c, kind).findFirst({ where: { id, clinicId }, select: HOLDER_SELECT });
      if (!row) return null;
      return this.holder(kind, row, (await this.previous(c, kind, [row.id], now)).get(row.id) ?? []);
    });
  }

  list(kind: KeyHolderKind, clinicId: string, now: Date): Promise<KeyHolder[]> {
    return this.db.run(async (c) => {
      const rows = await this.table(c, kind).findMany({
        where: { clinicId },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
        select: HOLDER_SELECT,
      });
      const previous = await this.previous(
        c,
        kind,
        rows.map((r) => r.id),
        now,
      );
      return rows.map((r) => this.holder(kind, r, previous.get(r.id) ?? []));
    });
  }

  async rotate(
    input: {
      kind: KeyHolderKind;
      clinicId: string;
      id: string;
      newKeyHash: string;
      graceUntil: Date | null;
      maxPrevious: number;
      now: Date;
    },
    who: KeyActor,
  ): Promise<RotateKeyResult> {
    const { kind, clinicId, id, now } = input;
    return this.transactions.transaction(async (scope): Promise<RotateKeyResult> => {
      const { tx } = scope;
      const table = this.table(tx, kind);
      const live = { holderKind: kind, holderId: id, expiresAt: { gt: now } };
      let row: HolderRow | null = null;
      // Compare-and-set on the current key: of two concurrent rotations (PostgreSQL re-checks the condition once the
      // first commits), the second matches nothing, reads again and replaces the key the first one made.
      for (let attempt = 1; !row; attempt++) {
        const current = await table.findFirst({ where: { id, clinicId, revokedAt: null }, select: HOLDER_SELECT });
        if (!current) return { ok: false, reason: 'not_found' };
        if (input.graceUntil === null) {
          // No grace: every key this holder had before stops now, the one being replaced too.
          await tx.previousKey.updateMany({ where: live, data: { expiresAt: now } });
        } else if ((await tx.previousKey.count({ where: live })) >= input.maxPrevious) {
          return { ok: false, reason: 'too_many_previous_keys' };
        }
        const { count } = await table.updateMany({
          where: { id, clinicId, revokedAt: null, apiKeyHash: current.apiKeyHash },
          data: { apiKeyHash: input.newKeyHash, rotatedAt: now },
        });
        if (count === 1) row = current;
        else if (attempt >= 5) throw new Error('the key of this holder keeps changing; giving up');
      }
      await tx.previousKey.create({
        data: {
          id: randomUUID(),
          clinicId,
          holderKind: kind,
          holderId: id,
          keyHash: row.apiKeyHash,
          retiredAt: now,
          expiresAt: input.graceUntil ?? now,
        },
      });
      const previousKeyValidUntil = input.graceUntil;
      await this.record(
        scope,
        { kind, clinicId, holderId: id, who, at: now },
        'rotated',
        { previousKeyValidUntil: previousKeyValidUntil?.toISOString() ?? null },
        previousKeyValidUntil,
      );
      const previous = await this.previous(tx, kind, [id], now);
      return {
        ok: true,
        holder: this.holder(kind, { ...row, apiKeyHash: input.newKeyHash, rotatedAt: now }, previous.get(id) ?? []),
        previousKeyValidUntil,
      };
    });
  }

  async revoke(kind: KeyHolderKind, clinicId: string, id: string, who: KeyActor, now: Date): Promise<KeyHolder | null> {
    return this.transactions.transaction(async (scope) => {
      const { tx } = scope;
      const table = this.table(tx, kind);
      const { count } = await table.updateMany({ where: { id, clinicId, revokedAt: null }, data: { revokedAt: now } });
      if (count !== 1) return null;
      const ended = await tx.previousKey.updateMany({
        where: { holderKind: kind, holderId: id, expiresAt: { gt: now } },
        data: { expiresAt: now },
      });
      // A revoked desk's session tokens not used yet die with it (the expiry sweep ends those sessions).
      const tokens =
        kind === 'workstation'
          ? await tx.identificationSession.updateMany({
              where: { clinicId, workstationId: id, state: 'created', tokenUsedAt: null, tokenExpiresAt: { gt: now } },
              data: { tokenExpiresAt: now },
            })
          : { count: 0 };
      await this.record(scope, { kind, clinicId, holderId: id, who, at: now }, 'revoked', {
        previousKeysEnded: ended.count,
        ...(kind === 'workstation' ? { sessionTokensEnded: tokens.count } : {}),
      });
      const row = await table.findFirst({ where: { id, clinicId }, select: HOLDER_SELECT });
      return row && this.holder(kind, row, []);
    });
  }

  states(keyHashes: readonly string[], now: Date): Promise<Map<string, KeyState>> {
    const hashes = [...new Set(keyHashes)];
    return this.db.run(async (c) => {
      const out = new Map<string, KeyState>();
      if (hashes.length === 0) return out;
      const where = { apiKeyHash: { in: hashes } };
      const select = { apiKeyHash: true, revokedAt: true };
      for (const r of [
        ...(await c.workstation.findMany({ where, select })),
        ...(await c.misClient.findMany({ where, select })),
      ]) {
        out.set(r.apiKeyHash, r.revokedAt ? 'revoked' : 'current');
      }
      const previous = await c.previousKey.findMany({
        where: { keyHash: { in: hashes.filter((h) => !out.has(h)) } },
        select: { keyHash: true, holderKind: true, holderId: true, expiresAt: true },
      });
      // A previous key of a revoked holder says "revoked", not just "expired".
      const revoked = new Set<string>();
      const ids = (kind: string) => previous.filter((p) => p.holderKind === kind).map((p) => p.holderId);
      const gone = { id: { in: [] as string[] }, revokedAt: { not: null } };
      for (const r of await c.workstation.findMany({
        where: { ...gone, id: { in: ids('workstation') } },
        select: { id: true },
      })) {
        revoked.add(`workstation:${r.id}`);
      }
      for (const r of await c.misClient.findMany({
        where: { ...gone, id: { in: ids('mis_client') } },
        select: { id: true },
      })) {
        revoked.add(`mis_client:${r.id}`);
      }
      for (const p of previous) {
        const state: KeyState = revoked.has(`${p.holderKind}:${p.holderId}`)
          ? 'revoked'
          : p.expiresAt > now
            ? 'previous'
            : 'expired';
        out.set(p.keyHash, state);
      }
      return out;
    });
  }
}
