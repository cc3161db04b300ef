import { randomUUID } from 'node:crypto';
import type { Db } from '../db';
import type { WebhookDelivery, WebhookRepository, WebhookSubscription } from '../ports';
import { toDelivery, toWebhook } from './map';

export class PrismaWebhookRepository implements WebhookRepository {
  constructor(private readonly db: Db) {}

  create(input: Parameters<WebhookRepository['create']>[0]): Promise<WebhookSubscription> {
    return this.db.run(async (c) => {
      const now = new Date();
      return toWebhook(
        await c.webhookSubscription.create({
          data: {
            id: randomUUID(),
            clinicId: input.clinicId,
            url: input.url,
            secretKeyId: input.secret.keyId,
            secretIv: new Uint8Array(input.secret.iv),
            secretCiphertext: new Uint8Array(input.secret.ciphertext),
            secretTag: new Uint8Array(input.secret.tag),
            state: 'active',
            cursorSeq: input.cursorSeq,
            nextAttemptAt: now,
            createdAt: now,
          },
        }),
      );
    });
  }

  get(clinicId: string, id: string): Promise<WebhookSubscription | null> {
    return this.db.run(async (c) => {
      const row = await c.webhookSubscription.findFirst({ where: { id, clinicId } });
      return row && toWebhook(row);
    });
  }

  list(clinicId: string): Promise<WebhookSubscription[]> {
    return this.db.run(async (c) =>
      (await c.webhookSubscription.findMany({ where: { clinicId }, orderBy: { createdAt: 'asc' } })).map(toWebhook),
    );
  }

  remove(clinicId: string, id: string): Promise<boolean> {
    return this.db.run(async (c) => (await c.webhookSubscription.deleteMany({ where: { id, clinicId } })).count === 1);
  }

  /**
   * Ids with undelivered events first (one join, no dates, so the same SQL runs on both databases), then the due
   * ones among them, then one conditional update each: a subscription another instance claimed meanwhile is skipped.
   */
  claimDue(now: Date, owner: string, leaseUntil: Date, limit: number): Promise<WebhookSubscription[]> {
    return this.db.run(async (c) => {
      const pending = await c.$queryRaw<{ id: string }[]>`
        SELECT s."id" FROM "WebhookSubscription" s JOIN "Clinic" c ON c."id" = s."clinicId"
        WHERE s."state" = 'active' AND c."eventSeq" > s."cursorSeq"`;
      if (pending.length === 0) return [];
      const free = { OR: [{ leaseUntil: null }, { leaseUntil: { lt: now } }] };
      const candidates = await c.webhookSubscription.findMany({
        where: { id: { in: pending.map((p) => p.id) }, state: 'active', nextAttemptAt: { lte: now }, ...free },
        orderBy: { nextAttemptAt: 'asc' },
        take: limit,
        select: { id: true },
      });
      const claimed: WebhookSubscription[] = [];
      for (const { id } of candidates) {
        const { count } = await c.webhookSubscription.updateMany({
          where: { id, state: 'active', ...free },
          data: { leaseOwner: owner, leaseUntil },
        });
        if (count === 1) claimed.push(toWebhook(await c.webhookSubscription.findUniqueOrThrow({ where: { id } })));
      }
      return claimed;
    });
  }

  recordAttempt(input: Parameters<WebhookRepository['recordAttempt']>[0]): Promise<boolean> {
    const d = input.delivery;
    return this.db.tx(async (tx) => {
      const now = new Date();
      const delivered = d.outcome === 'delivered';
      const mine = { id: d.subscriptionId, clinicId: d.clinicId, leaseOwner: input.owner };
      const released = { leaseOwner: null, leaseUntil: null };
      const { count } = await tx.webhookSubscription.updateMany({
        where: { ...mine, cursorSeq: input.fromCursorSeq, ...(delivered ? {} : { state: 'active' }) },
        data: delivered
          ? { cursorSeq: d.eventSeq, failures: 0, nextAttemptAt: input.nextAttemptAt, ...released }
          : {
              failures: { increment: 1 },
              nextAttemptAt: input.nextAttemptAt,
              ...released,
              ...(input.dead ? { state: 'dead', deadAt: now } : {}),
            },
      });
      // Replayed, resumed or paused while in flight: the operator's change stands; only the attempt is recorded.
      if (count !== 1 && (await tx.webhookSubscription.updateMany({ where: mine, data: released })).count !== 1) {
        return false;
      }
      await tx.webhookDelivery.create({ data: { ...d, id: randomUUID(), createdAt: now } });
      return true;
    });
  }

  async release(id: string, owner: string, nextAttemptAt: Date): Promise<void> {
    await this.db.run((c) =>
      c.webhookSubscription.updateMany({
        where: { id, leaseOwner: owner },
        data: { leaseOwner: null, leaseUntil: null, nextAttemptAt },
      }),
    );
  }

  resume(clinicId: string, id: string, cursorSeq?: number): Promise<WebhookSubscription | null> {
    return this.setState(clinicId, id, {
      state: 'active',
      failures: 0,
      deadAt: null,
      nextAttemptAt: new Date(),
      ...(cursorSeq === undefined ? {} : { cursorSeq }),
    });
  }

  pause(clinicId: string, id: string): Promise<WebhookSubscription | null> {
    return this.setState(clinicId, id, { state: 'paused' });
  }

  deliveries(clinicId: string, subscriptionId: string, limit: number): Promise<WebhookDelivery[]> {
    return this.db.run(async (c) =>
      (
        await c.webhookDelivery.findMany({
          where: { clinicId, subscriptionId },
          orderBy: { createdAt: 'desc' },
          take: limit,
        })
      ).map(toDelivery),
    );
  }

  private setState(
    clinicId: string,
    id: string,
    data: { state: string; failures?: number; deadAt?: null; nextAttemptAt?: Date; cursorSeq?: number },
  ): Promise<WebhookSubscription | null> {
    return this.db.run(async (c) => {
      const { count } = await c.webhookSubscription.updateMany({ where: { id, clinicId }, data });
      if (count !== 1) return null;
      return toWebhook(await c.webhookSubscription.findUniqueOrThrow({ where: { id } }));
    });
  }
}
