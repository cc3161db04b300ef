import { z } from 'zod';
import { walkAuditChain, type AuditChainReader, type AuditChainReport } from '../storage/audit-chain';
import { CLI_ACTOR, parseOptions, withAdminStorage } from './admin';
import type { Command, CommandGroup, CommandIo, OptionValues } from './main';

/** Entries read per page while walking the chain. */
export const AUDIT_PAGE_SIZE = 1000;
/** Without a terminal, a progress line every this many entries (a terminal gets one line, rewritten per page). */
const PLAIN_PROGRESS_EVERY = 10_000;

/**
 * walkAuditChain() with, once the chain is longer than a page, progress on stderr: one line rewritten in place on a
 * terminal, else a line every PLAIN_PROGRESS_EVERY entries.
 */
export async function checkAuditChain(
  reader: AuditChainReader,
  io: Pick<CommandIo, 'err' | 'errIsTTY'>,
  pageSize = AUDIT_PAGE_SIZE,
): Promise<AuditChainReport> {
  let entries = 0;
  let progressShown = false;
  let lastPlain = 0;
  const counting: AuditChainReader = {
    chainKeys: reader.chainKeys,
    entriesAfter: async (afterSeq, limit) => {
      const page = await reader.entriesAfter(afterSeq, limit);
      entries += page.length;
      if (page.length === limit) {
        if (io.errIsTTY) {
          io.err(`\rverifying the audit chain: ${entries} entries read\x1b[K`);
          progressShown = true;
        } else if (entries - lastPlain >= PLAIN_PROGRESS_EVERY) {
          io.err(`verifying the audit chain: ${entries} entries read\n`);
          lastPlain = entries;
        }
      }
      return page;
    },
  };
  const report = await walkAuditChain(counting, pageSize);
  if (progressShown) io.err('\n');
  return report;
}

/** Which keys verified which entries, e.g. `HMAC-SHA256 with key k1 (seq 11-50)`; legacy entries named as such. */
function verifiedBy(report: AuditChainReport): string {
  const parts: string[] = [];
  if (report.legacy > 0) {
    parts.push(
      `${report.legacy} legacy SHA-256 entries up to seq ${report.legacyUntilSeq} (written before the chain was keyed)`,
    );
  }
  if (report.keys.length > 0) {
    const keys = report.keys.map(
      (k) => `${k.keyId} (seq ${k.fromSeq === k.toSeq ? k.fromSeq : `${k.fromSeq}-${k.toSeq}`})`,
    );
    parts.push(`HMAC-SHA256 with key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}`);
  }
  return parts.join('; ');
}

/** The one line `faceid audit verify` prints. */
export function describeAuditChain(report: AuditChainReport): string {
  const before = verifiedBy(report);
  if (!report.broken) {
    return `audit chain intact: ${report.entries} entries${before ? `; ${before}` : ''}`;
  }
  const { seq, reason, keyId } = report.broken;
  const why = {
    link: 'it does not link to the entry before it (an entry was removed or replaced)',
    hash:
      keyId === null
        ? 'its SHA-256 does not match its content (a legacy entry, changed)'
        : `its HMAC under key ${keyId} does not match its content (changed, or its hash forged)`,
    unkeyed_after_keyed: 'a plain SHA-256 entry after keyed ones (written without the key: a rewritten tail)',
    key_unknown: `it was keyed with key ${keyId}, which is not in the key ring (TEMPLATE_KEYS), so it cannot be checked`,
  }[reason];
  const head = reason === 'key_unknown' ? 'audit chain not verifiable from' : 'audit chain broken at';
  return `${head} entry seq ${seq}: ${why}; entries before it are intact${before ? ` (${before})` : ''}`;
}

const verify: Command = {
  name: 'verify',
  summary: 'Check the audit trail’s hash chain from its first entry.',
  usage: `faceid audit verify

Walks the whole audit trail in order and checks that each entry links to the one before it and that its HMAC
(keyed with a key derived from the key ring: TEMPLATE_KEYS, else the key file) matches its content. Entries
written before the chain was keyed are plain SHA-256 and accepted only before the first keyed one. Prints "audit
chain intact: N entries" and which keys verified which entries (exit 0), or names the first broken entry's seq and
why (exit 1): that entry, or the one before it, was changed or removed. Removing only the newest entries cannot be
seen from the chain alone. The check itself is recorded in the trail (actor "cli").
Works on the service's database: the same FACEID_DATA_DIR / DATABASE_URL as the service.

Options:
  -h, --help    Show this help.
`,
  options: {},
  allowPositionals: false,
  run: async (values: OptionValues, _positionals: string[], io: CommandIo) => {
    const opts = parseOptions(z.object({}), values, io);
    if (typeof opts === 'number') return opts;
    return withAdminStorage(io, async ({ storage, audit }) => {
      const report = await checkAuditChain(storage.repos.audit, io);
      const keyIds = report.keys.map((k) => k.keyId).slice(0, 16);
      await audit.record(CLI_ACTOR, 'audit.verified', {
        clinicId: null,
        detail: report.broken
          ? { intact: false, brokenSeq: report.broken.seq, reason: report.broken.reason }
          : { intact: true, entries: report.entries, legacy: report.legacy, keyIds },
      });
      io.out(describeAuditChain(report));
      return report.broken ? 1 : 0;
    });
  },
};

export const auditGroup: CommandGroup = {
  name: 'audit',
  summary: 'Verify the audit trail’s keyed hash chain (admin, on the service database).',
  subcommands: [verify],
};
