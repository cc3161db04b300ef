import { Inject, Injectable } from '@nestjs/common';
import { WORKSTATIONS, type WorkstationRepository } from '../storage/ports';
import { createWorkstation, type CreatedWorkstation } from './api-key';

/** Workstations and their keys, inside the app (tests, admin tooling). */
@Injectable()
export class WorkstationsService {
  constructor(@Inject(WORKSTATIONS) private readonly workstations: WorkstationRepository) {}

  /** A new workstation of the clinic and its API key, returned this once. */
  createWorkstation(clinicId: string, name: string): Promise<CreatedWorkstation> {
    return createWorkstation(this.workstations, clinicId, name);
  }
}
