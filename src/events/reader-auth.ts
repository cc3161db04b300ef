import { Inject, Injectable } from '@nestjs/common';
import {
  authenticateWorkstationKey,
  defineKeyAuth,
  MIS_KEY_PREFIX,
  MisAuth,
  RateLimiter,
  type KeyAuthenticator,
} from '../auth';
import { AppError, type RouteSecurity } from '../http';
import { WORKSTATIONS, type EventFilter, type WorkstationRepository } from '../storage/ports';

/**
 * Who reads a clinic's events: its MIS (an MIS key: every event of the clinic) or one of its workstations (a
 * workstation key: only the identification outcomes of its own sessions, see filterOf).
 */
export interface EventReader {
  clinicId: string;
  kind: 'mis' | 'workstation';
  /** The MIS client's or the workstation's id. */
  id: string;
}

/** What a reader may see: everything of its clinic (MIS), or its own sessions' outcomes (a workstation). */
export function filterOf(reader: EventReader): EventFilter | undefined {
  return reader.kind === 'workstation' ? { workstationId: reader.id } : undefined;
}

export class EventReaderUnauthorizedError extends AppError {
  constructor() {
    super(
      'unauthorized',
      'A valid MIS or workstation API key is required: Authorization: Bearer fid_mis_... or fid_ws_...',
    );
    this.name = 'EventReaderUnauthorizedError';
  }
}

export const EVENT_READER_SECURITY: RouteSecurity = {
  name: 'eventReaderKey',
  scheme: {
    type: 'http',
    scheme: 'bearer',
    description:
      'An MIS key (`fid_mis_...`): every event of its clinic. Or a workstation key (`fid_ws_...`): only the ' +
      'identification events (verdict, refused, expired, locked_out) of the sessions that workstation opened.',
  },
  errors: ['unauthorized', 'rate_limited'],
};

/** Checks either kind of key, with the same checks and rate limits as their own guards. */
@Injectable()
export class EventReaderAuth implements KeyAuthenticator<EventReader> {
  constructor(
    private readonly mis: MisAuth,
    @Inject(WORKSTATIONS) private readonly workstations: WorkstationRepository,
    private readonly limiter: RateLimiter,
  ) {}

  /** The reader of a key, or throws `unauthorized` / `rate_limited`. */
  async authenticate(key: string | undefined, ip: string): Promise<EventReader> {
    try {
      if (key?.startsWith(MIS_KEY_PREFIX)) {
        const p = await this.mis.authenticate(key, ip);
        return { clinicId: p.clinicId, kind: 'mis', id: p.misClientId };
      }
      const p = await authenticateWorkstationKey(this.workstations, this.limiter, key, ip);
      return { clinicId: p.clinicId, kind: 'workstation', id: p.workstationId };
    } catch (err) {
      // One answer whichever kind of key was tried.
      if ((err as { code?: unknown }).code === 'unauthorized') throw new EventReaderUnauthorizedError();
      throw err;
    }
  }
}

const readerKeyAuth = defineKeyAuth<EventReader>('event reader', EVENT_READER_SECURITY, EventReaderAuth);

export const EventReaderGuard = readerKeyAuth.Guard;

/** Either key, plus its OpenAPI security. Read the caller with `@ReaderCaller()`. */
export const EventReaderKeyAuth = readerKeyAuth.Auth;

export const ReaderCaller = readerKeyAuth.Caller;
