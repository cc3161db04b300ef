/**
 * A simulated desk: the browser client's side of a session (it shows the light challenge's colours and reports
 * when they were painted) in front of a scene model (a live face, or an attack) that the camera films. Used by
 * `faceid pad-eval` (in-process, on a virtual clock) and `faceid simulate` (over a real WebSocket, in real time).
 * Synthetic frames only: never a patient's.
 */
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import type { Analysis, FaceEngine } from '../engine';
import {
  DEFAULT_SETTINGS,
  SessionRunner,
  type IdentificationSettings,
  type RunnerMessage,
  type VerdictOutcome,
} from '../identification/session-runner';
import {
  colourSequence,
  encodeJpeg,
  type Prompts,
  type Rgb,
  type SceneModel,
  type ScreenTimeline,
} from '../liveness/pad/render';
import {
  encodeFrameMessage,
  LIVENESS_CAPABILITIES,
  SUBPROTOCOL,
  TOKEN_SUBPROTOCOL_PREFIX,
  type HelloMessage,
} from '../transport/protocol';
import { takeFrame } from '../transport/frame';

/** What the desk's client sends back besides frames. */
export interface LightReport {
  type: 'light_shown';
  challengeId: string;
  shownAt: number[];
}

/** Server messages the desk reacts to (a subset of the protocol's). */
export type DeskInput =
  | { type: 'challenge'; kind: 'light'; challengeId: string; colours: { rgb: readonly number[]; ms: number }[] }
  | { type: 'challenge'; kind: 'turn'; challengeId: string; direction: 'left' | 'right' }
  | { type: 'guidance'; code: string }
  | { type: string };

export class Desk {
  private screenAt: ScreenTimeline = () => null;
  private readonly prompts: Prompts = {};
  private report: { at: number; msg: LightReport } | null = null;
  /** The browser client streams at the server's fps.max from the light challenge until 0.5 s after it. */
  private fastUntil = -Infinity;

  /**
   * @param paintDelayMs how long the browser takes to put the first colour on screen after the message arrives
   * @param clientClock converts the desk's time to the client's epoch clock (frames' captureTime, light_shown)
   */
  constructor(
    readonly model: SceneModel,
    private readonly paintDelayMs = 35,
    readonly clientClock: (t: number) => number = (t) => t,
  ) {}

  /** A server message arrived at desk time t. */
  onMessage(msg: DeskInput, t: number): void {
    if (msg.type === 'challenge' && 'kind' in msg && msg.kind === 'light') {
      // A 60 Hz screen paints on the next vsync: each colour starts on a 16.7 ms boundary.
      const vsync = 1000 / 60;
      const start = Math.ceil((t + this.paintDelayMs) / vsync) * vsync;
      const colours = msg.colours.map((c) => ({ rgb: [c.rgb[0], c.rgb[1], c.rgb[2]] as Rgb, ms: c.ms }));
      this.screenAt = colourSequence(start, colours);
      const shownAt = [start];
      for (const c of colours) shownAt.push(shownAt[shownAt.length - 1] + c.ms);
      const end = shownAt[shownAt.length - 1];
      this.fastUntil = end + 500;
      this.report = {
        at: end + vsync,
        msg: { type: 'light_shown', challengeId: msg.challengeId, shownAt: shownAt.map((x) => this.clientClock(x)) },
      };
    } else if (msg.type === 'challenge' && 'kind' in msg && msg.kind === 'turn') {
      this.prompts.turn = { at: t, direction: msg.direction };
    } else if (msg.type === 'guidance' && 'code' in msg && (msg.code === 'blink_now' || msg.code === 'blink_again')) {
      // A patient asked once more blinks once more.
      this.prompts.blinkAt = t;
    }
  }

  /** The client's frame rate at desk time t: `fast` while a light challenge runs, else `normal`. */
  fpsAt(t: number, normal: number, fast: number): number {
    return this.report !== null || t < this.fastUntil ? fast : normal;
  }

  /** The light report, once the colours are over (null until then, and after it was taken). */
  takeReport(t: number): LightReport | null {
    if (!this.report || t < this.report.at) return null;
    const { msg } = this.report;
    this.report = null;
    return msg;
  }

  /** The camera's frame at desk time t, as a JPEG. */
  async frameJpeg(t: number): Promise<Buffer> {
    const frame = this.model.frameAt(t, this.screenAt, this.prompts);
    const jpeg = await encodeJpeg(frame, this.model.jpegQuality);
    frame.data.fill(0);
    return jpeg;
  }
}

