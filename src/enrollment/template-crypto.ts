import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseTemplateKeys, type TemplateKeyConfig } from '../config';
import type { EncryptedTemplate } from '../storage/ports';
import { TemplateCryptoError } from './errors';

/** Floats in an embedding (the engine's feature network). */
export const EMBEDDING_LENGTH = 512;
const PLAIN_BYTES = EMBEDDING_LENGTH * 4;
const IV_BYTES = 12;
const TAG_BYTES = 16;
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
 * AES-256-GCM for enrolled templates, with key ids for rotation: the first key encrypts, every key decrypts.
 * Plaintext copies (the embedding, its serialised bytes) are zeroed as soon as they are used. Nothing here logs or
 * puts data into errors.
 */
export class TemplateCipher {
  private readonly keys = new Map<string, Buffer>();
  /** Key id of new templates. */
  readonly currentKeyId: string;

  constructor(keys: readonly TemplateKeyConfig[]) {
    if (keys.length === 0) throw new Error('TemplateCipher needs at least one key.');
    for (const k of keys) {
      if (k.key.length !== 32) throw new Error(`Template key ${k.id} is not 32 bytes.`);
      if (this.keys.has(k.id)) throw new Error(`Template key id ${k.id} appears twice.`);
      this.keys.set(k.id, Buffer.from(k.key));
    }
    this.currentKeyId = keys[0].id;
  }

  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  /**
   * Keys for another purpose, derived from each template key (HKDF-SHA256 with `info`, 32 bytes), under the same ids:
   * they rotate with the template keys and never equal them.
   */
  deriveKeys(info: string): { currentKeyId: string; keys: Map<string, Buffer> } {
    const keys = new Map<string, Buffer>();
    for (const [id, key] of this.keys) keys.set(id, Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), info, 32)));
    return { currentKeyId: this.currentKeyId, keys };
  }

  /** Encrypts an embedding with the current key, then ZEROES `embedding`. */
  encrypt(embedding: Float32Array, owner: TemplateOwner): EncryptedTemplate {
    const plain = Buffer.alloc(PLAIN_BYTES);
    try {
      if (embedding.length !== EMBEDDING_LENGTH) throw new Error(`An embedding has ${EMBEDDING_LENGTH} floats.`);
      for (let i = 0; i < EMBEDDING_LENGTH; i++) plain.writeFloatLE(embedding[i], i * 4);
      return this.seal(plain, aad(owner));
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
    const plain = this.open(template, aad(owner), {
      what: 'template',
      length: PLAIN_BYTES,
      tampered: 'The stored template failed authentication (altered, or not this patient’s).',
    });
    try {
      const out = new Float32Array(EMBEDDING_LENGTH);
      for (let i = 0; i < EMBEDDING_LENGTH; i++) out[i] = plain.readFloatLE(i * 4);
      return out;
    } finally {
      plain.fill(0);
    }
  }

  /**
   * Encrypts other small secrets with the same keys (e.g. webhook signing secrets). `context` names the owner and is
   * bound as AAD, kept apart from templates' AAD by its purpose string: a ciphertext moved elsewhere fails to decrypt.
   * Does not zero `plain` (the caller owns it).
   */
  encryptBytes(plain: Buffer, context: BytesContext): EncryptedTemplate {
    return this.seal(plain, bytesAad(context));
  }

  /** The plaintext of encryptBytes(); the caller owns it and should `fill(0)` it when done. */
  decryptBytes(sealed: EncryptedTemplate, context: BytesContext): Buffer {
    return this.open(sealed, bytesAad(context), {
      what: 'secret',
      tampered: 'The stored secret failed authentication (altered, or not its owner’s).',
    });
  }

  private seal(plain: Buffer, additional: Buffer): EncryptedTemplate {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.currentKeyId)!, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(additional);
    const ciphertext = Buffer.concat([cipher.update(plain), cipher.final()]);
    return { keyId: this.currentKeyId, iv, ciphertext, tag: cipher.getAuthTag() };
  }

  /** `expect.length`: the plaintext length, when it is fixed. */
  private open(
    sealed: EncryptedTemplate,
    additional: Buffer,
    expect: { what: string; length?: number; tampered: string },
  ): Buffer {
    const key = this.keys.get(sealed.keyId);
    if (!key) {
      throw new TemplateCryptoError(
        'template_key_unknown',
        `The ${expect.what} was encrypted with key "${sealed.keyId}", which is not among TEMPLATE_KEYS.`,
      );
    }
    if (
      sealed.iv.length !== IV_BYTES ||
      sealed.tag.length !== TAG_BYTES ||
      (expect.length !== undefined && sealed.ciphertext.length !== expect.length)
    ) {
      throw new TemplateCryptoError('template_decrypt_failed', `The stored ${expect.what} is malformed.`);
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
      throw new TemplateCryptoError('template_decrypt_failed', expect.tampered);
    }
    return plain;
  }
}

/** What encryptBytes() binds a secret to: a purpose (e.g. `webhook-secret`) and its owner's ids. */
export interface BytesContext {
  purpose: string;
  ids: readonly string[];
}

function bytesAad(context: BytesContext): Buffer {
  const badId = (id: string) => !id || id.includes('\0');
  if (!/^[a-z][a-z0-9-]*$/.test(context.purpose) || context.ids.length === 0 || context.ids.some(badId)) {
    throw new Error('Encrypted bytes need a purpose and the ids of their owner.');
  }
  return Buffer.from(['faceid-bytes-v1', context.purpose, ...context.ids].join('\0'), 'utf8');
}

export const KEY_FILE_NAME = 'template-keys';

export interface KeyFileResult {
  keys: TemplateKeyConfig[];
  file: string;
  created: boolean;
  /** Set when the file is readable by others than its owner. */
  warning?: string;
}

/**
 * Reads `<dir>/template-keys`, or creates it with one random key (mode 0600, atomically: a second process starting
 * at the same time reads the first one's key). Same format as TEMPLATE_KEYS, one key a line, `#` comments.
 */
export function loadOrCreateKeyFile(dir: string, now: Date = new Date()): KeyFileResult {
  const file = path.join(dir, KEY_FILE_NAME);
  let created = false;
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const id = `gen${now.toISOString().slice(0, 10).replace(/-/g, '')}`;
    const key = randomBytes(32);
    const text =
      '# faceid-gateway: the key that encrypts enrolled face templates. Keep it secret, back it up with the database:\n' +
      '# without it no template can be decrypted. To move to TEMPLATE_KEYS, copy the line below into it.\n' +
      `${id}:${key.toString('base64')}\n`;
    key.fill(0);
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      fs.writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
      try {
        fs.linkSync(tmp, file); // fails if another process created the file first: then theirs is read below
        created = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  const stat = fs.statSync(file);
  const parsed = parseTemplateKeys(fs.readFileSync(file, 'utf8'));
  if (typeof parsed === 'string') throw new Error(`The template key file ${file} is invalid: ${parsed}.`);
  const warning =
    (stat.mode & 0o077) !== 0
      ? `The template key file ${file} is readable by other users (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it.`
      : undefined;
  return { keys: parsed, file, created, ...(warning ? { warning } : {}) };
}
