import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseTemplateKeys, type Config, type TemplateKeyConfig } from '../config';
import { KeyRing } from './keyring';

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
      '# faceid-gateway: the key ring (it encrypts enrolled face templates and webhook secrets, and keys the code\n' +
      '# hashes and the audit chain). Keep it secret, back it up with the database: without it no template can be\n' +
      '# decrypted. To move to TEMPLATE_KEYS, copy the line below into it.\n' +
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
  if (typeof parsed === 'string') throw new Error(`The key file ${file} is invalid: ${parsed}.`);
  const warning =
    (stat.mode & 0o077) !== 0
      ? `The key file ${file} is readable by other users (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it.`
      : undefined;
  return { keys: parsed, file, created, ...(warning ? { warning } : {}) };
}

/** Where the key ring's notices go (a Nest Logger fits); nothing is said without one. */
export interface KeyRingLog {
  log(message: string): void;
  warn(message: string): void;
}

/**
 * The key ring of a configuration: TEMPLATE_KEYS when set, else the key file in FACEID_DATA_DIR (created on first
 * use). Says key ids only, never keys.
 */
export function keyRingFromConfig(
  config: Pick<Config, 'FACEID_DATA_DIR' | 'DATABASE_URL'> & Partial<Pick<Config, 'TEMPLATE_KEYS'>>,
  log?: KeyRingLog,
): KeyRing {
  if (config.TEMPLATE_KEYS) {
    const ring = new KeyRing(config.TEMPLATE_KEYS);
    log?.log(`Key ring from TEMPLATE_KEYS: ${ring.keyIds.join(', ')} (new values: ${ring.currentKeyId})`);
    return ring;
  }
  const result = loadOrCreateKeyFile(config.FACEID_DATA_DIR);
  if (result.warning) log?.warn(result.warning);
  if (config.DATABASE_URL && /^postgres/i.test(config.DATABASE_URL)) {
    // Several gateways share the database, but each would generate its own key file.
    log?.warn(
      'A shared database with a generated key file: set the same TEMPLATE_KEYS on every gateway, or templates and ' +
        'webhook secrets sealed by one cannot be opened by the others, nor their audit entries verified.',
    );
  }
  const ring = new KeyRing(result.keys);
  log?.log(
    `${result.created ? 'Created the key file' : 'Key ring from'} ${result.file}: ` +
      `${ring.keyIds.join(', ')} (new values: ${ring.currentKeyId}). Back it up with the database.`,
  );
  return ring;
}
