import type { TemplateActor } from '../storage/ports';

/**
 * Who enrolls, and with what right:
 * - `enrollment_key`: the clinic's enrollment role (the registry, e.g. the import from the state database of
 *   individuals); enrolls, replaces and revokes at once.
 * - `workstation`: a desk, only where the clinic allows desk enrollment; a first enrollment at once, the replacement
 *   of an existing template only with the patient's six-digit code.
 * - `admin`: `faceid enroll` on the service host (the bulk import); like the enrollment role.
 */
export type Enroller =
  | { kind: 'enrollment_key'; clinicId: string; enrollmentKeyId: string }
  | { kind: 'workstation'; clinicId: string; workstationId: string }
  | { kind: 'admin'; clinicId: string };

/** A workstation principal without a kind (the API-key guard's) is a workstation: the least privileged enroller. */
export function asEnroller(who: Enroller | { clinicId: string; workstationId: string }): Enroller {
  return 'kind' in who ? who : { kind: 'workstation', clinicId: who.clinicId, workstationId: who.workstationId };
}

/** The actor of the MIS event. */
export function templateActorOf(e: Enroller): TemplateActor {
  if (e.kind === 'enrollment_key') return { kind: 'enrollment_key', id: e.enrollmentKeyId };
  if (e.kind === 'workstation') return { kind: 'workstation', id: e.workstationId };
  return { kind: 'admin', id: null };
}

/** The actor of the audit trail: `enrollment_key:<id>`, `workstation:<id>`, or `cli`. */
export function auditActorOf(e: Enroller): string {
  if (e.kind === 'enrollment_key') return `enrollment_key:${e.enrollmentKeyId}`;
  if (e.kind === 'workstation') return `workstation:${e.workstationId}`;
  return 'cli';
}
