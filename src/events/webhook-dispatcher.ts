import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { MetricsService } from '../metrics/metrics.service';
import {
  EVENTS,
  WEBHOOKS,
  type EventRepository,
  type StoredEvent,
  type WebhookRepository,
  type WebhookSubscription,
} from '../storage/ports';
import { SIGNALS, type StorageSignals } from '../storage/signals';
import { DestinationPolicy } from './destination';
import { HostResolver } from './host-resolver';
import { signatureHeaders } from './signature';
import { WebhookSecrets } from './webhook-secrets';
import { networkDetail, sendWebhook } from './webhook-transport';

/** Subscriptions delivered to at once by one process. */
const MAX_IN_FLIGHT = 8;
export const USER_AGENT = 'faceid-gateway-webhooks/1';

/**
 * Delay before retrying after `failures` failed attempts in a row (0 for the first retry): full jitter over
 * min(max, base * 2^failures), so many failing subscribers do not retry in step.
 */
export function retryDelayMs(
  failures: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(failures, 40));
  return Math.floor(random() * cap);
}

/**
 * What a failed attempt records for the MIS: a coarse class, never network detail (no error codes, no addresses),
 * so the deliveries list cannot tell an open port from a closed one or map the network behind the gateway.
 *   unreachable          no answer: the name did not resolve, the connection was refused or reset, TLS failed
 *   timeout              no answer within WEBHOOK_TIMEOUT_MS
 *   http_status          an answer that is not 2xx (its status is recorded beside it)
 *   refused_destination  the host is, or resolved to, an address the destination policy refuses; nothing was sent
 *   secret_unreadable    the subscription's secret cannot be decrypted here (a key missing from TEMPLATE_KEYS)
 */
export const DELIVERY_FAILURES = [
  'unreachable',
  'timeout',
  'http_status',
  'refused_destination',
  'secret_unreadable',
] as const;
export type DeliveryFailure = (typeof DELIVERY_FAILURES)[number];

type Outcome = 'idle' | 'delivered' | 'failed' | 'stopped' | 'lost';

/**
 * Delivers each active subscription's events one at a time, in seq order, from its cursor: the next event is always
 * the one after the last delivered, so a failing event is retried (with backoff) and never skipped. Subscriptions are
 * claimed with a lease in the database, so several instances on one PostgreSQL share the work without delivering an
 * event twice at once. Wakes on this process's commits and, with PostgreSQL, on every gateway's (LISTEN/NOTIFY); polls
 * every EVENTS_POLL_MS for what no signal announced; and wakes on the retry times of its own failures.
 */
