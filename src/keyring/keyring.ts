import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { TemplateKeyConfig } from '../config';
import { KeyRingError } from './errors';

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** One key of the ring: its id (stored beside everything it sealed) and 32 bytes. */
export type KeyRingEntry = TemplateKeyConfig;

/** What seal() returns and open() takes: the key id, the GCM nonce, the ciphertext and its tag. */
export interface Sealed {
  keyId: string;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** What a sealed secret is bound to (as AAD): a purpose (e.g. `webhook-secret`) and its owner's ids. */
export interface SealContext {
  purpose: string;
  ids: readonly string[];
}

/** Keys derived for one purpose (HKDF), under the ids of the ring keys they come from. */
export interface DerivedKeys {
  /** The id of the key new values are made with. */
  currentKeyId: string;
  keys: Map<string, Buffer>;
}

/**
 * The gateway's key ring: the keys of TEMPLATE_KEYS (or the generated key file), with ids for rotation. The first
 * key seals new values; every key opens what it sealed. It seals face templates (src/enrollment) and webhook signing
 * secrets (AES-256-GCM, bound to their owner as AAD), and derives the keys of other purposes with HKDF-SHA256: the
 * one-time code hashes and the audit chain's HMAC. A derived key never equals a ring key, and rotates with it.
 * Nothing here logs or puts key material into errors.
 */
export class KeyRing {
  private readonly keys = new Map<string, Buffer>();
  /** The key id of new sealed values (the first key). */
  readonly currentKeyId: string;

  constructor(keys: readonly KeyRingEntry[]) {
    if (keys.length === 0) throw new Error('A key ring needs at least one key.');
    for (const k of keys) {
      if (k.key.length !== 32) throw new Error(`Key ${k.id} is not 32 bytes.`);
      if (this.keys.has(k.id)) throw new Error(`Key id ${k.id} appears twice.`);
      this.keys.set(k.id, Buffer.from(k.key));
    }
    this.currentKeyId = keys[0].id;
  }

  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  has(keyId: string): boolean {
    return this.keys.has(keyId);
  }

  /** Keys for another purpose: HKDF-SHA256 of each ring key with `info`, 32 bytes, under the same ids. */
  deriveKeys(info: string): DerivedKeys {
    const keys = new Map<string, Buffer>();
    for (const [id, key] of this.keys) keys.set(id, Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), info, 32)));
    return { currentKeyId: this.currentKeyId, keys };
  }

  /**
   * Seals a small secret with the current key, bound to `context` (AAD kept apart from templates' AAD by its
   * prefix): a ciphertext copied to another owner fails to open. Does not zero `plain` (the caller owns it).
   */
  seal(plain: Buffer, context: SealContext): Sealed {
    return this.sealWithAad(plain, sealAad(context));
  }

  /** The plaintext of seal(); the caller owns it and should `fill(0)` it when done. Throws KeyRingError. */
  open(sealed: Sealed, context: SealContext): Buffer {
    return this.openWithAad(sealed, sealAad(context));
  }

  /** AES-256-GCM with the current key and a caller-built AAD (for formats with their own AAD, e.g. templates). */
  sealWithAad(plain: Buffer, additional: Buffer): Sealed {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.currentKeyId)!, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(additional);
    const ciphertext = Buffer.concat([cipher.update(plain), cipher.final()]);
    return { keyId: this.currentKeyId, iv, ciphertext, tag: cipher.getAuthTag() };
  }

  /**
   * Opens what sealWithAad() sealed. `length`: the plaintext length, when it is fixed. Throws KeyRingError
   * `key_unknown` (its key is not in the ring) or `unseal_failed` (altered, malformed, or another owner's).
   */
  openWithAad(sealed: Sealed, additional: Buffer, length?: number): Buffer {
    const key = this.keys.get(sealed.keyId);
    if (!key) {
      throw new KeyRingError(
        'key_unknown',
        `Sealed with key "${sealed.keyId}", which is not in the key ring (TEMPLATE_KEYS).`,
      );
    }
    if (
      sealed.iv.length !== IV_BYTES ||
      sealed.tag.length !== TAG_BYTES ||
      (length !== undefined && sealed.ciphertext.length !== length)
    ) {
      throw new KeyRingError('unseal_failed', 'The sealed value is malformed.');
    }
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(additional);
    decipher.setAuthTag(sealed.tag);
    // GCM releases plaintext before the tag is checked: it is wiped on failure, and returned only if authentic.
    const plain = decipher.update(sealed.ciphertext);
    try {
      decipher.final();
    } catch {
      plain.fill(0);
      throw new KeyRingError('unseal_failed', 'The sealed value failed authentication (altered, or not its owner’s).');
    }
    return plain;
  }
}

/** The AAD of seal(): the same bytes as before the key ring had its own module, so stored secrets still open. */
function sealAad(context: SealContext): Buffer {
  const badId = (id: string) => !id || id.includes('\0');
  if (!/^[a-z][a-z0-9-]*$/.test(context.purpose) || context.ids.length === 0 || context.ids.some(badId)) {
    throw new Error('A sealed value needs a purpose and the ids of its owner.');
  }
  return Buffer.from(['faceid-bytes-v1', context.purpose, ...context.ids].join('\0'), 'utf8');
}
