import { randomBytes } from 'node:crypto';
import { AppError, RateLimitedError } from '../http';
import type { EnrollmentKey, EnrollmentKeyRepository } from '../storage/ports';
import { hashApiKey } from './api-key';
import type { RateLimiter } from './rate-limiter';

export const ENROLLMENT_KEY_PREFIX = 'fid_enr_';

/** `fid_enr_` + 32 random bytes in base64url (43 characters). */
export const ENROLLMENT_KEY_PATTERN = /^fid_enr_[A-Za-z0-9_-]{43}$/;

export function generateEnrollmentKey(): string {
  return ENROLLMENT_KEY_PREFIX + randomBytes(32).toString('base64url');
}

export interface IssuedEnrollmentKey {
  key: EnrollmentKey;
  /** The only time the key exists outside its holder: hand it over, never log or store it. */
  apiKey: string;
}

/**
 * Creates an enrollment key of the clinic (the registry role: it enrolls, replaces and revokes templates at once).
 * Only the key's hash is stored.
 */
export async function createEnrollmentKey(
  repo: EnrollmentKeyRepository,
  clinicId: string,
  name: string,
): Promise<IssuedEnrollmentKey> {
  const apiKey = generateEnrollmentKey();
  const key = await repo.create(clinicId, name, hashApiKey(apiKey));
  return { key, apiKey };
}

/** Who is calling with an enrollment key: the key, and the one clinic it is scoped to. */
export interface EnrollmentKeyPrincipal {
  clinicId: string;
  enrollmentKeyId: string;
}

/**
 * The principal of an enrollment key, or throws `unauthorized` (`error`, the caller's answer for any bad key) or
 * `rate_limited`: per client IP first, so guessing keys is slow too, then per key.
 */
export async function authenticateEnrollmentKey(
  keys: EnrollmentKeyRepository,
  limiter: RateLimiter,
  key: string | undefined,
  ip: string,
  error: () => AppError,
): Promise<EnrollmentKeyPrincipal> {
  const ipWait = limiter.take(`ip:${ip}`);
  if (ipWait > 0) throw new RateLimitedError(ipWait);
  if (!key || !ENROLLMENT_KEY_PATTERN.test(key)) throw error();
  const found = await keys.findByKeyHash(hashApiKey(key));
  if (!found || found.revokedAt) throw error();
  const keyWait = limiter.take(`enr:${found.id}`);
  if (keyWait > 0) throw new RateLimitedError(keyWait);
  return { clinicId: found.clinicId, enrollmentKeyId: found.id };
}
