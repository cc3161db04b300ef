import { randomBytes } from 'node:crypto';
import type { MisClient, MisClientRepository } from '../storage/ports';
import { hashApiKey } from './api-key';

export const MIS_KEY_PREFIX = 'fid_mis_';

/** `fid_mis_` + 32 random bytes in base64url (43 characters). */
export const MIS_KEY_PATTERN = /^fid_mis_[A-Za-z0-9_-]{43}$/;

/** After a rotation the previous key keeps working this long, so the MIS can deploy the new one (src/keys rotates). */
export const MIS_KEY_ROTATION_GRACE_MS = 24 * 60 * 60 * 1000;

export function generateMisKey(): string {
  return MIS_KEY_PREFIX + randomBytes(32).toString('base64url');
}

export interface IssuedMisKey {
  client: MisClient;
  /** The only time the key exists outside the MIS: hand it over, never log or store it. */
  apiKey: string;
}

/** Creates an MIS client of the clinic with a fresh key (service, CLI and tests). */
export async function createMisClient(
  repo: MisClientRepository,
  clinicId: string,
  name: string,
): Promise<IssuedMisKey> {
  const apiKey = generateMisKey();
  const client = await repo.create(clinicId, name, hashApiKey(apiKey));
  return { client, apiKey };
}
