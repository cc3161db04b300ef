import { Injectable } from '@nestjs/common';
import { KeyRing, type SealContext } from '../keyring';
import type { EncryptedTemplate, WebhookSubscription } from '../storage/ports';

/**
 * Webhook signing secrets at rest: sealed by the key ring (AES-256-GCM with TEMPLATE_KEYS or the key file), so one
 * key set protects every secret of the database and rotates the same way.
 */
@Injectable()
export class WebhookSecrets {
  constructor(private readonly ring: KeyRing) {}

  /** Seals a subscription's HMAC key (the caller zeroes `key` after). */
  seal(clinicId: string, url: string, key: Buffer): EncryptedTemplate {
    return this.ring.seal(key, context(clinicId, url));
  }

  /** The HMAC key of a subscription; the caller must `fill(0)` it after use. Throws `unseal_failed` / `key_unknown`. */
  open(sub: Pick<WebhookSubscription, 'clinicId' | 'url' | 'secret'>): Buffer {
    return this.ring.open(sub.secret, context(sub.clinicId, sub.url));
  }
}

/**
 * The AAD: the clinic and the URL the secret signs for (the subscription id does not exist yet when the secret is
 * sealed, and the URL never changes). Copied to another subscription or clinic, a secret no longer opens.
 */
function context(clinicId: string, url: string): SealContext {
  return { purpose: 'webhook-secret', ids: [clinicId, url] };
}
