import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { MetricsService } from '../metrics';
import { SIGNALS, type SessionNotice, type StorageSignals } from '../storage/signals';
import { IdentificationError } from './errors';

/**
 * How long an issued face token that has not been used yet holds its place (at most its own lifetime): the desk asks
 * for the token, opens the camera, then connects, within a few seconds. A token used later is still admitted, but
 * counted only from then on.
 */
export const FACE_TOKEN_HOLD_MS = 30_000;
/** A face session's expected length (the connection to the verdict) until sessions have ended here to measure it. */
export const INITIAL_SESSION_MS = 3_000;
/** Bounds of the wait a refused desk is told (`retryAfterMs`). */
export const RETRY_MIN_MS = 250;
export const RETRY_MAX_MS = 30_000;
/**
 * Refused desks are told to come back at twice the rate places are expected to free up: a place freed waits little
 * for the next desk, and a desk that finds none free yet is simply told again.
 */
const RETRY_RATE = 2;
/** A place that frees up is kept for the desks told to come back within this many ms (they come first). */
export const WAITING_DUE_MS = 1_000;
/** A refused desk that has not come back this long after the time it was given has given up (or gone elsewhere). */
export const WAITING_GRACE_MS = 2_000;
/** At most this many refused visits are remembered (each for RETRY_MAX_MS + WAITING_GRACE_MS at most). */
const WAITING_MAX = 10_000;
/** Weight of the newest ended session in the running estimate of a session's length. */
const SESSION_MS_WEIGHT = 0.2;
/** At most one log line per this many ms about refusals. */
const LOG_EVERY_MS = 10_000;

/** The clock of FaceCapacity (ms, monotonic); tests inject their own. */
export const FACE_CAPACITY_CLOCK = Symbol('FACE_CAPACITY_CLOCK');

type PlaceState = 'reserved' | 'held' | 'streaming';

/** A visit (a clinic's patient) refused for capacity: when it was told to come back, and until when it counts. */
interface Waiting {
  comeBackAt: number;
  expiresAt: number;
}

interface Place {
  clinicId: string;
  patientId: string;
  sessionId: string | null;
  state: PlaceState;
  /** When the place was taken (reserved, held) or the session began streaming. */
  since: number;
  /** reserved / held: when the place is given up if its token is not used by then. */
  until: number;
}

/** A place taken by POST /sessions: bound to its session once stored, or given back when the request fails. */
export interface FacePlace {
  hold(sessionId: string, tokenExpiresAt: Date): void;
  cancel(): void;
}

/** What FaceCapacity holds now (for /metrics, logs and tests). */
export interface FaceCapacityUsage {
  /** FACE_SESSIONS_MAX; 0 = no limit. */
  limit: number;
  /** Sessions connected and streaming frames. */
  streaming: number;
  /** Tokens issued (or being issued) and not used yet, within their hold. */
  held: number;
  /** Visits refused for capacity and expected back. */
  waiting: number;
}

/**
 * Admission control of face sessions, per gateway process: how many may stream frames to this process's engine at once
 * (FACE_SESSIONS_MAX). A place is taken when POST /sessions issues a face token (held until the token is used, for at
 * most FACE_TOKEN_HOLD_MS), kept while the session streams, and given back at its verdict, when its connection closes,
 * when it goes on to the code path, or when a newer token of the same patient supersedes its token. With every place
 * taken, POST /sessions by face answers 503 `capacity_exceeded` with Retry-After and `retryAfterMs`.
 *
 * Why a refusal with a time, not a queue with positions: no polling protocol and no state a desk must keep, a fleet's
 * load balancer may send the retry to any gateway, and a desk that gives up leaves nothing behind but a short-lived
 * note. The times handed out are spaced by half the expected interval between two sessions ending (a session's length
 * / FACE_SESSIONS_MAX), from the earliest expected end on, so waiting desks come back spread out, not all at once.
 * Fairness: while desks told to wait are due back (within WAITING_DUE_MS), a place that frees up is theirs: a new
 * visit (a patient not refused before) is refused and waits its turn, so a fast desk cannot take every freed place.
 *
 * Code-path sessions (remote, or in person by code) never take a place: they run no engine work. Counted in this
 * process only: a token issued here and used on another gateway of a fleet (the balancer spreads WebSockets) is counted
 * there from its use on, and its place here is given back when PostgreSQL says so (the session's `connected` notice).
 */
