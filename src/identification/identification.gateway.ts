import { Inject, Logger, type BeforeApplicationShutdown, type OnApplicationShutdown } from '@nestjs/common';
import {
  SubscribeMessage,
  WebSocketGateway,
  type OnGatewayConnection,
  type OnGatewayDisconnect,
  type OnGatewayInit,
} from '@nestjs/websockets';
import { CONFIG, type Config } from '../config';
import { EngineError, EngineService, FRAME_JPEG_LIMITS, inspectJpeg, type JpegLimits } from '../engine';
import { EnrollmentService } from '../enrollment';
import { AuditService } from '../audit';
import { faceVerdictBins } from '../calibration/bins';
import { MetricsService } from '../metrics';
import { SESSIONS, VERDICTS, type SessionRepository, type VerdictRepository } from '../storage/ports';
import type { AuthRequest, AuthResult, FrameConnection } from '../transport/connection';
import { releaseFrame, type FrameMessage } from '../transport/frame';
import { FRAME_EVENT, TEXT_EVENT, type FrameClient, type FrameSocketServer } from '../transport/frame-socket';
import {
  FRAME_RATE,
  parseClientMessage,
  ProtocolError,
  WS_CLOSE,
  WS_PATH,
  type FrameHeader,
  type FrameOutcome,
} from '../transport/protocol';
import type { SocketGatewayOptions } from '../transport/socket.adapter';
import { FrameRateGate } from './frame-rate';
import { SessionRunner, type IdentificationSettings, DEFAULT_SETTINGS, type VerdictOutcome } from './session-runner';
import type { StepMetrics } from './challenge-steps';
import { hashToken } from './tokens';
import { isVirtualCamera, parseChallenges, type ChallengeKind } from '../liveness';
import { CameraRegistryService } from './camera-registry.service';
import { ChallengePolicyService } from './challenge-policy.service';
import { SessionSweep } from './session-sweep';
import { FaceCapacity } from './face-capacity';

interface Running {
  runner: SessionRunner;
  session: Admitted;
  conn: FrameConnection;
  /** fps.max, enforced before a frame is parsed. */
  rate: FrameRateGate;
  /** The client's hello asked for an `ack` per frame. */
  acks: boolean;
  /**
   * Why the connection may close without the session being expired: `verdict` once the runner reached one (stored,
   * or refused by storage because the session had moved on), `refused` when the session went on to the code path.
   */
  ended: 'verdict' | 'refused' | null;
}

interface Admitted {
  sessionId: string;
  clinicId: string;
  workstationId: string;
  patientId: string;
  template: Float32Array | null;
  /** The session's liveness challenges (workstation ?? clinic ?? LIVENESS_CHALLENGES). */
  challenges: ChallengeKind[];
}

/**
 * The WebSocket side of a session (/ws/identify): admits a connection by its single-use token, runs its frames through
 * a SessionRunner, stores the verdict, then sends it and closes. A Nest gateway on FaceidSocketAdapter's frame socket
 * (src/transport/frame-socket.ts), served by ws or uWS; frames arrive with their header decoded (src/transport/frame.ts)
 * and are released by the runner, or here when refused.
 */
