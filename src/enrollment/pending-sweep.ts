import { Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { EnrollmentService } from './enrollment.service';

/** How often expired replacement requests are closed and their pending references wiped. */
const INTERVAL_MS = 5000;

/**
 * Wipes the pending references of workstation replacements nobody confirmed in time (CODE_TTL_S): the sealed
 * template is removed from the database as soon as its code expires, not when somebody next looks at it. Safe with
 * several instances: closing a request is conditional, so each is closed once.
 */
@Injectable()
export class PendingEnrollmentSweep implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('EnrollmentSweep');
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly enrollment: EnrollmentService) {}

  onApplicationBootstrap(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), INTERVAL_MS);
    this.timer.unref(); // never what keeps the process alive
  }

  /** Stops the timer and waits for a run in progress, before the database closes. */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  private tick(): void {
    if (this.running) return;
    this.running = this.enrollment
      .expirePending()
      .then(
        () => undefined,
        (err: Error) => this.log.warn(`Closing expired enrollment confirmations failed: ${err.message}`),
      )
      .finally(() => {
        this.running = null;
      });
  }
}
