import { createHash, randomBytes } from 'node:crypto';
import type { Workstation, WorkstationRepository } from '../storage/ports';

export const API_KEY_PREFIX = 'fid_ws_';

/** `fid_ws_` + 32 random bytes in base64url (43 characters). */
export const API_KEY_PATTERN = /^fid_ws_[A-Za-z0-9_-]{43}$/;

/** A new workstation API key. Shown once; only its hash is stored. */
export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString('base64url');
}

/** sha256 hex of the key: what storage keeps and looks up. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export interface CreatedWorkstation {
  workstation: Workstation;
  /** The only time the key exists outside the workstation: hand it over, never log or store it. */
  apiKey: string;
}

/** Creates a workstation of the clinic with a fresh key (for the service, the CLI and tests). */
export async function createWorkstation(
  repo: WorkstationRepository,
  clinicId: string,
  name: string,
): Promise<CreatedWorkstation> {
  const apiKey = generateApiKey();
  const workstation = await repo.create(clinicId, name, hashApiKey(apiKey));
  return { workstation, apiKey };
}
