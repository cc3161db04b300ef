import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '../audit';
import { createMisClient, MIS_KEY_ROTATION_GRACE_MS, rotateMisKey, type IssuedMisKey } from '../auth/mis-key';
import { AppError, registerErrorStatus } from '../http';
import { MIS_CLIENTS, type MisClient, type MisClientRepository } from '../storage/ports';

registerErrorStatus({ mis_client_not_found: 404 });

export interface RotatedMisKey extends IssuedMisKey {
  /** Until when the key it replaced still works. */
  previousKeyValidUntil: Date;
}

const notFound = () => new AppError('mis_client_not_found', 'No active MIS client with this id in this clinic.');

/**
 * MIS clients and their keys, for the /mis endpoints and the admin CLI alike: every change is audited with the
 * actor that made it (`mis:<id>`, `cli`, `system`). Keys are returned once and never logged or audited.
 */
@Injectable()
export class MisClientsService {
  constructor(
    @Inject(MIS_CLIENTS) private readonly clients: MisClientRepository,
    private readonly audit: AuditService,
  ) {}

  async create(actor: string, clinicId: string, name: string): Promise<IssuedMisKey> {
    const issued = await createMisClient(this.clients, clinicId, name);
    await this.audit.record(actor, 'mis_client.created', { clinicId, subject: issued.client.id, detail: { name } });
    return issued;
  }

  /** The clinic's client with this id (revoked ones too), or null. */
  async get(clinicId: string, id: string): Promise<MisClient | null> {
    return (await this.clients.list(clinicId)).find((c) => c.id === id) ?? null;
  }

  list(clinicId: string): Promise<MisClient[]> {
    return this.clients.list(clinicId);
  }

  /** A new key; the old one keeps working for `graceMs`. 404 `mis_client_not_found` for no such active client. */
  async rotate(
    actor: string,
    clinicId: string,
    id: string,
    graceMs = MIS_KEY_ROTATION_GRACE_MS,
    now = new Date(),
  ): Promise<RotatedMisKey> {
    const issued = await rotateMisKey(this.clients, clinicId, id, graceMs, now);
    if (!issued) throw notFound();
    const previousKeyValidUntil = new Date(now.getTime() + graceMs);
    await this.audit.record(actor, 'mis_client.key_rotated', {
      clinicId,
      subject: id,
      detail: { previousKeyValidUntil: previousKeyValidUntil.toISOString() },
    });
    return { ...issued, previousKeyValidUntil };
  }

  /** Revokes the client: its keys, current and previous, stop working at once. */
  async revoke(actor: string, clinicId: string, id: string): Promise<void> {
    if (!(await this.clients.revoke(clinicId, id))) throw notFound();
    await this.audit.record(actor, 'mis_client.revoked', { clinicId, subject: id });
  }
}
