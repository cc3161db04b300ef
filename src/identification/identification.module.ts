import { Module } from '@nestjs/common';
import { EngineModule } from '../engine';
import { registerErrorStatus } from '../http';
import { KeyRing } from '../keyring';
import { SmsModule } from '../sms';
import { SESSION_TRANSPORT_HANDLER } from '../transport/connection';
import { TransportModule } from '../transport/transport.module';
import { CameraRegistryService } from './camera-registry.service';
import { ChallengePolicyService } from './challenge-policy.service';
import { CodeHasher } from './code-hash';
import { CodePathController } from './code-path.controller';
import { CodePathService } from './code-path.service';
import { FaceCapacity } from './face-capacity';
import { FleetSessions } from './fleet-sessions';
import { IDENTIFICATION_ERROR_STATUS } from './errors';
import { IdentificationGateway } from './identification.gateway';
import { SessionSweep } from './session-sweep';
import { SessionsController } from './sessions.controller';
import { SessionsService } from './sessions.service';

registerErrorStatus(IDENTIFICATION_ERROR_STATUS);

/**
 * Sessions: HTTP creation, the WebSocket frame loop (through whichever transport is configured), verdicts, the
 * six-digit code path for patients who refuse the photo or are remote, and the sweep that expires stale sessions.
 */
@Module({
  // Enrollment, the key ring, audit, auth, metrics and storage are global modules.
  imports: [EngineModule, TransportModule, SmsModule],
  controllers: [SessionsController, CodePathController],
  providers: [
    SessionsService,
    FaceCapacity,
    IdentificationGateway,
    CodePathService,
    SessionSweep,
    FleetSessions,
    ChallengePolicyService,
    CameraRegistryService,
    // Code hashes are keyed by keys derived from the key ring (TEMPLATE_KEYS, else the key file).
    { provide: CodeHasher, useFactory: (ring: KeyRing) => new CodeHasher(ring), inject: [KeyRing] },
    { provide: SESSION_TRANSPORT_HANDLER, useExisting: IdentificationGateway },
  ],
  exports: [
    SESSION_TRANSPORT_HANDLER,
    SessionsService,
    CodePathService,
    SessionSweep,
    ChallengePolicyService,
    CameraRegistryService,
    FaceCapacity,
  ],
})
export class IdentificationModule {}
