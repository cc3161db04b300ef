import { Inject, Injectable } from '@nestjs/common';
import type { MisPrincipal } from '../auth';
import { AuditService } from '../audit';
import { CONFIG, type Config } from '../config';
import { WEBHOOKS, type WebhookDelivery, type WebhookRepository, type WebhookSubscription } from '../storage/ports';
import { DestinationPolicy } from './destination';
import { EventsError } from './errors';
import { EventFeed } from './event-feed';
import { generateWebhookSecret, secretKey } from './signature';
import { WebhookDispatcher } from './webhook-dispatcher';
import { WebhookSecrets } from './webhook-secrets';

/** Subscriptions per clinic: an MIS needs one or two; many would only multiply the delivery work. */
export const MAX_WEBHOOKS_PER_CLINIC = 20;

/** A subscription as the API shows it (never its secret). */
export interface WebhookView {
  id: string;
  url: string;
  state: WebhookSubscription['state'];
  /** The id of the last event delivered (null before the first): delivery goes on with the event after it. */
  cursor: string | null;
  cursorSeq: number;
  failures: number;
  nextAttemptAt: string;
  createdAt: string;
  deadAt: string | null;
}

export interface DeliveryView {
  id: string;
  eventId: string;
  eventSeq: number;
  attempt: number;
  outcome: WebhookDelivery['outcome'];
  status: number | null;
  error: string | null;
  durationMs: number;
  createdAt: string;
}

/** Where webhooks may be sent: plain http allowed or not, the allowed hosts (empty: any), the destination policy. */
export interface WebhookUrlPolicy {
  allowHttp: boolean;
  /** Host names, or `*.domain` for its subdomains, lower case. */
  allowedHosts: readonly string[];
  /** Non-public addresses and local names (default: all refused; WEBHOOK_ALLOWED_PRIVATE_HOSTS lifts them). */
  destinations?: DestinationPolicy;
}

/** Whether a URL's host is in the list: an exact name, or a subdomain of a `*.domain` entry. */
export function hostAllowed(host: string, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  const h = host.toLowerCase().replace(/\.$/, '');
  return allowed.some((a) => (a.startsWith('*.') ? h.endsWith(a.slice(1)) && h.length > a.length - 1 : h === a));
}

/**
 * Checks a webhook URL: absolute http(s), `https` only unless WEBHOOK_ALLOW_HTTP, a host that WEBHOOK_ALLOWED_HOSTS
 * lists (when set: the gateway will not post to arbitrary addresses of the hospital network), no credentials in it
 * (they would show in listings and logs; the signature authenticates us), and a host that is not a loopback,
 * private, link-local or other non-public address in any spelling (400 `webhook_destination_refused` with the
 * `rule`), unless WEBHOOK_ALLOWED_PRIVATE_HOSTS lists it. A name is checked again, resolved, at every delivery.
 * Returns the normalised URL.
 */
export function checkWebhookUrl(raw: string, policy: WebhookUrlPolicy): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new EventsError('webhook_url_invalid', 'The webhook URL is not an absolute URL.');
  }
  if (url.protocol !== 'https:' && !(policy.allowHttp && url.protocol === 'http:')) {
    throw new EventsError(
      'webhook_url_invalid',
      policy.allowHttp
        ? 'The webhook URL must be http or https.'
        : 'The webhook URL must be https (plain http is refused).',
    );
  }
  if (url.username || url.password) {
    throw new EventsError('webhook_url_invalid', 'The webhook URL must not contain credentials.');
  }
  if (!hostAllowed(url.hostname, policy.allowedHosts)) {
    throw new EventsError('webhook_url_invalid', "The webhook URL's host is not in WEBHOOK_ALLOWED_HOSTS.");
  }
  const refused = (policy.destinations ?? new DestinationPolicy()).checkHost(url.hostname);
  if (refused) throw new EventsError('webhook_destination_refused', refused.message, { rule: refused.rule });
  url.hash = '';
  return url.href;
}

