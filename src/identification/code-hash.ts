import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import { TemplateCryptoError } from '../enrollment';
import type { KeyRing } from '../keyring';

/** HKDF `info`: keys for code hashes are separate from the template keys they come from. */
const HKDF_INFO = 'faceid-one-time-code-v1';
const HEX_HMAC = /^[0-9a-f]{64}$/;

/** A six-digit code from the CSPRNG, leading zeros kept. */
export function newCode(): string {
  return String(randomInt(0, 1_000_000)).padStart(6, '0');
}

/**
 * Keyed hashes of six-digit codes: HMAC-SHA256 of `sessionId NUL code` under a key derived (HKDF-SHA256) from each
 * template key. Stored as `<keyId>:<hex>`, so a hash made before a key rotation is still checked with its own key.
 * Binding the session id means a hash copied to another session's row does not verify there.
 */
export class CodeHasher {
  private readonly keys: Map<string, Buffer>;
  private readonly currentKeyId: string;

  constructor(ring: Pick<KeyRing, 'deriveKeys'>) {
    ({ keys: this.keys, currentKeyId: this.currentKeyId } = ring.deriveKeys(HKDF_INFO));
  }

  hash(sessionId: string, code: string): string {
    return `${this.currentKeyId}:${this.mac(this.currentKeyId, sessionId, code).toString('hex')}`;
  }

  /** Constant-time comparison of the two HMACs. Throws `template_key_unknown` if the hash's key is gone. */
  verify(stored: string, sessionId: string, code: string): boolean {
    const sep = stored.lastIndexOf(':');
    const keyId = stored.slice(0, sep);
    const hex = stored.slice(sep + 1);
    if (sep < 1 || !HEX_HMAC.test(hex)) return false;
    if (!this.keys.has(keyId)) {
      throw new TemplateCryptoError(
        'template_key_unknown',
        `A code was hashed with key "${keyId}", which is not among the template keys.`,
      );
    }
    return timingSafeEqual(this.mac(keyId, sessionId, code), Buffer.from(hex, 'hex'));
  }

  private mac(keyId: string, sessionId: string, code: string): Buffer {
    return createHmac('sha256', this.keys.get(keyId)!).update(`${sessionId}\0${code}`, 'utf8').digest();
  }
}