export interface PlayOptions {
  settings?: Partial<IdentificationSettings>;
  /** Frames per second the desk sends (the browser client's default, 10). */
  fps?: number;
  /** ... and while the light challenge runs (the server's fps.max, 15). */
  fastFps?: number;
  /** Longest session on the virtual clock, ms. Default 20000. */
  maxMs?: number;
  /** The client's capabilities (hello). Default: every challenge. */
  capabilities?: string[];
  random?: () => number;
}

export interface PlayResult {
  outcome: VerdictOutcome;
  /** Virtual ms from the first frame to the verdict (frames at `fps`, analysis assumed to keep up). */
  sessionMs: number;
  /** Engine time spent on this session's frames, ms (a proxy for its CPU). */
  engineMs: number;
  frames: number;
  /** Each challenge that ended, with its measurements. */
  challenges: { kind: string; passed: boolean; metrics: Readonly<Record<string, number | null>> | undefined }[];
}

/**
 * Plays one session through the real SessionRunner and the real engine on a virtual clock: the desk sends a frame
 * every 1000/fps ms of virtual time (as the browser client does: fps.max while the light challenge runs) and the
 * next one only once the engine has answered, so no frame is dropped and
 * a run does not depend on the machine's speed. The template is wiped by the runner at the end.
 */
export async function playSession(
  engine: FaceEngine,
  template: Float32Array,
  desk: Desk,
  opts: PlayOptions = {},
): Promise<PlayResult> {
  const fps = opts.fps ?? 10;
  const fastFps = opts.fastFps ?? 15;
  const maxMs = opts.maxMs ?? 20_000;
  const clock = { t: 0 };
  let outcome: VerdictOutcome | null = null;
  let engineMs = 0;
  let wake: (() => void) | null = null;
  const settle = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const inbox: RunnerMessage[] = [];
  const challenges: PlayResult['challenges'] = [];
  // Engine time from the jobs' own timings (the virtual clock cannot measure it).
  const timed = Object.assign(Object.create(engine) as FaceEngine, {
    track: async (frame: Buffer, o?: object) => count(await engine.track(frame, o)),
    full: async (frame: Buffer, o?: object) => count(await engine.full(frame, o)),
  });
  const count = (a: Analysis): Analysis => {
    engineMs += a.timings.total;
    return a;
  };
  const settings: IdentificationSettings = { ...DEFAULT_SETTINGS, ...opts.settings, sessionTimeoutMs: 600_000 };
  const runner = new SessionRunner(
    timed,
    template,
    {
      send: (m) => {
        inbox.push(m);
        if (m.type === 'error' || m.type === 'busy') settle();
      },
      finish: (o) => {
        outcome = o;
        settle();
      },
      onAnalysis: () => settle(),
      onChallenge: (kind, passed, metrics) => challenges.push({ kind, passed, metrics }),
    },
    settings,
    () => clock.t,
    opts.random ?? Math.random,
  );
  runner.onHello(opts.capabilities ?? ['blink', 'light', 'turn']);
  let frames = 0;
  try {
    while (!outcome && clock.t < maxMs) {
      for (const m of inbox.splice(0)) desk.onMessage(m, clock.t);
      const report = desk.takeReport(clock.t);
      if (report) runner.onLightShown(report.challengeId, report.shownAt);
      if (outcome) break;
      const jpeg = await desk.frameJpeg(clock.t);
      const captureTime = desk.clientClock(clock.t);
      const msg = encodeFrameMessage({ format: 'jpeg', seq: frames++, captureTime }, jpeg);
      jpeg.fill(0);
      const done = new Promise<void>((resolve) => (wake = resolve));
      const frame = takeFrame(msg);
      if (frame.kind !== 'frame') throw frame.error;
      runner.onFrame(frame);
      await done;
      clock.t += 1000 / desk.fpsAt(clock.t, fps, fastFps);
    }
  } finally {
    if (!outcome) runner.abort();
  }
  const result = outcome as VerdictOutcome | null;
  if (!result) {
    return {
      outcome: {
        result: 'timeout',
        score: null,
        liveness: { passive: null, blink: false, light: null, turn: null },
        reason: null,
        timings: { firstFrameToVerdictMs: null, framesReceived: frames, framesAnalysed: frames, framesDropped: 0 },
        quality: { fullFrames: 0, faceSize: null, brightness: null, sharpness: null, frames: {} },
      },
      sessionMs: clock.t,
      engineMs,
      frames,
      challenges,
    };
  }
  return { outcome: result, sessionMs: result.timings.firstFrameToVerdictMs ?? clock.t, engineMs, frames, challenges };
}

// ---------------------------------------------------------------------------------------------------------------
// Real time, over a WebSocket (`faceid simulate`, the end-to-end tests)
// ---------------------------------------------------------------------------------------------------------------

