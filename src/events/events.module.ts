import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { AuthModule } from '../auth/auth.module';
import { KeyRingModule } from '../keyring/keyring.module';
import { KeysModule } from '../keys/keys.module';
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
 * Config, storage and metrics come from global modules.
 */
@Module({
  // Auth: the readers' keys; the key ring: webhook secrets; keys: revocations close event WebSockets.
  imports: [AuthModule, AuditModule, KeyRingModule, KeysModule],
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
