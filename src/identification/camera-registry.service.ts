import { Inject, Injectable, Logger } from '@nestjs/common';
import { z } from 'zod';
import {
  WORKSTATIONS,
  type CameraReportResult,
  type ReportedCamera,
  type WorkstationRepository,
} from '../storage/ports';

/**
 * A camera as a desk's browser reports it (`hello.camera`): the label, at most 200 characters without control
 * characters, and the client's hash of the device id (hex). The wire protocol checks the same; this is the edge of
 * storage, so it is checked again here.
 */
export const ReportedCameraSchema = z.strictObject({
  label: z
    .string()
    .max(200)
    .regex(/^[^\p{Cc}]*$/u),
  deviceIdHash: z.string().regex(/^[0-9a-fA-F]{16,128}$/),
});

/**
 * Remembers which camera each workstation uses. The first report is remembered; a different camera later writes a
 * `workstation.camera_changed` MIS event and an audit entry (a swapped webcam, or a virtual camera slipped in front
 * of the real one). Only a hash of the device id is stored.
 */
@Injectable()
export class CameraRegistryService {
  private readonly log = new Logger('CameraRegistry');

  constructor(@Inject(WORKSTATIONS) private readonly workstations: WorkstationRepository) {}

  /** Throws RangeError for a malformed camera (naming the field, never its value), StorageError for an unknown desk. */
  async report(clinicId: string, workstationId: string, camera: ReportedCamera): Promise<CameraReportResult> {
    const parsed = ReportedCameraSchema.safeParse(camera);
    if (!parsed.success) {
      const fields = [...new Set(parsed.error.issues.map((i) => i.path.join('.') || 'camera'))];
      throw new RangeError(`invalid camera report: ${fields.join(', ')}`);
    }
    const result = await this.workstations.recordCamera(clinicId, workstationId, parsed.data);
    if (result.changed) {
      this.log.warn(`Workstation ${workstationId} reported a different camera: "${parsed.data.label}"`);
    }
    return result;
  }
}