/** Webhook subscriptions of a clinic's MIS: policy and shaping; delivery is the dispatcher's. */
@Injectable()
export class WebhooksService {
  private readonly destinations: DestinationPolicy;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(WEBHOOKS) private readonly webhooks: WebhookRepository,
    private readonly feed: EventFeed,
    private readonly secrets: WebhookSecrets,
    private readonly audit: AuditService,
    private readonly dispatcher: WebhookDispatcher,
  ) {
    this.destinations = new DestinationPolicy(config.WEBHOOK_ALLOWED_PRIVATE_HOSTS);
  }

  /**
   * A new subscription and its signing secret (returned this once; stored encrypted). It starts after the clinic's
   * latest event, or with `fromEventId` included.
   */
  async create(
    caller: MisPrincipal,
    input: { url: string; fromEventId?: string },
  ): Promise<{ view: WebhookView; secret: string }> {
    const url = checkWebhookUrl(input.url, {
      allowHttp: this.config.WEBHOOK_ALLOW_HTTP,
      allowedHosts: this.config.WEBHOOK_ALLOWED_HOSTS,
      destinations: this.destinations,
    });
    if ((await this.webhooks.list(caller.clinicId)).length >= MAX_WEBHOOKS_PER_CLINIC) {
      throw new EventsError(
        'webhook_limit_reached',
        `A clinic has at most ${MAX_WEBHOOKS_PER_CLINIC} webhooks; delete one first.`,
      );
    }
    const cursorSeq = input.fromEventId
      ? (await this.eventSeq(caller.clinicId, input.fromEventId)) - 1
      : await this.feed.latestSeq(caller.clinicId);
    const secret = generateWebhookSecret();
    const key = secretKey(secret);
    let sub: WebhookSubscription;
    try {
      sub = await this.webhooks.create({
        clinicId: caller.clinicId,
        url,
        secret: this.secrets.seal(caller.clinicId, url, key),
        cursorSeq,
      });
    } finally {
      key.fill(0);
    }
    await this.record(caller, 'webhook.created', sub.id, { cursorSeq });
    this.dispatcher.wake();
    return { view: await this.view(sub), secret };
  }

  async list(clinicId: string): Promise<WebhookView[]> {
    return Promise.all((await this.webhooks.list(clinicId)).map((s) => this.view(s)));
  }

  async get(clinicId: string, id: string): Promise<WebhookView> {
    return this.view(await this.found(this.webhooks.get(clinicId, id)));
  }

  async remove(caller: MisPrincipal, id: string): Promise<void> {
    if (!(await this.webhooks.remove(caller.clinicId, id))) throw notFound();
    await this.record(caller, 'webhook.deleted', id);
  }

  async pause(caller: MisPrincipal, id: string): Promise<WebhookView> {
    const sub = await this.found(this.webhooks.pause(caller.clinicId, id));
    await this.record(caller, 'webhook.paused', id);
    return this.view(sub);
  }

  /** Active again from where it stopped (a dead or paused subscriber keeps its cursor), due at once. */
  async resume(caller: MisPrincipal, id: string): Promise<WebhookView> {
    const sub = await this.found(this.webhooks.resume(caller.clinicId, id));
    await this.record(caller, 'webhook.resumed', id, { cursorSeq: sub.cursorSeq });
    this.dispatcher.wake();
    return this.view(sub);
  }

  /** Delivers again from `fromEventId` on (that event included), then everything after it; resumes the subscription. */
  async replay(caller: MisPrincipal, id: string, fromEventId: string): Promise<WebhookView> {
    await this.found(this.webhooks.get(caller.clinicId, id));
    const cursorSeq = (await this.eventSeq(caller.clinicId, fromEventId)) - 1;
    const sub = await this.found(this.webhooks.resume(caller.clinicId, id, cursorSeq));
    await this.record(caller, 'webhook.replayed', id, { cursorSeq });
    this.dispatcher.wake();
    return this.view(sub);
  }

  async deliveries(clinicId: string, id: string, limit: number): Promise<DeliveryView[]> {
    await this.found(this.webhooks.get(clinicId, id));
    return (await this.webhooks.deliveries(clinicId, id, limit)).map((d) => ({
      id: d.id,
      eventId: d.eventId,
      eventSeq: d.eventSeq,
      attempt: d.attempt,
      outcome: d.outcome,
      status: d.status,
      error: d.error,
      durationMs: d.durationMs,
      createdAt: d.createdAt.toISOString(),
    }));
  }

  private async eventSeq(clinicId: string, eventId: string): Promise<number> {
    try {
      return await this.feed.seqOf(clinicId, eventId);
    } catch (err) {
      if ((err as { code?: unknown }).code === 'cursor_unknown') {
        throw new EventsError('event_not_found', 'No event with this id in your clinic.');
      }
      throw err;
    }
  }

  private async found(p: Promise<WebhookSubscription | null>): Promise<WebhookSubscription> {
    const sub = await p;
    if (!sub) throw notFound();
    return sub;
  }

  private async view(s: WebhookSubscription): Promise<WebhookView> {
    return {
      id: s.id,
      url: s.url,
      state: s.state,
      cursor: await this.feed.idAt(s.clinicId, s.cursorSeq),
      cursorSeq: s.cursorSeq,
      failures: s.failures,
      nextAttemptAt: s.nextAttemptAt.toISOString(),
      createdAt: s.createdAt.toISOString(),
      deadAt: s.deadAt?.toISOString() ?? null,
    };
  }

  private async record(
    caller: MisPrincipal,
    action: string,
    id: string,
    detail?: Record<string, unknown>,
  ): Promise<void> {
    await this.audit.record(`mis:${caller.misClientId}`, action, { clinicId: caller.clinicId, subject: id, detail });
  }
}

function notFound(): EventsError {
  return new EventsError('webhook_not_found', 'No such webhook in your clinic.');
}
