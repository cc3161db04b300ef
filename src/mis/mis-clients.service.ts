import { Inject, Injectable } from '@nestjs/common';
import { MIS_KEY_ROTATION_GRACE_MS, type IssuedMisKey } from '../auth/mis-key';
import { KeysError } from '../keys/errors';
import { KeysService, type IssuedKey } from '../keys/keys.service';
import {
  CLINICS,
  MIS_CLIENTS,
  type Clinic,
  type ClinicRepository,
  type KeyActor,
  type KeyHolder,
  type MisClient,
  type MisClientRepository,
} from '../storage/ports';

export interface RotatedMisKey extends IssuedMisKey {
  /** Until when the key it replaced still works. */
  previousKeyValidUntil: Date;
}

const asClient = (h: KeyHolder): MisClient => ({
  id: h.id,
  clinicId: h.clinicId,
  name: h.name,
  createdAt: h.createdAt,
  rotatedAt: h.rotatedAt,
  revokedAt: h.revokedAt,
});

/** `mis:<id>` rotating its own key is the holder itself; anything else is the operator (`cli`, `admin`, tests). */
const actorOf = (actor: string, id: string): KeyActor => ({ actor, by: actor === `mis:${id}` ? 'self' : 'operator' });

/**
 * MIS clients, for the /mis endpoints: the account of the calling client, and its keys through the one key lifecycle
 * (src/keys: audited, with a `mis_client.key_changed` event). Keys are returned once and never logged or audited.
 */
@Injectable()
export class MisClientsService {
  constructor(
    @Inject(MIS_CLIENTS) private readonly clients: MisClientRepository,
    private readonly keys: KeysService,
    @Inject(CLINICS) private readonly clinics: ClinicRepository,
  ) {}

  async create(actor: string, clinicId: string, name: string): Promise<IssuedMisKey> {
    const issued: IssuedKey = await this.keys.create('mis_client', { actor, by: 'operator' }, clinicId, name);
    return { client: asClient(issued.holder), apiKey: issued.apiKey };
  }

  /** The clinic's client with this id (revoked ones too), or null. */
  async get(clinicId: string, id: string): Promise<MisClient | null> {
    return (await this.clients.list(clinicId)).find((c) => c.id === id) ?? null;
  }

  /** The calling client and its clinic (`GET /mis/me`); 404 `mis_client_not_found` if either is gone. */
  async me(clinicId: string, id: string): Promise<{ client: MisClient; clinic: Clinic }> {
    const client = await this.get(clinicId, id);
    const clinic = await this.clinics.get(clinicId);
    // Only if it vanished since the guard looked (no delete exists today).
    if (!client || !clinic) throw new KeysError('mis_client_not_found', 'No such MIS client.');
    return { client, clinic };
  }

  list(clinicId: string): Promise<MisClient[]> {
    return this.clients.list(clinicId);
  }

  /**
   * A new key; the one it replaces keeps working for `graceMs` (keys replaced earlier keep their own grace). 404
   * `mis_client_not_found` for no such active client, 409 `key_rotation_limit` with too many keys in their grace.
   */
  async rotate(
    actor: string,
    clinicId: string,
    id: string,
    graceMs = MIS_KEY_ROTATION_GRACE_MS,
    now = new Date(),
  ): Promise<RotatedMisKey> {
    if (!(graceMs > 0)) throw new RangeError('an MIS client rotation keeps the previous key for a grace (graceMs > 0)');
    const r = await this.keys.rotate('mis_client', actorOf(actor, id), clinicId, id, graceMs, now);
    return { client: asClient(r.holder), apiKey: r.apiKey, previousKeyValidUntil: r.previousKeyValidUntil! };
  }

  /** Revokes the client: its keys, current and previous, stop working at once. */
  async revoke(actor: string, clinicId: string, id: string): Promise<void> {
    await this.keys.revoke('mis_client', actorOf(actor, id), clinicId, id);
  }
}
