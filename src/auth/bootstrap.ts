import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { AuditService } from '../audit';
import { CONFIG, type Config } from '../config';
import { CLINICS, WORKSTATIONS, type ClinicRepository, type WorkstationRepository } from '../storage/ports';
import { createWorkstation } from './api-key';

export const DEMO_CLINIC = 'Demo clinic';
export const DEMO_WORKSTATION = 'Demo workstation';

/**
 * A first start on an empty database (FACEID_BOOTSTRAP, default true) creates a demo clinic and workstation and
 * prints the workstation's API key once, so a fresh clone can be tried at once. Only its hash is stored: the key
 * cannot be shown again (create another workstation instead).
 */
@Injectable()
export class AuthBootstrap implements OnApplicationBootstrap {
  private readonly logger = new Logger('Auth');

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(CLINICS) private readonly clinics: ClinicRepository,
    @Inject(WORKSTATIONS) private readonly workstations: WorkstationRepository,
    private readonly audit: AuditService,
  ) {}

  /** After every module's init, so storage has applied its migrations. */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.FACEID_BOOTSTRAP) return;
    if ((await this.clinics.count()) > 0) return;
    const clinic = await this.clinics.create(DEMO_CLINIC);
    const { workstation, apiKey } = await createWorkstation(this.workstations, clinic.id, DEMO_WORKSTATION);
    await this.audit.record('system', 'clinic.bootstrapped', { clinicId: clinic.id, subject: workstation.id });
    this.logger.warn(
      `First start: created "${DEMO_CLINIC}" with workstation "${DEMO_WORKSTATION}". Its API key, shown only this ` +
        `once: ${apiKey} -- send it as "Authorization: Bearer <key>". Set FACEID_BOOTSTRAP=false to skip this.`,
    );
  }
}