/** The camera a simulated desk reports in its hello: a fixed, recognisable device. */
export const SYNTHETIC_CAMERA = {
  label: 'faceid simulate (synthetic)',
  deviceIdHash: createHash('sha256').update('faceid simulate synthetic camera').digest('hex'),
} as const;

/** The hello of a simulated desk: every challenge, and its camera (another label plays e.g. a virtual camera). */
export function deskHello(cameraLabel: string = SYNTHETIC_CAMERA.label): HelloMessage {
  return {
    type: 'hello',
    client: 'faceid-simulate',
    capabilities: [...LIVENESS_CAPABILITIES],
    camera: { label: cameraLabel, deviceIdHash: SYNTHETIC_CAMERA.deviceIdHash },
  };
}

/**
 * A desk for real-time play: its time is `performance.now()` (monotonic, as the scene models need), its client
 * clock the epoch ms that time stands for (what a browser's `Date.now()` gives), for captureTime and light_shown.
 */
export function realTimeDesk(model: SceneModel, paintDelayMs?: number): Desk {
  const epochAtZero = Date.now() - performance.now();
  return new Desk(model, paintDelayMs, (t) => epochAtZero + t);
}

export interface PatientRun {
  messages: Array<Record<string, unknown>>;
  verdict: Record<string, unknown> | null;
  closeCode: number;
  framesSent: number;
  /** Wall time from the first frame sent to the verdict received, ms. */
  firstFrameToVerdictMs: number | null;
}

export interface PlayDeskOptions {
  /** Frames per second. Default 15. A frame still being rendered when the next is due makes that one skip. */
  fps?: number;
  /** Sent on `ready`, before any frame. Default: `deskHello()`; null: none (a client from before challenges). */
  hello?: HelloMessage | null;
  origin?: string;
  /** The run fails (rejects) when the server has not closed by then. Default 120 s. */
  timeoutMs?: number;
  onMessage?: (m: Record<string, unknown>) => void;
}

/**
 * Plays a desk (made by `realTimeDesk`) over a real WebSocket in real time: on `ready` the hello, then a frame of
 * the desk's camera every 1000/fps ms with its capture time on the client clock, each server message passed to the
 * desk as it arrives, and the light report as soon as the desk has one. A null desk connects and sends no frame
 * (the session times out). Collects every message until the server closes.
 */
export function playDesk(
  url: string,
  token: string,
  desk: Desk | null,
  options: PlayDeskOptions = {},
): Promise<PatientRun> {
  const fps = options.fps ?? 15;
  const hello = options.hello === undefined ? deskHello() : options.hello;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + token], {
      origin: options.origin,
      perMessageDeflate: false,
    });
    const run: PatientRun = { messages: [], verdict: null, closeCode: 0, framesSent: 0, firstFrameToVerdictMs: null };
    let seq = 0;
    let firstAt = 0;
    let rendering = false;
    let timer: NodeJS.Timeout | undefined;
    const open = () => ws.readyState === WebSocket.OPEN;
    const guard = setTimeout(() => fail(new Error('The session did not end in time.')), options.timeoutMs ?? 120_000);
    const fail = (err: Error) => {
      clearInterval(timer);
      clearTimeout(guard);
      ws.terminate();
      reject(err);
    };

    const sendFrame = async (d: Desk) => {
      if (rendering || !open()) return;
      rendering = true;
      try {
        const t = performance.now();
        const report = d.takeReport(t);
        if (report) ws.send(JSON.stringify(report));
        const jpeg = await d.frameJpeg(t);
        // A new message every time: ws masks the buffer it is given in place.
        const msg = encodeFrameMessage({ format: 'jpeg', seq: seq++, captureTime: d.clientClock(t) }, jpeg);
        jpeg.fill(0);
        if (!open()) return;
        firstAt ||= performance.now();
        ws.send(msg);
        run.framesSent++;
      } finally {
        rendering = false;
      }
    };

    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const msg = JSON.parse(data.toString()) as Record<string, unknown>;
      run.messages.push(msg);
      options.onMessage?.(msg);
      if (msg.type === 'ready') {
        if (hello) ws.send(JSON.stringify(hello));
        if (desk) timer = setInterval(() => void sendFrame(desk).catch(fail), 1000 / fps);
      } else if (msg.type === 'verdict') {
        run.verdict = msg;
        if (firstAt) run.firstFrameToVerdictMs = performance.now() - firstAt;
      } else {
        desk?.onMessage(msg as DeskInput, performance.now());
      }
    });
    ws.on('close', (code) => {
      clearInterval(timer);
      clearTimeout(guard);
      run.closeCode = code;
      resolve(run);
    });
    ws.on('error', fail);
  });
}
