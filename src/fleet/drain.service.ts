import { Inject, Injectable, Logger } from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { AppError } from '../http';

/** POST /sessions while the gateway drains: 503 with Retry-After (a load balancer may retry it on another gateway). */
export class DrainingError extends AppError {
  static override readonly status = { draining: 503 };

  constructor(readonly retryAfterSeconds: number) {
    super(
      'draining',
      'This gateway is stopping and admits no new session: retry shortly (another gateway will take it).',
    );
    this.name = 'DrainingError';
  }
}

export interface DrainResult {
  /** From the start of the drain to the end of the wait, in ms. */
  waitedMs: number;
  /** Work still running when the wait ended (0: everything finished). */
  left: number;
  /** How the wait ended: everything finished, DRAIN_TIMEOUT_S ran out, or a second signal cut it short. */
  ended: 'idle' | 'timeout' | 'cut_short';
}

/** How often the wait looks at the running work. */
const CHECK_MS = 100;

/**
 * The gateway's admission state for a graceful stop. Serving until drain() begins; from then on no new session is
 * admitted (DrainGuard refuses POST /sessions, the transport refuses new identification WebSockets, the readiness
 * check answers 503) while the sessions already running finish, within DRAIN_TIMEOUT_S. What counts as running is
 * registered by the modules that hold it (track()), so this service knows no transport or session.
 */
@Injectable()
export class DrainService {
  private readonly log = new Logger('Drain');
  private readonly work = new Map<string, () => number>();
  private startedAt: number | null = null;
  private cut: (() => void) | null = null;
  private cutRequested = false;
  /** Seconds a refused client should wait (Retry-After): a balancer's health check moves new work away meanwhile. */
  readonly retryAfterSeconds = 2;

  constructor(@Inject(CONFIG) private readonly config: Config) {}

  get draining(): boolean {
    return this.startedAt !== null;
  }

  /** Registers running work to wait for (e.g. `face sessions` -> open identification connections). Returns the undo. */
  track(name: string, count: () => number): () => void {
    this.work.set(name, count);
    return () => {
      if (this.work.get(name) === count) this.work.delete(name);
    };
  }

  /** The running work by name (only names with something running). */
  running(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, count] of this.work) {
      const n = count();
      if (n > 0) out[name] = n;
    }
    return out;
  }

  private total(): number {
    return Object.values(this.running()).reduce((sum, n) => sum + n, 0);
  }

  /** Stops admitting new sessions (idempotent). */
  begin(reason: string): void {
    if (this.startedAt !== null) return;
    this.startedAt = Date.now();
    const running = this.running();
    const what =
      Object.entries(running)
        .map(([name, n]) => `${n} ${name}`)
        .join(', ') || 'nothing';
    this.log.log(
      `Draining (${reason}): no new sessions; waiting up to ${this.config.DRAIN_TIMEOUT_S} s for ${what} running`,
    );
  }

  /** Ends the wait of drain() now (a second signal). */
  cutShort(): void {
    this.cutRequested = true;
    this.cut?.();
  }

  /**
   * begin(), then waits until no tracked work runs, DRAIN_TIMEOUT_S (or `timeoutMs`) has passed, or cutShort() is
   * called. The caller then stops the application.
   */
  async drain(reason: string, timeoutMs = this.config.DRAIN_TIMEOUT_S * 1000): Promise<DrainResult> {
    this.begin(reason);
    const started = this.startedAt!;
    const deadline = started + timeoutMs;
    const ended = await new Promise<DrainResult['ended']>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (how: DrainResult['ended']) => {
        clearTimeout(timer);
        this.cut = null;
        resolve(how);
      };
      this.cut = () => done('cut_short');
      const check = () => {
        if (this.cutRequested) return done('cut_short');
        if (this.total() === 0) return done('idle');
        if (Date.now() >= deadline) return done('timeout');
        timer = setTimeout(check, Math.min(CHECK_MS, Math.max(1, deadline - Date.now())));
      };
      check();
    });
    const result: DrainResult = { waitedMs: Date.now() - started, left: this.total(), ended };
    if (ended === 'idle') {
      this.log.log(`Drained in ${result.waitedMs} ms: every session finished`);
    } else {
      const why =
        ended === 'timeout' ? `DRAIN_TIMEOUT_S (${this.config.DRAIN_TIMEOUT_S} s) ran out` : 'a second signal came';
      this.log.warn(`Drain ended after ${result.waitedMs} ms (${why}): ${result.left} still running, cut off now`);
    }
    return result;
  }
}
