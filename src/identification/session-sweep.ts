import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { AuditService } from '../audit';
import { outcomeBins } from '../calibration/bins';
import { CONFIG, type Config } from '../config';
import {
  SESSIONS,
  VERDICTS,
  type IdentificationSession,
  type SessionRepository,
  type SessionState,
  type VerdictRepository,
} from '../storage/ports';

export interface SessionSweepOptions {
  /** How often the sweep runs (default 5000 ms). */
  intervalMs?: number;
}

/** DI token for SessionSweepOptions (optional). */
export const SESSION_SWEEP_OPTIONS = Symbol('SessionSweepOptions');

const DEFAULT_INTERVAL_MS = 5000;
/** Sessions finished per run; the next run takes the rest. */
const BATCH = 100;

/**
 * Ends the sessions nobody can finish any more with the verdict `expired` (method `none`), so every session ends
 * with an MIS event: tokens never used, face sessions whose process died, codes past their expiry. Safe with
 * several instances: finishing is conditional, a session ends once. The identification gateway ends a face session
 * whose connection dropped before its verdict the same way, at once (`expire`).
 */
@Injectable()
export class SessionSweep implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('SessionSweep');
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(SESSIONS) private readonly sessions: SessionRepository,
    @Inject(VERDICTS) private readonly verdicts: VerdictRepository,
    private readonly audit: AuditService,
    @Optional() @Inject(SESSION_SWEEP_OPTIONS) options?: SessionSweepOptions,
  ) {
    this.intervalMs = options?.intervalMs ?? DEFAULT_INTERVAL_MS;
  }

  onApplicationBootstrap(): void {
    this.start();
  }

  /** Stops the timer and waits for a run in progress, before the database closes. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref(); // never what keeps the process alive
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One run: finishes up to BATCH stale sessions as `expired`. Returns how many it finished. */
  async sweepOnce(now: Date = new Date()): Promise<number> {
    // A face session runs at most SESSION_TIMEOUT_MS from its admission (tokenUsedAt); one still connected
    // SESSION_ORPHAN_GRACE_S later lost its gateway process (killed, crashed, cut off). The grace keeps a slow
    // gateway still storing its verdict from being pre-empted, and absorbs clock differences between hosts.
    const staleBefore = new Date(
      now.getTime() - (this.config.SESSION_TIMEOUT_MS + this.config.SESSION_ORPHAN_GRACE_S * 1000),
    );
    const stale = await this.sessions.stale(now, staleBefore, BATCH);
    let finished = 0;
    for (const s of stale) {
      try {
        // False: finished meanwhile (a verdict, or another instance's sweep).
        if (await this.expire(s, { state: s.state, channel: s.channel })) finished++;
      } catch (err) {
        this.log.error(`Could not expire session ${s.id}: ${(err as Error).message}`);
      }
    }
    if (finished > 0) this.log.log(`Expired ${finished} stale session(s)`);
    return finished;
  }

  /**
   * Ends one session with the verdict `expired` (method `none`): its MIS event and its audit entry in the same
   * transaction. `from` narrows the states it may end from (default: any unfinished one). False when the session
   * was already finished, or is in none of those states.
   */
  async expire(
    s: Pick<IdentificationSession, 'id' | 'clinicId'>,
    detail: Record<string, unknown>,
    from?: readonly SessionState[],
  ): Promise<boolean> {
    const verdict = await this.verdicts.finish(
      {
        clinicId: s.clinicId,
        sessionId: s.id,
        result: 'expired',
        method: 'none',
        score: null,
        liveness: null,
        timings: null,
      },
      {
        ...(from ? { from } : {}),
        calibration: outcomeBins('none', 'expired'),
        audit: this.audit.entry('system', 'session.expired', { clinicId: s.clinicId, subject: s.id, detail }),
      },
    );
    return verdict !== null;
  }

  private tick(): void {
    if (this.running) return; // the previous run is still going
    this.running = this.sweepOnce()
      .then(() => undefined)
      .catch((err: unknown) => this.log.error(`Session sweep failed: ${(err as Error).message}`))
      .finally(() => {
        this.running = null;
      });
  }
}
