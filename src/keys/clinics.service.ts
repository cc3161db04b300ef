import { Inject, Injectable } from '@nestjs/common';
import { CLINICS, type Clinic, type ClinicRepository } from '../storage/ports';
import { KeysError } from './errors';

/** The clinics as the operator's /admin routes see them: the ids the key routes take. */
@Injectable()
export class ClinicsService {
  constructor(@Inject(CLINICS) private readonly clinics: ClinicRepository) {}

  /** Every clinic, oldest first. */
  list(): Promise<Clinic[]> {
    return this.clinics.list();
  }

  /** Resolves if the clinic exists; 404 `clinic_not_found` otherwise. */
  async require(clinicId: string): Promise<void> {
    if (!(await this.clinics.get(clinicId))) throw new KeysError('clinic_not_found', 'No such clinic.');
  }
}
