import { Module } from '@nestjs/common';
import { EngineModule } from '../engine';
import { registerErrorStatus } from '../http';
import { SESSION_TRANSPORT_HANDLER } from '../transport/connection';
import { TransportModule } from '../transport/transport.module';
import { IdentificationGateway } from './identification.gateway';
import { SessionsController } from './sessions.controller';
import { SessionsService } from './sessions.service';

registerErrorStatus({ attempts_exceeded: 429 });

/** Sessions: HTTP creation, the WebSocket frame loop (through whichever transport is configured), verdicts. */
@Module({
  // Enrollment, audit, auth, metrics and storage are global modules.
  imports: [EngineModule, TransportModule],
  controllers: [SessionsController],
  providers: [
    SessionsService,
    IdentificationGateway,
    { provide: SESSION_TRANSPORT_HANDLER, useExisting: IdentificationGateway },
  ],
  exports: [SESSION_TRANSPORT_HANDLER, SessionsService],
})
export class IdentificationModule {}
