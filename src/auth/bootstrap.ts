import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { AuditService } from '../audit';
import { CONFIG, type Config } from '../config';
import {
  CLINICS,
  MIS_CLIENTS,
  WORKSTATIONS,
  type ClinicRepository,
  type MisClientRepository,
  type WorkstationRepository,
} from '../storage/ports';
import { createWorkstation } from './api-key';
import { createMisClient } from './mis-key';

export const DEMO_CLINIC = 'Demo clinic';
export const DEMO_WORKSTATION = 'Demo workstation';
export const DEMO_MIS = 'Demo MIS';

/**
 * A first start on an empty database (FACEID_BOOTSTRAP, default true) creates a demo clinic, a workstation and an
 * MIS client, and prints their API keys once, so a fresh clone can be tried at once (the desk with the workstation
 * key; events, webhooks and stats with the MIS key). Only hashes are stored: the keys cannot be shown again (create
 * others with the `faceid` admin commands instead).
 */
@Injectable()
export class AuthBootstrap implements OnApplicationBootstrap {
  private readonly logger = new Logger('Auth');

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(CLINICS) private readonly clinics: ClinicRepository,
    @Inject(WORKSTATIONS) private readonly workstations: WorkstationRepository,
    @Inject(MIS_CLIENTS) private readonly misClients: MisClientRepository,
    private readonly audit: AuditService,
  ) {}

  /** After every module's init, so storage has applied its migrations. */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.FACEID_BOOTSTRAP) return;
    if ((await this.clinics.count()) > 0) return;
    // Two gateways starting on one empty database: only one gets the clinic, and so only one set of keys is made.
    const clinic = await this.clinics.createFirst(DEMO_CLINIC);
    if (!clinic) return;
    // The demo desk enrolls its patients itself (the README's walk-through and the demo page); a clinic made with
    // `faceid clinic create` does not, until `faceid clinic desk-enrollment ID on`.
    await this.clinics.setDeskEnrollment(clinic.id, true);
    const { workstation, apiKey } = await createWorkstation(this.workstations, clinic.id, DEMO_WORKSTATION);
    await this.audit.record('system', 'clinic.bootstrapped', {
      clinicId: clinic.id,
      subject: workstation.id,
      detail: { deskEnrollment: true },
    });
    const mis = await createMisClient(this.misClients, clinic.id, DEMO_MIS);
    await this.audit.record('system', 'mis_client.created', {
      clinicId: clinic.id,
      subject: mis.client.id,
      detail: { name: DEMO_MIS },
    });
    this.logger.warn(
      `First start: created "${DEMO_CLINIC}" with workstation "${DEMO_WORKSTATION}". Its API key, shown only this ` +
        `once: ${apiKey} -- send it as "Authorization: Bearer <key>". Set FACEID_BOOTSTRAP=false to skip this.`,
    );
    this.logger.warn(
      `First start: created the MIS client "${DEMO_MIS}" of "${DEMO_CLINIC}" (events, webhooks, stats). Its API key, ` +
        `shown only this once: ${mis.apiKey} -- send it as "Authorization: Bearer <key>".`,
    );
  }
}
