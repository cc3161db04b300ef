import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { AuditService } from '../audit';
import { CONFIG, type Config } from '../config';
import { SESSIONS, VERDICTS, type SessionRepository, type VerdictRepository } from '../storage/ports';

export interface SessionSweepOptions {
  /** How often the sweep runs (default 5000 ms). */
  intervalMs?: number;
}

/** DI token for SessionSweepOptions (optional). */
export const SESSION_SWEEP_OPTIONS = Symbol('SessionSweepOptions');

const DEFAULT_INTERVAL_MS = 5000;
/** Sessions finished per run; the next run takes the rest. */
const BATCH = 100;
/** Beyond the longest a face session can last, so a slow instance still finishing one is never pre-empted. */
const MARGIN_MS = 60_000;

/**
 * Ends the sessions nobody can finish any more with the verdict `expired` (method `none`), so every session ends
 * with an MIS event: tokens never used, face sessions whose process died, codes past their expiry. Safe with
 * several instances: finishing is conditional, a session ends once.
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
    const staleBefore = new Date(
      now.getTime() - (this.config.SESSION_TOKEN_TTL_S * 1000 + this.config.SESSION_TIMEOUT_MS + MARGIN_MS),
    );
    const stale = await this.sessions.stale(now, staleBefore, BATCH);
    let finished = 0;
    for (const s of stale) {
      try {
        const verdict = await this.verdicts.finish({
          clinicId: s.clinicId,
          sessionId: s.id,
          result: 'expired',
          method: 'none',
          score: null,
          liveness: null,
          timings: null,
        });
        if (!verdict) continue; // finished meanwhile (a verdict, or another instance's sweep)
        finished++;
        await this.audit.record('system', 'session.expired', {
          clinicId: s.clinicId,
          subject: s.id,
          detail: { state: s.state, channel: s.channel },
        });
      } catch (err) {
        this.log.error(`Could not expire session ${s.id}: ${(err as Error).message}`);
      }
    }
    if (finished > 0) this.log.log(`Expired ${finished} stale session(s)`);
    return finished;
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
