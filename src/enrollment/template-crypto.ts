import { KeyRing, KeyRingError, type KeyRingEntry } from '../keyring';
import type { EncryptedTemplate } from '../storage/ports';
import { TemplateCryptoError } from './errors';

// The key file moved to the key ring (src/keyring); these names stay importable from here.
export { KEY_FILE_NAME, loadOrCreateKeyFile, type KeyFileResult } from '../keyring';

/** Floats in an embedding (the engine's feature network). */
export const EMBEDDING_LENGTH = 512;
const PLAIN_BYTES = EMBEDDING_LENGTH * 4;
/** Bumped if the plaintext layout (512 float32, little-endian) or the AAD layout ever changes. */
const AAD_VERSION = 'faceid-template-v1';

/** Whose template it is. Bound into the ciphertext as AAD: moved to another patient or clinic, it fails to decrypt. */
export interface TemplateOwner {
  clinicId: string;
  patientId: string;
}

function aad(owner: TemplateOwner): Buffer {
  if (!owner.clinicId || !owner.patientId) throw new Error('A template needs its clinic and patient ids.');
  return Buffer.from(`${AAD_VERSION}\0${owner.clinicId}\0${owner.patientId}`, 'utf8');
}

/**
 * Enrolled templates at rest: the embedding as 512 float32 (little-endian), sealed by the key ring (AES-256-GCM, the
 * first key encrypts, every key decrypts) and bound to its clinic and patient. Plaintext copies (the embedding, its
 * serialised bytes) are zeroed as soon as they are used. Nothing here logs or puts data into errors.
 */
export class TemplateCipher {
  readonly ring: KeyRing;

  /** The gateway's key ring, or keys to make one of (tests and tools). */
  constructor(ring: KeyRing | readonly KeyRingEntry[]) {
    this.ring = ring instanceof KeyRing ? ring : new KeyRing(ring);
  }

  /** Key id of new templates. */
  get currentKeyId(): string {
    return this.ring.currentKeyId;
  }

  get keyIds(): string[] {
    return this.ring.keyIds;
  }

  /** Encrypts an embedding with the current key, then ZEROES `embedding`. */
  encrypt(embedding: Float32Array, owner: TemplateOwner): EncryptedTemplate {
    const plain = Buffer.alloc(PLAIN_BYTES);
    try {
      if (embedding.length !== EMBEDDING_LENGTH) throw new Error(`An embedding has ${EMBEDDING_LENGTH} floats.`);
      for (let i = 0; i < EMBEDDING_LENGTH; i++) plain.writeFloatLE(embedding[i], i * 4);
      return this.ring.sealWithAad(plain, aad(owner));
    } finally {
      plain.fill(0);
      embedding.fill(0);
    }
  }

  /**
   * The embedding of a stored template. The caller owns the result and must `fill(0)` it when done.
   * Throws `template_key_unknown` or `template_decrypt_failed` (tampered, or another owner's ciphertext).
   */
  decrypt(template: EncryptedTemplate, owner: TemplateOwner): Float32Array {
    let plain: Buffer;
    try {
      plain = this.ring.openWithAad(template, aad(owner), PLAIN_BYTES);
    } catch (err) {
      if (!(err instanceof KeyRingError)) throw err;
      if (err.code === 'key_unknown') {
        throw new TemplateCryptoError(
          'template_key_unknown',
          `The template was encrypted with key "${template.keyId}", which is not among TEMPLATE_KEYS.`,
        );
      }
      throw new TemplateCryptoError(
        'template_decrypt_failed',
        'The stored template failed authentication (altered, malformed, or not this patient’s).',
      );
    }
    try {
      const out = new Float32Array(EMBEDDING_LENGTH);
      for (let i = 0; i < EMBEDDING_LENGTH; i++) out[i] = plain.readFloatLE(i * 4);
      return out;
    } finally {
      plain.fill(0);
    }
  }
}
