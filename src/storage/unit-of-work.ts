import type { Db, Tx } from './db';
import type { NewAuditEntry, UnitOfWork, Work } from './ports';
import { appendAuditEntry, type AuditChainWriter } from './repositories/audit';
import { markCodeUsed } from './repositories/codes';
import type { EventSignal } from './repositories/events';
import { finishVerdict } from './repositories/sessions';

/**
 * One transaction as the repositories see it: the Prisma transaction client, plus what is to happen at its end.
 * Audit entries queued with audit() are appended just before the commit, after every other write of the unit, so
 * the chain's lock (the write lock on SQLite, an advisory lock on PostgreSQL) is always taken last and held only
 * until the commit. The clinics named with eventsWritten() get their in-process signal once it committed.
 */
export class TxScope {
  private readonly audits: NewAuditEntry[] = [];
  private readonly clinics = new Set<string>();

  constructor(readonly tx: Tx) {}

  /** Appends the entry to the audit chain at the end of this transaction (in the order queued). */
  audit(entry: NewAuditEntry): void {
    this.audits.push(entry);
  }

  /** This transaction wrote events of the clinic: its readers in this process are told after the commit. */
  eventsWritten(clinicId: string): void {
    this.clinics.add(clinicId);
  }

  /** @internal transaction() only. */
  async flush(chain: AuditChainWriter): Promise<void> {
    for (const entry of this.audits.splice(0)) await appendAuditEntry(this.tx, chain, entry);
  }

  /** @internal transaction() only. */
  committed(signal: EventSignal): void {
    for (const clinicId of this.clinics) signal.emit(clinicId);
  }
}

/**
 * Storage's transactions that write events or audit entries, for the repositories and for the services' units of
 * work alike: Db.tx() (BEGIN IMMEDIATE on SQLite; on PostgreSQL the locks each write takes), the queued audit entries
 * appended last, and the event signals sent once it committed. A rejected `fn` rolls everything back and sends
 * nothing. (A transaction that writes neither, e.g. a settings change, may use Db.tx() alone: the same transaction.)
 */
export class Transactions implements UnitOfWork {
  constructor(
    private readonly db: Db,
    private readonly chain: AuditChainWriter,
    private readonly signal: EventSignal,
  ) {}

  /** Calls `listener(clinicId)` after every commit that wrote events of the clinic. Returns the unsubscribe function. */
  onCommitted(listener: (clinicId: string) => void): () => void {
    return this.signal.on(listener);
  }

  async transaction<T>(fn: (scope: TxScope) => Promise<T>): Promise<T> {
    const { value, scope } = await this.db.tx(async (tx) => {
      const scope = new TxScope(tx);
      const value = await fn(scope);
      await scope.flush(this.chain);
      return { value, scope };
    });
    scope.committed(this.signal);
    return value;
  }

  run<T>(fn: (work: Work) => Promise<T>): Promise<T> {
    return this.transaction((scope) => fn(this.work(scope)));
  }

  /** The repositories' operations, bound to one transaction. */
  private work(scope: TxScope): Work {
    return {
      codes: { markUsed: (id, maxAttempts, now) => markCodeUsed(scope.tx, id, maxAttempts, now) },
      verdicts: { finish: (input, options) => finishVerdict(scope, input, options) },
    };
  }
}