@WebSocketGateway<SocketGatewayOptions>({ path: WS_PATH, protocol: 'frames' })
export class IdentificationGateway
  implements
    OnGatewayInit<FrameSocketServer>,
    OnGatewayConnection<FrameClient>,
    OnGatewayDisconnect<FrameClient>,
    BeforeApplicationShutdown,
    OnApplicationShutdown
{
  private readonly log = new Logger('Identification');
  /** Set before the transport closes the connections on shutdown: those sessions are not expired (the sweep does). */
  private stopping = false;
  /** Sessions being expired after their connection dropped (awaited before the database closes). */
  private readonly expiring = new Set<Promise<void>>();
  private readonly admitted = new Map<string, Admitted>(); // by session id, between authenticate and onOpen
  private readonly runners = new Map<string, Running>(); // by connection id
  private readonly settings: IdentificationSettings;
  /** What a webcam frame may be (WS_FRAME_MAX_PIXELS): judged from its header and JPEG markers, before decoding. */
  private readonly frameLimits: JpegLimits;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(SESSIONS) private readonly sessions: SessionRepository,
    @Inject(VERDICTS) private readonly verdicts: VerdictRepository,
    private readonly engine: EngineService,
    private readonly enrollment: EnrollmentService,
    private readonly audit: AuditService,
    private readonly metrics: MetricsService,
    private readonly policy: ChallengePolicyService,
    private readonly cameras: CameraRegistryService,
    private readonly sweep: SessionSweep,
    private readonly capacity: FaceCapacity,
  ) {
    this.settings = {
      ...DEFAULT_SETTINGS,
      matchThreshold: config.MATCH_THRESHOLD,
      livenessMin: config.LIVENESS_MIN,
      challenges: parseChallenges(config.LIVENESS_CHALLENGES),
      blinkWindowMs: config.BLINK_WINDOW_MS,
      sessionTimeoutMs: config.SESSION_TIMEOUT_MS,
    };
    this.frameLimits = { ...FRAME_JPEG_LIMITS, maxPixels: config.WS_FRAME_MAX_PIXELS };
  }

  /** The frame socket asks authenticate() about each upgrade request, before it becomes a WebSocket. */
  afterInit(server: FrameSocketServer): void {
    server.authenticateWith((req) => this.authenticate(req));
  }

  handleConnection(client: FrameClient, sessionId: string): void {
    try {
      this.onOpen(client, sessionId);
    } catch (err) {
      this.log.error(`Session ${sessionId}: the connection could not start: ${(err as Error)?.message ?? String(err)}`);
      client.close(WS_CLOSE.internal_error, 'internal_error');
    }
  }

  handleDisconnect(client: FrameClient): void {
    try {
      this.onClose(client, client.closeCode ?? 1006);
    } catch (err) {
      this.log.error(`A closed connection was not cleaned up: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  async authenticate(req: AuthRequest): Promise<AuthResult> {
    const refuse: AuthResult = { ok: false, closeCode: WS_CLOSE.token_invalid, reason: 'token_invalid' };
    if (!req.token || req.token.length > 128) return refuse;
    const now = new Date();
    const since = new Date(now.getTime() - this.config.FACE_ATTEMPTS_WINDOW_MIN * 60_000);
    const admission = await this.sessions.admitFace(hashToken(req.token), now, {
      since,
      max: this.config.FACE_ATTEMPTS_MAX,
    });
    if (!admission.ok) {
      if (admission.reason === 'token_invalid') return refuse;
      this.log.warn(
        `Session ${admission.sessionId} refused at admission: the patient's face attempts are used up ` +
          `(${admission.failed} failed, ${admission.inFlight} running).`,
      );
      await this.audit.record('system', 'session.admission_refused', {
        clinicId: admission.clinicId,
        subject: admission.sessionId,
        detail: { failed: admission.failed, inFlight: admission.inFlight, max: this.config.FACE_ATTEMPTS_MAX },
      });
      return { ok: false, closeCode: WS_CLOSE.attempts_exceeded, reason: 'attempts_exceeded' };
    }
    const session = admission.session;
    const challenges = await this.policy.forSession(session.clinicId, session.workstationId);
    const template = await this.enrollment.loadTemplate(session.clinicId, session.patientId);
    this.admitted.set(session.id, {
      sessionId: session.id,
      clinicId: session.clinicId,
      workstationId: session.workstationId,
      patientId: session.patientId,
      template,
      challenges,
    });
    return { ok: true, sessionId: session.id };
  }

  onOpen(conn: FrameConnection, sessionId: string): void {
    const session = this.admitted.get(sessionId);
    this.admitted.delete(sessionId);
    if (!session) {
      conn.close(WS_CLOSE.token_invalid, 'token_invalid');
      return;
    }
    this.metrics.sessionOpened();
    this.capacity.streaming(session.sessionId, session.clinicId, session.patientId);
    const runner = new SessionRunner(
      this.engine.get(),
      session.template,
      {
        send: (msg) => conn.sendJson(msg),
        finish: (outcome) => {
          const entry = this.runners.get(conn.id);
          if (entry) entry.ended = 'verdict';
          this.capacity.release(session.sessionId); // the engine's part is done: the next desk may start
          void this.finish(conn, session, outcome);
        },
        onFrameDone: (seq, outcome) => this.ack(conn, seq, outcome),
        onFrameReceived: () => this.metrics.frameReceived(),
        onFrameDropped: () => this.metrics.frameDropped(),
        onAnalysis: (call, seconds) => {
          this.metrics.frameAnalysed();
          this.metrics.analysis(call, seconds);
        },
        // A refused challenge's measurements (light and geometry, never the person), so that a refusal in the field
        // or in a test can be told from a threshold that needs calibrating.
        onChallenge: (kind, passed, measured) => {
          if (!passed)
            this.log.warn(`Session ${sessionId}: the ${kind} challenge failed (${describeMetrics(measured)}).`);
        },
      },
      { ...this.settings, challenges: session.challenges },
    );
    session.template = null; // the runner holds it now; it is wiped when the connection ends
    this.runners.set(conn.id, { runner, session, conn, rate: new FrameRateGate(), acks: false, ended: null });
    conn.sendJson({
      type: 'ready',
      sessionId,
      maxPayload: this.config.WS_MAX_PAYLOAD,
      fps: { min: FRAME_RATE.min, max: FRAME_RATE.max },
    });
  }

  @SubscribeMessage(FRAME_EVENT)
  onFrame(conn: FrameConnection, message: FrameMessage): void {
    const entry = this.runners.get(conn.id);
    if (!entry || entry.runner.finished) {
      releaseFrame(message);
      const seq = message.kind === 'frame' ? message.header.seq : message.seq;
      if (seq !== undefined) this.ack(conn, seq, 'dropped');
      return;
    }
    // Above fps.max: dropped unread, whatever its header said (but for the seq of its ack, when asked).
    const admission = entry.rate.admit();
    if (admission.flood) this.onFlood(entry, admission.flood);
    if (!admission.accepted) {
      entry.runner.dropUnread(message);
      this.metrics.frameOverRate();
      return;
    }
    if (message.kind === 'malformed') {
      const e = message.error;
      this.metrics.wsError(e.code);
      if (e.code.startsWith('protocol_')) {
        conn.close(WS_CLOSE.protocol_error, e.code);
      } else {
        conn.sendJson({ type: 'error', code: e.code, message: e.message });
        if (e.seq !== undefined) this.ack(conn, e.seq, 'refused');
      }
      return;
    }
    const { header } = message;
    const refused = this.checkFrame(header, message.payload);
    if (refused) {
      message.release();
      this.metrics.wsError(refused.code);
      conn.sendJson({ type: 'error', code: refused.code, message: refused.message, seq: header.seq });
      this.ack(conn, header.seq, 'refused');
      return;
    }
    entry.runner.onFrame(message);
  }

  /**
   * What became of a frame, for a client whose hello asked for acks. A control message like any other: it counts
   * against WS_SEND_BUFFER_MAX, and one goes out per binary message taken (bounded by WS_MESSAGES_PER_SECOND).
   */
  private ack(conn: FrameConnection, seq: number, outcome: FrameOutcome): void {
    if (this.runners.get(conn.id)?.acks) conn.sendJson({ type: 'ack', seq, outcome });
  }

  /**
   * The work a frame may cause, bounded before it reaches the engine's decoder: no more pixels than
   * WS_FRAME_MAX_PIXELS, and a JPEG only baseline with a few scans (a progressive one may hold thousands of scans,
   * each a pass over the whole image). Reads the header and the JPEG's markers only. Null when the frame may go on.
   */
  private checkFrame(header: FrameHeader, payload: Buffer): EngineError | null {
    try {
      if (header.format === 'jpeg') {
        inspectJpeg(payload, this.frameLimits);
      } else if (header.width * header.height > this.frameLimits.maxPixels) {
        throw new EngineError(
          'frame_too_large',
          `A ${header.width}x${header.height} frame; the limit is ${this.frameLimits.maxPixels} pixels.`,
        );
      }
      return null;
    } catch (err) {
      if (err instanceof EngineError) return err;
      throw err;
    }
  }

  /** A client far above fps.max: warned at its first flood second, closed at the last. */
  private onFlood(entry: Running, flood: 'warn' | 'close'): void {
    const { conn, session, rate } = entry;
    this.metrics.wsError('frame_rate_exceeded');
    const { maxFps, floodFactor, floodSeconds } = rate.settings;
    if (flood === 'warn') {
      this.log.warn(`Session ${session.sessionId}: frames arrive at more than ${floodFactor}x fps.max; warned.`);
      conn.sendJson({
        type: 'error',
        code: 'frame_rate_exceeded',
        message:
          `Frames arrive at more than ${floodFactor} x ${maxFps} a second: those above ${maxFps} a second are dropped ` +
          `unread. Send at most ${maxFps} a second, or the session is closed.`,
      });
    } else {
      this.log.warn(
        `Session ${session.sessionId}: ${floodSeconds} seconds of frames above ${floodFactor}x fps.max; closed.`,
      );
      conn.close(WS_CLOSE.frame_rate_exceeded, 'frame_rate_exceeded');
    }
  }

  @SubscribeMessage(TEXT_EVENT)
  onText(conn: FrameConnection, text: string): void {
    let msg;
    try {
      msg = parseClientMessage(text);
    } catch (err) {
      const e = err as ProtocolError;
      this.metrics.wsError(e.code ?? 'protocol_bad_message');
      conn.sendJson({ type: 'error', code: e.code ?? 'protocol_bad_message', message: e.message });
      return;
    }
    const entry = this.runners.get(conn.id);
    if (msg.type === 'cancel') {
      entry?.runner.abort();
      conn.close(WS_CLOSE.normal, 'cancelled');
    } else if (msg.type === 'light_shown') {
      entry?.runner.onLightShown(msg.challengeId, msg.shownAt);
    } else if (msg.type === 'hello' && entry) {
      entry.acks = msg.ack === true;
      entry.runner.onHello(msg.capabilities);
      if (msg.camera) this.onCamera(entry, msg.camera);
    }
  }

  /** A virtual camera (software that injects any video) ends the session; every camera is remembered per desk. */
  private onCamera(entry: Running, camera: { label: string; deviceIdHash: string }): void {
    const product = isVirtualCamera(camera.label);
    if (product) {
      this.log.warn(`Session ${entry.session.sessionId}: virtual camera refused (${product}).`);
      entry.runner.refuse('virtual_camera');
    }
    const { clinicId, workstationId, sessionId } = entry.session;
    this.cameras.report(clinicId, workstationId, camera).catch((err: Error) => {
      this.log.warn(`Session ${sessionId}: the camera report was not recorded (${err.message}).`);
    });
  }

  onClose(conn: FrameConnection, code: number): void {
    const entry = this.runners.get(conn.id);
    if (!entry) return;
    this.runners.delete(conn.id);
    entry.runner.abort();
    this.metrics.sessionClosed();
    this.capacity.release(entry.session.sessionId);
    // Closed before a verdict (dropped, cancelled, closed for a breach): nobody can finish this session any more (its
    // token was used), so it ends now, not at the sweep minutes later.
    if (entry.ended === null && !this.stopping) this.expireDropped(entry.session, code);
  }

  /**
   * Ends a face session whose connection closed before its verdict as `expired`, with its MIS event, by the sweep's
   * own path. Only from `connected`: a session that went on to the code path meanwhile (a refusal handled by another
   * gateway process) or got its verdict is left alone.
   */
  private expireDropped(session: Admitted, closeCode: number): void {
    const { sessionId, clinicId } = session;
    const done = this.sweep
      .expire({ id: sessionId, clinicId }, { state: 'connected', cause: 'connection_closed', closeCode }, ['connected'])
      .then((expired) => {
        if (expired)
          this.log.log(`Session ${sessionId} expired: its connection closed (${closeCode}) before a verdict.`);
      })
      .catch((err: Error) =>
        this.log.error(`Could not expire session ${sessionId} after its connection closed: ${err.message}`),
      )
      .finally(() => this.expiring.delete(done));
    this.expiring.add(done);
  }

  /**
   * The session left the face path (the patient refused the photo): stops its runner in this process, which wipes
   * the frames and embeddings it holds, and closes the socket saying why. False when no socket of it runs here.
   */
  abortSession(sessionId: string): boolean {
    this.capacity.release(sessionId); // also the place of a token not used yet
    const admitted = this.admitted.get(sessionId);
    if (admitted) {
      // Between the upgrade and onOpen: onOpen will find nothing and close the socket.
      this.admitted.delete(sessionId);
      admitted.template?.fill(0);
      return true;
    }
    for (const entry of this.runners.values()) {
      const { runner, session, conn } = entry;
      if (session.sessionId !== sessionId) continue;
      entry.ended = 'refused'; // the session goes on by code: its closing must not expire it
      runner.abort();
      conn.sendJson({
        type: 'error',
        code: 'session_refused',
        message: 'The patient refused the photo: this session goes on with a six-digit code, not the camera.',
      });
      conn.close(WS_CLOSE.session_finished, 'refused');
      return true;
    }
    return false;
  }

  /**
   * The session got its verdict, or was expired, in another gateway process (src/identification/fleet-sessions.ts):
   * stops its runner here and closes the socket with `session_finished`. A runner already storing its own verdict is
   * left to it. False when no running socket of the session is here.
   */
  endSession(sessionId: string): boolean {
    this.capacity.release(sessionId);
    for (const entry of this.runners.values()) {
      if (entry.session.sessionId !== sessionId) continue;
      if (entry.ended !== null || entry.runner.finished) return false;
      entry.ended = 'verdict'; // it has its verdict elsewhere: the closing must not expire it
      entry.runner.abort();
      entry.conn.sendJson({
        type: 'error',
        code: 'session_finished',
        message: 'The session ended before this verdict.',
      });
      entry.conn.close(WS_CLOSE.session_finished, 'session_finished');
      return true;
    }
    return false;
  }

  /**
   * Runs before the connections are closed (Nest closes the gateways' servers after every beforeApplicationShutdown
   * hook): sessions cut off by the shutdown are left to the sweep. Waits for expiries under way, before the database
   * closes.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.expiring]);
  }

  onApplicationShutdown(): void {
    for (const { runner } of this.runners.values()) runner.abort();
    this.runners.clear();
  }

  /** Store the verdict (with its session, in one transaction), then send it and close. */
  private async finish(conn: FrameConnection, session: Admitted, outcome: VerdictOutcome): Promise<void> {
    this.metrics.verdict(outcome.result, 'face');
    let stored;
    try {
      stored = await this.verdicts.finish(
        {
          clinicId: session.clinicId,
          sessionId: session.sessionId,
          result: outcome.result,
          method: 'face',
          score: outcome.score,
          liveness: outcome.liveness,
          timings: outcome.timings,
        },
        {
          // Counts in the workstation's calibration histograms, in the verdict's transaction (no per-verdict row).
          calibration: faceVerdictBins(outcome),
          // The audit entry too: the verdict and its entry are both stored, or neither.
          audit: this.audit.entry('system', 'session.verdict', {
            clinicId: session.clinicId,
            subject: session.sessionId,
            detail: { result: outcome.result, method: 'face' },
          }),
        },
      );
    } catch (err) {
      this.log.error(`Could not store the verdict of session ${session.sessionId}: ${(err as Error).message}`);
      conn.sendJson({ type: 'error', code: 'internal', message: 'The verdict could not be stored.' });
      conn.close(WS_CLOSE.going_away, 'internal');
      return;
    }
    if (!stored) {
      // The session left the face path meanwhile (a refusal, the sweep): this face verdict does not count.
      conn.sendJson({ type: 'error', code: 'session_finished', message: 'The session ended before this verdict.' });
      conn.close(WS_CLOSE.session_finished, 'session_finished');
      return;
    }
    // The score is the MIS's, never the desk's; the frames' quality is calibration's only.
    const { score: _score, quality: _quality, ...result } = outcome;
    conn.sendJson({ type: 'verdict', sessionId: session.sessionId, ...result });
    conn.close(WS_CLOSE.normal, 'verdict');
  }
}

/** "correlation=0.412 faceGain=0.0871 ..." (3 significant digits; null as "-"). */
function describeMetrics(metrics: StepMetrics | undefined): string {
  const entries = Object.entries(metrics ?? {});
  if (entries.length === 0) return 'no measurements';
  return entries.map(([k, v]) => `${k}=${v === null ? '-' : Number(v.toPrecision(3))}`).join(' ');
}
