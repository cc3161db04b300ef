import { z } from 'zod';
import { verifyAuditChain, type AuditChainReader } from '../storage/audit-chain';
import { CLI_ACTOR, parseOptions, withAdminStorage } from './admin';
import type { Command, CommandGroup, CommandIo, OptionValues } from './main';

/** Entries read per page while walking the chain. */
export const AUDIT_PAGE_SIZE = 1000;
/** Without a terminal, a progress line every this many entries (a terminal gets one line, rewritten per page). */
const PLAIN_PROGRESS_EVERY = 10_000;

export interface ChainCheck {
  /** Entries read; every entry when the chain is intact. */
  entries: number;
  /** seq of the first broken entry, or null when the chain is intact. */
  brokenSeq: number | null;
}

/**
 * verifyAuditChain() with a count of the entries read and, once the chain is longer than a page, progress on stderr:
 * one line rewritten in place on a terminal, else a line every PLAIN_PROGRESS_EVERY entries.
 */
export async function checkAuditChain(
  reader: AuditChainReader,
  io: Pick<CommandIo, 'err' | 'errIsTTY'>,
  pageSize = AUDIT_PAGE_SIZE,
): Promise<ChainCheck> {
  let entries = 0;
  let progressShown = false;
  let lastPlain = 0;
  const counting: AuditChainReader = {
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
  const brokenSeq = await verifyAuditChain(counting, pageSize);
  if (progressShown) io.err('\n');
  return { entries, brokenSeq };
}

const verify: Command = {
  name: 'verify',
  summary: 'Check the audit trail’s hash chain from its first entry.',
  usage: `faceid audit verify

Walks the whole audit trail in order and checks that each entry links to the one before it and that its hash
matches its content. Prints "audit chain intact: N entries" (exit 0), or names the first broken entry's seq
(exit 1): that entry, or the one before it, was changed or removed. Removing only the newest entries cannot be seen
from the chain alone. The check itself is recorded in the trail (actor "cli").
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
      const { entries, brokenSeq } = await checkAuditChain(storage.repos.audit, io);
      await audit.record(CLI_ACTOR, 'audit.verified', {
        clinicId: null,
        detail: brokenSeq === null ? { intact: true, entries } : { intact: false, brokenSeq },
      });
      if (brokenSeq === null) {
        io.out(`audit chain intact: ${entries} entries`);
        return 0;
      }
      io.out(
        `audit chain broken at entry seq ${brokenSeq}: its link or hash does not match (entries before it are intact)`,
      );
      return 1;
    });
  },
};

export const auditGroup: CommandGroup = {
  name: 'audit',
  summary: 'Verify the audit trail’s hash chain (admin, on the service database).',
  subcommands: [verify],
};
