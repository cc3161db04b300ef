import { Injectable } from '@nestjs/common';
import { TemplateCipher, type BytesContext } from '../enrollment';
import type { EncryptedTemplate, WebhookSubscription } from '../storage/ports';

/**
 * Webhook signing secrets at rest: AES-256-GCM with the template keys (TEMPLATE_KEYS or the key file), so one key
 * set protects every secret of the database and rotates the same way.
 */
@Injectable()
export class WebhookSecrets {
  constructor(private readonly cipher: TemplateCipher) {}

  /** Encrypts a subscription's HMAC key (the caller zeroes `key` after). */
  seal(clinicId: string, url: string, key: Buffer): EncryptedTemplate {
    return this.cipher.encryptBytes(key, context(clinicId, url));
  }

  /** The HMAC key of a subscription; the caller must `fill(0)` it after use. Throws `template_decrypt_failed`. */
  open(sub: Pick<WebhookSubscription, 'clinicId' | 'url' | 'secret'>): Buffer {
    return this.cipher.decryptBytes(sub.secret, context(sub.clinicId, sub.url));
  }
}

/**
 * The AAD: the clinic and the URL the secret signs for (the subscription id does not exist yet when the secret is
 * sealed, and the URL never changes). Copied to another subscription or clinic, a secret no longer decrypts.
 */
function context(clinicId: string, url: string): BytesContext {
  return { purpose: 'webhook-secret', ids: [clinicId, url] };
}
