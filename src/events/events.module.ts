import { Module } from '@nestjs/common';
import { EventFeed } from './event-feed';
import { EventsController } from './events.controller';
import { EventsSocketServer } from './events.socket';
import { HostResolver } from './host-resolver';
import { EventReaderAuth, EventReaderGuard } from './reader-auth';
import { WebhookDispatcher } from './webhook-dispatcher';
import { WebhookSecrets } from './webhook-secrets';
import { WebhooksController } from './webhooks.controller';
import { WebhooksService } from './webhooks.service';

/**
 * MIS event delivery from the outbox storage writes: GET /events, the /ws/events subscription and signed webhooks.
 * Config, storage, auth, audit and the key ring come from global modules.
 */
@Module({
  controllers: [EventsController, WebhooksController],
  providers: [
    EventFeed,
    EventReaderAuth,
    EventReaderGuard,
    EventsSocketServer,
    WebhookSecrets,
    HostResolver,
    WebhookDispatcher,
    WebhooksService,
  ],
  exports: [EventsSocketServer, WebhookDispatcher],
})
export class EventsModule {}