@Injectable()
export class WebhookDispatcher implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Webhooks');
  /** Lease owner: this process. */
  readonly owner = `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly inFlight = new Map<string, { abort: AbortController; done: Promise<void> }>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private pollTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private unsubscribeResync: (() => void) | undefined;
  private ticking: Promise<void> | null = null;
  private again = false;
  private stopped = true;
  /** Bumped by every commit signal: an idle check that overlapped one looks again. */
  private generation = 0;
  /** Passes begun and completed (see waitForPasses). */
  private passesBegun = 0;
  private passesDone = 0;
  private readonly passWaiters = new Set<{
    after: number;
    left: number;
    resolve: () => void;
    reject: (e: Error) => void;
  }>();
  private readonly destinations: DestinationPolicy;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(WEBHOOKS) private readonly webhooks: WebhookRepository,
    @Inject(EVENTS) private readonly events: EventRepository,
    private readonly secrets: WebhookSecrets,
    private readonly metrics: MetricsService,
    private readonly resolver: HostResolver,
    @Inject(SIGNALS) private readonly signals: StorageSignals,
  ) {
    this.destinations = new DestinationPolicy(config.WEBHOOK_ALLOWED_PRIVATE_HOSTS);
  }

  /** Time a claim holds a subscription: the request's timeout plus room for the database calls around it. */
  private get leaseMs(): number {
    return this.config.WEBHOOK_TIMEOUT_MS * 2 + 2000;
  }

  onApplicationBootstrap(): void {
    this.stopped = false;
    this.unsubscribe = this.signals.onEvents(() => {
      this.generation++;
      this.wake();
    });
    this.unsubscribeResync = this.signals.onResync(() => {
      this.generation++;
      this.wake();
    });
    this.pollTimer = setInterval(() => this.wake(), this.config.EVENTS_POLL_MS);
    this.pollTimer.unref();
    this.wake();
  }

  /** Stops claiming, aborts requests in flight (their leases are released, not counted as failures). */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribeResync?.();
    clearInterval(this.pollTimer);
    for (const t of this.retryTimers.values()) clearTimeout(t);
    this.retryTimers.clear();
    for (const f of this.inFlight.values()) f.abort.abort();
    for (const w of this.passWaiters) w.reject(new Error('The webhook dispatcher stopped.'));
    this.passWaiters.clear();
    await this.ticking;
    await Promise.allSettled([...this.inFlight.values()].map((f) => f.done));
  }

  /** Looks for due subscriptions now (new events, a resumed subscription). */
  wake(): void {
    if (this.stopped) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = this.tick().finally(() => {
      this.ticking = null;
    });
  }

  /** Subscriptions this process is delivering to now (for tests and metrics). */
  get busy(): number {
    return this.inFlight.size;
  }

  /** Complete passes so far (see waitForPasses). */
  get passes(): number {
    return this.passesDone;
  }

  /**
   * Resolves once `n` passes that begin after this call are complete. A complete pass claimed every subscription
   * due at its start (fewer than it had room for, so none was left over) and then waited until every delivery step
   * in flight had settled. So a subscription that got nothing across one had nothing due: tests wait for this
   * instead of a fixed time. Wakes the dispatcher (no waiting for the poll); rejects if it stops first.
   */
  waitForPasses(n = 1): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('The webhook dispatcher is not running.'));
    return new Promise<void>((resolve, reject) => {
      this.passWaiters.add({ after: this.passesBegun, left: n, resolve, reject });
      this.wake();
    });
  }

  private passComplete(pass: number): void {
    this.passesDone++;
    for (const w of this.passWaiters) {
      if (pass > w.after && --w.left <= 0) {
        this.passWaiters.delete(w);
        w.resolve();
      }
    }
    if (this.passWaiters.size > 0) this.wake(); // someone waits for more passes: do not wait for the poll
  }

  private async tick(): Promise<void> {
    do {
      this.again = false;
      const free = MAX_IN_FLIGHT - this.inFlight.size;
      if (free <= 0) return; // a finishing delivery wakes us again
      const pass = ++this.passesBegun;
      const now = Date.now();
      let claimed: WebhookSubscription[];
      try {
        claimed = await this.webhooks.claimDue(new Date(now), this.owner, new Date(now + this.leaseMs), free);
      } catch (err) {
        this.logger.warn(`Claiming due webhooks failed: ${(err as Error).message}`);
        return; // the next poll tries again
      }
      for (const sub of claimed) {
        if (this.stopped) {
          await this.webhooks.release(sub.id, this.owner, new Date()).catch(() => undefined);
        } else if (!this.inFlight.has(sub.id)) {
          this.start(sub);
        }
      }
      if (claimed.length < free) {
        // Nothing due was left unclaimed: the pass is complete once every delivery step running now has settled.
        const steps = [...this.inFlight.values()].map((f) => f.done);
        void Promise.allSettled(steps).then(() => this.passComplete(pass));
      }
    } while (this.again && !this.stopped);
  }

  private start(sub: WebhookSubscription): void {
    const abort = new AbortController();
    const generation = this.generation;
    const done = this.deliverNext(sub, abort.signal)
      .catch((err: unknown): Outcome => {
        this.logger.error(`Webhook ${sub.id}: delivery step failed: ${(err as Error)?.message ?? String(err)}`);
        return 'lost'; // the lease runs out and another pass retries
      })
      .then((outcome) => {
        this.inFlight.delete(sub.id);
        // Delivered: go straight on to the next event. Idle: look again only if events came in meanwhile.
        if (outcome === 'delivered' || (outcome === 'idle' && generation !== this.generation)) this.wake();
        else if (this.inFlight.size === MAX_IN_FLIGHT - 1) this.wake(); // a slot freed up for waiting work
      });
    this.inFlight.set(sub.id, { abort, done });
  }

  /** One step for a claimed subscription: deliver the event after its cursor, or release it if there is none. */
  private async deliverNext(sub: WebhookSubscription, stop: AbortSignal): Promise<Outcome> {
    const [event] = await this.events.after(sub.clinicId, sub.cursorSeq, 1);
    if (!event) {
      await this.webhooks.release(sub.id, this.owner, new Date());
      return 'idle';
    }
    const attempt = await this.post(sub, event, stop);
    if (attempt === 'stopped') {
      await this.webhooks.release(sub.id, this.owner, new Date());
      return 'stopped';
    }
    const delivered = attempt.error === null;
    const failures = delivered ? 0 : sub.failures + 1;
    const dead = !delivered && failures >= this.config.WEBHOOK_MAX_ATTEMPTS;
    const { WEBHOOK_RETRY_BASE_MS: base, WEBHOOK_RETRY_MAX_MS: max } = this.config;
    const nextAttemptAt = new Date(Date.now() + (delivered ? 0 : retryDelayMs(sub.failures, base, max)));
    const recorded = await this.webhooks.recordAttempt({
      owner: this.owner,
      fromCursorSeq: sub.cursorSeq,
      delivery: {
        clinicId: sub.clinicId,
        subscriptionId: sub.id,
        eventId: event.id,
        eventSeq: event.seq,
        attempt: sub.failures + 1,
        outcome: delivered ? 'delivered' : 'failed',
        status: attempt.status,
        error: attempt.error,
        durationMs: attempt.durationMs,
      },
      nextAttemptAt,
      dead,
    });
    this.metrics.webhookAttempt(delivered ? 'delivered' : 'failed', attempt.durationMs / 1000);
    if (!recorded) return 'lost'; // the lease ran out (or the subscription was deleted) meanwhile
    if (dead) this.metrics.webhookDead();
    if (dead) {
      this.logger.warn(
        `Webhook ${sub.id} is dead after ${failures} failed attempts at event seq ${event.seq}; resume it to go on`,
      );
    } else if (!delivered) {
      this.retryAt(sub.id, nextAttemptAt);
    }
    return delivered ? 'delivered' : 'failed';
  }

  /**
   * POSTs the event, signed, to an address the destination policy allows (checked again at every attempt: the
   * name may resolve elsewhere now, and the policy may have changed since registration). Never reads the response
   * body. The record gets a coarse failure class; the detail goes to the operator's log only.
   */
  private async post(
    sub: WebhookSubscription,
    event: StoredEvent,
    stop: AbortSignal,
  ): Promise<{ status: number | null; error: DeliveryFailure | null; durationMs: number } | 'stopped'> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const body = JSON.stringify(event.payload);
    let headers: Record<string, string>;
    try {
      const key = this.secrets.open(sub);
      try {
        headers = signatureHeaders(key, event.id, body);
      } finally {
        key.fill(0);
      }
    } catch (err) {
      this.logger.error(
        `Webhook ${sub.id}: its secret cannot be decrypted (${(err as { code?: string }).code ?? 'error'})`,
      );
      return { status: null, error: 'secret_unreadable', durationMs: elapsed() };
    }
    const timeout = AbortSignal.timeout(this.config.WEBHOOK_TIMEOUT_MS);
    try {
      const sent = await sendWebhook(
        new URL(sub.url),
        { headers: { ...headers, 'content-type': 'application/json', 'user-agent': USER_AGENT }, body },
        { policy: this.destinations, resolver: this.resolver },
        AbortSignal.any([stop, timeout]),
      );
      if (sent.kind === 'refused') {
        this.logger.warn(
          `Webhook ${sub.id}: destination refused (${sent.refusal.rule}); nothing sent. ${sent.refusal.message}`,
        );
        return { status: null, error: 'refused_destination', durationMs: elapsed() };
      }
      if (sent.kind === 'failed') {
        this.logger.debug(`Webhook ${sub.id}: attempt failed (${sent.detail})`);
        return { status: null, error: 'unreachable', durationMs: elapsed() };
      }
      const ok = sent.status >= 200 && sent.status < 300;
      return { status: sent.status, error: ok ? null : 'http_status', durationMs: elapsed() };
    } catch (err) {
      if (stop.aborted) return 'stopped';
      if (timeout.aborted) return { status: null, error: 'timeout', durationMs: elapsed() };
      this.logger.warn(`Webhook ${sub.id}: attempt failed unexpectedly (${networkDetail(err)})`);
      return { status: null, error: 'unreachable', durationMs: elapsed() };
    }
  }

  /** Wakes when a failed subscription is due again (sooner than the next poll when retries are short). */
  private retryAt(id: string, at: Date): void {
    clearTimeout(this.retryTimers.get(id));
    const timer = setTimeout(
      () => {
        this.retryTimers.delete(id);
        this.wake();
      },
      Math.max(0, at.getTime() - Date.now()),
    );
    timer.unref();
    this.retryTimers.set(id, timer);
  }
}
