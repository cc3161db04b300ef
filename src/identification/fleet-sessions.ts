import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { SIGNALS, type SessionNotice, type StorageSignals } from '../storage/signals';
import { IdentificationGateway } from './identification.gateway';

/**
 * A fleet of gateways on one PostgreSQL: a session whose face WebSocket is held by this process may be refused (the
 * desk's request went to another gateway) or finished elsewhere. Its state change arrives here by NOTIFY
 * (faceid_sessions, src/storage/signals.ts) and the socket closes at once, saying why, its frames wiped, as when
 * the change is made in this process. On SQLite (one process) nothing arrives here: CodePathService stops the
 * runner itself.
 */
@Injectable()
export class FleetSessions implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('Identification');
  private unsubscribe: (() => void) | undefined;

  constructor(
    @Inject(SIGNALS) private readonly signals: StorageSignals,
    private readonly gateway: IdentificationGateway,
  ) {}

  onApplicationBootstrap(): void {
    this.unsubscribe = this.signals.onSessionChanged((notice) => this.onChanged(notice));
  }

  beforeApplicationShutdown(): void {
    this.unsubscribe?.();
  }

  /** Another process moved a session on: close its face socket here, if this process holds it. */
  onChanged(notice: SessionNotice): void {
    if (notice.state === 'code_pending') {
      if (this.gateway.abortSession(notice.sessionId)) {
        this.log.log(
          `Session ${notice.sessionId} went on to the code path on another gateway: its face connection here closed.`,
        );
      }
    } else if (notice.state === 'finished' || notice.state === 'expired') {
      if (this.gateway.endSession(notice.sessionId)) {
        this.log.log(
          `Session ${notice.sessionId} ended ${notice.state} on another gateway: its face connection here closed.`,
        );
      }
    }
  }
}
