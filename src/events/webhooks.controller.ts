import { Controller, Delete, Get, Post } from '@nestjs/common';
import { z } from 'zod';
import { MisCaller, MisKeyAuth, type MisPrincipal } from '../auth';
import { ApiRoute, defineRoute, Input, type RouteInput } from '../http';
import { WebhooksService } from './webhooks.service';

const Webhook = z
  .object({
    id: z.string(),
    url: z.string(),
    state: z.enum(['active', 'paused', 'dead']).meta({
      description: '`dead` after WEBHOOK_MAX_ATTEMPTS failures in a row: it keeps its place; resume it to go on.',
    }),
    cursor: z
      .string()
      .nullable()
      .meta({ description: 'The id of the last event delivered (null before the first); delivery goes on after it.' }),
    cursorSeq: z.number().int(),
    failures: z.number().int().meta({ description: 'Failed attempts in a row at the next event.' }),
    nextAttemptAt: z.string(),
    createdAt: z.string(),
    deadAt: z.string().nullable(),
  })
  .meta({ id: 'Webhook' });

const IdParams = z.object({ id: z.uuid() });
const EventId = z.uuid();

const createSpec = defineRoute({
  summary: 'Subscribe a webhook',
  description:
    'Events of your clinic are POSTed to `url` one at a time, in order, signed as Standard Webhooks do (headers ' +
    '`webhook-id`, `webhook-timestamp`, `webhook-signature`). The `secret` is shown only in this answer. Delivery ' +
    'starts after the clinic’s latest event, or at `fromEventId`. `https` URLs only, unless the service allows http. ' +
    'Loopback, private, link-local and other non-public destinations are refused (`webhook_destination_refused`, ' +
    'with the `rule`), here and at every delivery, unless the operator allows the host.',
  tags: ['webhooks'],
  body: z.object({
    url: z.string().min(1).max(2048),
    fromEventId: EventId.optional().meta({
      description: 'Start with this event (included) instead of new events only.',
    }),
  }),
  response: Webhook.extend({
    secret: z.string().meta({ description: '`whsec_` + base64 of 32 bytes: the HMAC-SHA256 key. Shown once.' }),
  }),
  status: 201,
  errors: ['webhook_url_invalid', 'webhook_destination_refused', 'event_not_found', 'webhook_limit_reached'],
});

const listSpec = defineRoute({
  summary: 'Your clinic’s webhooks',
  tags: ['webhooks'],
  response: z.object({ webhooks: z.array(Webhook) }),
});

const getSpec = defineRoute({
  summary: 'A webhook',
  tags: ['webhooks'],
  params: IdParams,
  response: Webhook,
  errors: ['webhook_not_found'],
});

const deleteSpec = defineRoute({
  summary: 'Delete a webhook (and its delivery records)',
  tags: ['webhooks'],
  params: IdParams,
  response: null,
  errors: ['webhook_not_found'],
});

const pauseSpec = defineRoute({
  summary: 'Pause deliveries',
  tags: ['webhooks'],
  params: IdParams,
  response: Webhook,
  status: 200,
  errors: ['webhook_not_found'],
});

const resumeSpec = defineRoute({
  summary: 'Resume a paused or dead webhook from its cursor',
  description: 'The failure count is reset and the next event is delivered at once.',
  tags: ['webhooks'],
  params: IdParams,
  response: Webhook,
  status: 200,
  errors: ['webhook_not_found'],
});

const replaySpec = defineRoute({
  summary: 'Deliver again from an event on',
  description: 'Moves the cursor back so that `fromEventId` and every event after it are delivered again; resumes.',
  tags: ['webhooks'],
  params: IdParams,
  body: z.object({ fromEventId: EventId }),
  response: Webhook,
  status: 200,
  errors: ['webhook_not_found', 'event_not_found'],
});

const deliveriesSpec = defineRoute({
  summary: 'Delivery attempts, newest first',
  description: 'One record per attempt: the receiver’s status or a coarse failure class; never the response body.',
  tags: ['webhooks'],
  params: IdParams,
  query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }),
  response: z.object({
    deliveries: z.array(
      z.object({
        id: z.string(),
        eventId: z.string(),
        eventSeq: z.number().int(),
        attempt: z
          .number()
          .int()
          .meta({ description: '1 for the first attempt at this event, 2 for its first retry...' }),
        outcome: z.enum(['delivered', 'failed']),
        status: z.number().int().nullable().meta({ description: 'The receiver’s HTTP status; null when none came.' }),
        error: z
          .string()
          .nullable()
          .meta({
            description:
              'A coarse failure class: `unreachable`, `timeout`, `http_status` (see `status`), `refused_destination` ' +
              '(the host is or resolved to a refused address; nothing sent) or `secret_unreadable`; null when ' +
              'delivered. Never a network error code or an address.',
          }),
        durationMs: z.number().int(),
        createdAt: z.string(),
      }),
    ),
  }),
  errors: ['webhook_not_found'],
});

/** Thin HTTP edge of the webhook subscriptions (MIS keys): validation here, policy in WebhooksService. */
@Controller('webhooks')
@MisKeyAuth()
export class WebhooksController {
  constructor(private readonly service: WebhooksService) {}

  @Post()
  @ApiRoute(createSpec)
  async create(@MisCaller() caller: MisPrincipal, @Input() input: RouteInput<typeof createSpec>) {
    const { view, secret } = await this.service.create(caller, input.body);
    return { ...view, secret };
  }

  @Get()
  @ApiRoute(listSpec)
  async list(@MisCaller() caller: MisPrincipal) {
    return { webhooks: await this.service.list(caller.clinicId) };
  }

  @Get(':id')
  @ApiRoute(getSpec)
  get(@MisCaller() caller: MisPrincipal, @Input() input: RouteInput<typeof getSpec>) {
    return this.service.get(caller.clinicId, input.params.id);
  }

  @Delete(':id')
  @ApiRoute(deleteSpec)
  remove(@MisCaller() caller: MisPrincipal, @Input() input: RouteInput<typeof deleteSpec>) {
    return this.service.remove(caller, input.params.id);
  }

  @Post(':id/pause')
  @ApiRoute(pauseSpec)
  pause(@MisCaller() caller: MisPrincipal, @Input() input: RouteInput<typeof pauseSpec>) {
    return this.service.pause(caller, input.params.id);
  }

  @Post(':id/resume')
  @ApiRoute(resumeSpec)
  resume(@MisCaller() caller: MisPrincipal, @Input() input: RouteInput<typeof resumeSpec>) {
    return this.service.resume(caller, input.params.id);
  }

  @Post(':id/replay')
  @ApiRoute(replaySpec)
  replay(@MisCaller() caller: MisPrincipal, @Input() input: RouteInput<typeof replaySpec>) {
    return this.service.replay(caller, input.params.id, input.body.fromEventId);
  }

  @Get(':id/deliveries')
  @ApiRoute(deliveriesSpec)
  async deliveries(@MisCaller() caller: MisPrincipal, @Input() input: RouteInput<typeof deliveriesSpec>) {
    return { deliveries: await this.service.deliveries(caller.clinicId, input.params.id, input.query.limit) };
  }
}