@Injectable()
export class FaceCapacity implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('Identification');
  private readonly places = new Set<Place>();
  private readonly bySession = new Map<string, Place>();
  /** Visits refused for capacity and expected back, by clinic and patient. */
  private readonly waiting = new Map<string, Waiting>();
  private readonly now: () => number;
  /** Running estimate of a face session's length (streaming to release), ms. */
  private sessionMs = INITIAL_SESSION_MS;
  /** The latest retry time handed out (clock ms). */
  private lastRetryAt = 0;
  private refusedSinceLog = 0;
  private lastLogAt = -Infinity;
  private unsubscribe: (() => void) | undefined;
  readonly limit: number;

  constructor(
    @Inject(CONFIG) config: Pick<Config, 'FACE_SESSIONS_MAX'>,
    @Optional() private readonly metrics?: MetricsService,
    @Optional() @Inject(FACE_CAPACITY_CLOCK) now?: () => number,
    @Optional() @Inject(SIGNALS) private readonly signals?: Pick<StorageSignals, 'onSessionChanged'>,
  ) {
    this.limit = config.FACE_SESSIONS_MAX;
    this.now = now ?? (() => performance.now());
    this.report();
  }

  onApplicationBootstrap(): void {
    this.unsubscribe = this.signals?.onSessionChanged((notice) => this.onSessionChanged(notice));
  }

  beforeApplicationShutdown(): void {
    this.unsubscribe?.();
  }

  /**
   * Another gateway process moved a session on: its token was used there (`connected`: it streams there and is
   * counted there), or the session ended or went on to the code path. A place it holds here is free.
   */
  onSessionChanged(notice: SessionNotice): void {
    const place = this.bySession.get(notice.sessionId);
    // `connected` for a session streaming here cannot come from elsewhere (its token was used here); any other state
    // ends it, and the gateway closes its connection too.
    if (place && (notice.state !== 'connected' || place.state !== 'streaming')) this.release(notice.sessionId);
  }

  /**
   * Takes a place for a face token of this patient, or throws `capacity_exceeded` (503, with the time to come back).
   * The patient's own unused tokens do not count: issuing this one supersedes them.
   */
  reserve(clinicId: string, patientId: string): FacePlace {
    const now = this.now();
    this.prune(now);
    if (this.limit > 0) {
      let inUse = 0;
      for (const p of this.places) {
        if (!(p.state === 'held' && p.clinicId === clinicId && p.patientId === patientId)) inUse++;
      }
      const visit = `${clinicId}\u0000${patientId}`;
      const free = this.limit - inUse;
      const returning = this.waiting.has(visit);
      if (free <= 0 || (!returning && this.dueBack(now) >= free)) throw this.refuse(now, visit);
      this.waiting.delete(visit);
    }
    const place: Place = {
      clinicId,
      patientId,
      sessionId: null,
      state: 'reserved',
      since: now,
      until: now + FACE_TOKEN_HOLD_MS,
    };
    this.places.add(place);
    this.report();
    return {
      hold: (sessionId, tokenExpiresAt) => {
        if (!this.places.has(place) || place.state !== 'reserved') return;
        const t = this.now();
        place.state = 'held';
        place.sessionId = sessionId;
        place.since = t;
        place.until = t + Math.min(FACE_TOKEN_HOLD_MS, Math.max(0, tokenExpiresAt.getTime() - Date.now()));
        this.bySession.set(sessionId, place);
      },
      cancel: () => {
        if (place.state === 'reserved') this.remove(place);
      },
    };
  }

  /**
   * reserve(), then `issue` (which stores the session and its token); the place is held by that session, or given back
   * when `issue` fails.
   */
  async admit<T extends { sessionId: string; expiresAt: Date }>(
    clinicId: string,
    patientId: string,
    issue: () => Promise<T>,
  ): Promise<T> {
    const place = this.reserve(clinicId, patientId);
    let issued: T;
    try {
      issued = await issue();
    } catch (err) {
      place.cancel();
      throw err;
    }
    place.hold(issued.sessionId, issued.expiresAt);
    return issued;
  }

  /** The patient's unused face tokens were superseded (a newer session, or the move to the code): their places go. */
  tokensSuperseded(clinicId: string, patientId: string): void {
    let changed = false;
    for (const p of this.places) {
      if (p.state === 'held' && p.clinicId === clinicId && p.patientId === patientId) {
        this.remove(p, false);
        changed = true;
      }
    }
    if (changed) this.report();
  }

  /**
   * A face session's connection opened here (its token used): it streams from now on. A session with no place here
   * (its hold ran out, or its token came from another gateway) is admitted all the same, and counted.
   */
  streaming(sessionId: string, clinicId: string, patientId: string): void {
    const now = this.now();
    let place = this.bySession.get(sessionId);
    if (!place) {
      place = { clinicId, patientId, sessionId, state: 'streaming', since: now, until: Infinity };
      this.places.add(place);
      this.bySession.set(sessionId, place);
    }
    place.state = 'streaming';
    place.since = now;
    place.until = Infinity;
    this.report();
  }

  /**
   * The session no longer needs the engine (its verdict, its connection closed, the code path, ended elsewhere): its
   * place is free. Idempotent.
   */
  release(sessionId: string): void {
    const place = this.bySession.get(sessionId);
    if (!place) return;
    if (place.state === 'streaming') {
      const ms = Math.max(0, this.now() - place.since);
      this.sessionMs += SESSION_MS_WEIGHT * (ms - this.sessionMs);
    }
    this.remove(place);
  }

  usage(): FaceCapacityUsage {
    this.prune(this.now());
    let streaming = 0;
    for (const p of this.places) if (p.state === 'streaming') streaming++;
    return { limit: this.limit, streaming, held: this.places.size - streaming, waiting: this.waiting.size };
  }

  /** The current estimate of a face session's length, ms. */
  expectedSessionMs(): number {
    return Math.round(this.sessionMs);
  }

  /** Refused desks expected back within WAITING_DUE_MS (or already late, within their grace). */
  private dueBack(now: number): number {
    let due = 0;
    for (const w of this.waiting.values()) if (w.comeBackAt <= now + WAITING_DUE_MS) due++;
    return due;
  }

  private refuse(now: number, visit: string): IdentificationError {
    const retryAfterMs = this.retryAfter(now);
    this.waiting.delete(visit);
    if (this.waiting.size < WAITING_MAX) {
      this.waiting.set(visit, { comeBackAt: now + retryAfterMs, expiresAt: now + retryAfterMs + WAITING_GRACE_MS });
    }
    this.refusedSinceLog++;
    this.metrics?.faceSessionsRefused();
    if (now - this.lastLogAt >= LOG_EVERY_MS) {
      this.log.warn(
        `Face sessions at capacity (${this.limit}, FACE_SESSIONS_MAX): refused ${this.refusedSinceLog} POST /sessions ` +
          `by face since the last note; the latest told to come back in ${retryAfterMs} ms.`,
      );
      this.lastLogAt = now;
      this.refusedSinceLog = 0;
    }
    return new IdentificationError(
      'capacity_exceeded',
      `Every face session this gateway can serve at once (${this.limit}) is in use: retry after ${retryAfterMs} ms ` +
        '(retryAfterMs, or the Retry-After header in seconds).',
      { retryAfterMs, retryAfterSeconds: retryAfterMs / 1000 },
    );
  }

  /**
   * When a refused desk should come back: the earliest expected end of a place, and no sooner than one expected
   * interval between two ends after the time handed out last, so that waiting desks return spread out.
   */
  private retryAfter(now: number): number {
    let earliest = Infinity;
    for (const p of this.places) {
      // A token not used yet: its connection and a whole session still to come, unless its hold runs out first.
      const end =
        p.state === 'streaming' ? p.since + this.sessionMs : Math.min(p.until, p.since + this.sessionMs + 1000);
      earliest = Math.min(earliest, end);
    }
    if (!Number.isFinite(earliest)) earliest = now;
    const interval = this.sessionMs / Math.max(1, this.limit) / RETRY_RATE;
    const at = Math.min(Math.max(earliest, this.lastRetryAt + interval, now + RETRY_MIN_MS), now + RETRY_MAX_MS);
    this.lastRetryAt = at;
    return Math.round(at - now);
  }

  /** Gives up the places of tokens not used within their hold, and forgets desks that did not come back. */
  private prune(now: number): void {
    for (const [visit, w] of this.waiting) if (w.expiresAt <= now) this.waiting.delete(visit);
    let changed = false;
    for (const p of this.places) {
      if (p.state !== 'streaming' && p.until <= now) {
        this.remove(p, false);
        changed = true;
      }
    }
    if (changed) this.report();
  }

  private remove(place: Place, report = true): void {
    this.places.delete(place);
    if (place.sessionId !== null && this.bySession.get(place.sessionId) === place)
      this.bySession.delete(place.sessionId);
    if (report) this.report();
  }

  private report(): void {
    if (!this.metrics) return;
    let streaming = 0;
    for (const p of this.places) if (p.state === 'streaming') streaming++;
    this.metrics.facePlaces(this.limit, streaming, this.places.size - streaming);
  }
}
