/**
 * WebSocket frame-load generator, in its own process (forked by bench/lib/ws-phase.ts) so that its CPU never counts
 * as the gateway's. It keeps N identification sessions busy: each one is created with POST /sessions, connects
 * with `ws` (which masks every frame with a fresh random key, as browsers do), streams real-face JPEG frames at a
 * target fps (or closed loop), blinks when asked, and is replaced by a new session once it ends. The gateways it loads
 * run the blink alone (bench/README.md, "Challenges on the load gateways"): these fixed frames answer no light or turn.
 * With `acks`, each session asks for a per-frame acknowledgement in its `hello` and times every frame from the send to
 * its `ack` (docs/protocol.md, "Frame acknowledgements").
 *
 * IPC: start -> started; mark (opens the measurement window) -> marked; pause (closes it: no more frames, the
 * connections stay open) -> result; stop (closes the connections) -> stopped; again for the next load point; exit.
 * Latencies are recorded in HDR histograms (µs) and sent back encoded.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { encodeFrameMessage } from '../src/transport/protocol';
import { createSession } from './lib/api';
import { encodeHistogram, newHistogram, recordMs, type Histogram } from './lib/stats';
import type { Fps } from './lib/types';

export interface LoadConfig {
  base: string;
  apiKey: string;
  /**
   * Enrolled patients, at least one per connection: connection slot i runs its sessions for the patients at i,
   * i + connections, ... in turn, so that no two sessions running at once share a patient (a new face token
   * supersedes the patient's earlier unused one).
   */
  patients: string[];
  connections: number;
  fps: Fps;
  /** Each session sends a header-only probe this often (0 = never) to time the transport's round trip. */
  probeIntervalMs: number;
  /** How long the eyes stay shut after blink_now. */
  blinkMs: number;
  /**
   * How long after blink_now (or blink_again) the eyes shut: a person's reaction time. 0 (the default): at once, in
   * the frame after the prompt.
   */
  reactionMs?: number;
  /** Ask for an `ack` per frame (hello `ack: true`) and time each frame's round trip. Default false: no hello. */
  acks?: boolean;
  /** One workstation key per desk (slot i uses apiKeys[i % length]); default: apiKey for every desk. */
  apiKeys?: string[];
}

export type LoadRequest =
  | { type: 'start'; config: LoadConfig; frames: { open: Uint8Array[]; closed: Uint8Array[] } }
  | { type: 'mark' }
  | { type: 'pause' }
  | { type: 'stop' }
  | { type: 'exit' };

/** What happened inside the measurement window. Histograms are encoded (µs). */
export interface LoadWindow {
  seconds: number;
  framesSent: number;
  probesSent: number;
  sessionsStarted: number;
  verdicts: Record<string, number>;
  /** Sessions open (past `ready`, no verdict) when the window closed. */
  unfinished: number;
  timeToVerdict: string;
  sessionSetup: string;
  probe: string;
  lag: string;
  busy: number;
  errors: Record<string, number>;
  refusals: Record<string, number>;
  /** Closes without a verdict, by code. */
  closes: Record<string, number>;
  cpuPercent: number;
  /**
   * POST /sessions answers that told the desk to come back later (503 or 429 with Retry-After or retryAfterMs): the
   * generator waits that long and asks again for the same patient, as a desk would.
   */
  admissionRetries: number;
  /** A patient's first POST /sessions to the POST that admitted them (0 when admitted at once), ms. */
  admissionWait: string;
  /** Patients waiting to be admitted (between a refusal and its retry) when the window closed. */
  waitingAdmission: number;
  /** A patient's first POST /sessions (admission waits included) to the verdict, ms. */
  visitToVerdict: string;
  /** With acks: frame sent -> its ack, every frame sent inside the window, ms (encoded). */
  frameAck: string;
  /** The same, for the frames acked `analysed` only. */
  frameAckAnalysed: string;
  /** With acks: the acks of the window's frames by outcome (analysed, dropped, refused). */
  ackOutcomes: Record<string, number>;
  /** Frames of the window still waiting for their ack when it closed. */
  ackPending: number;
  /** Frames of the window whose connection closed before their ack came. */
  ackLost: number;
}

export type LoadReply =
  | { type: 'started' }
  | { type: 'marked' }
  | { type: 'result'; result: LoadWindow }
  | { type: 'stopped' }
  | { type: 'failed'; message: string };

/** The probe: a valid header with no frame bytes; the gateway answers `error` frame_empty without the engine. */
const PROBE_CODE = 'frame_empty';

interface Window {
  startedAt: number;
  cpu: NodeJS.CpuUsage;
  framesSent: number;
  probesSent: number;
  sessionsStarted: number;
  verdicts: Record<string, number>;
  busy: number;
  errors: Record<string, number>;
  refusals: Record<string, number>;
  closes: Record<string, number>;
  timeToVerdict: Histogram;
  sessionSetup: Histogram;
  probe: Histogram;
  lag: Histogram;
  admissionRetries: number;
  admissionWait: Histogram;
  visitToVerdict: Histogram;
  frameAck: Histogram;
  frameAckAnalysed: Histogram;
  ackOutcomes: Record<string, number>;
  ackLost: number;
}

function newWindow(): Window {
  return {
    startedAt: performance.now(),
    cpu: process.cpuUsage(),
    framesSent: 0,
    probesSent: 0,
    sessionsStarted: 0,
    verdicts: {},
    busy: 0,
    errors: {},
    refusals: {},
    closes: {},
    timeToVerdict: newHistogram(),
    sessionSetup: newHistogram(),
    probe: newHistogram(),
    lag: newHistogram(),
    admissionRetries: 0,
    admissionWait: newHistogram(),
    visitToVerdict: newHistogram(),
    frameAck: newHistogram(),
    frameAckAnalysed: newHistogram(),
    ackOutcomes: {},
    ackLost: 0,
  };
}

function bump(counts: Record<string, number>, key: string | number): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

interface Session {
  ws: WebSocket;
  ready: boolean;
  done: boolean;
  seq: number;
  firstFrameAt: number;
  closedUntil: number;
  pausedUntil: number;
  probeSentAt: number;
  /** With acks: when each frame not yet acked was sent (performance.now()), by seq. */
  unacked: Map<number, number>;
  /** The patient's first POST /sessions (performance.now()). */
  visitStartedAt: number;
  timers: NodeJS.Timeout[];
}

class LoadGenerator {
  private running = true;
  private window = newWindow();
  private readonly sessions = new Set<Session>();
  /** Patients between an admission refusal and its retry. */
  private waiting = 0;

  constructor(
    private readonly config: LoadConfig,
    private readonly open: Buffer[],
    private readonly closed: Buffer[],
  ) {}

  start(): void {
    if (this.config.patients.length < this.config.connections) {
      throw new Error(
        `${this.config.connections} connections need as many patients; ${this.config.patients.length} given.`,
      );
    }
    // Spread the first connections over up to a second, so that they do not all handshake in the same tick.
    const spread = Math.min(1000, this.config.connections * 10);
    for (let slot = 0; slot < this.config.connections; slot++) {
      setTimeout(() => void this.slotLoop(slot), (spread * slot) / this.config.connections);
    }
  }

  mark(): void {
    this.window = newWindow();
  }

  /**
   * Closes the measurement window: no more frames, probes or sessions; the connections stay open (so that the
   * gateway is not busy closing them while it is sampled). What happens later goes to a discarded window.
   */
  pause(): LoadWindow {
    this.running = false;
    const w = this.window;
    this.window = newWindow();
    const seconds = (performance.now() - w.startedAt) / 1000;
    const cpu = process.cpuUsage(w.cpu);
    let unfinished = 0;
    let ackPending = 0;
    for (const s of this.sessions) {
      if (s.ready && !s.done) unfinished++;
      s.timers.forEach(clearTimeout);
      for (const at of s.unacked.values()) if (at >= w.startedAt) ackPending++;
    }
    return {
      seconds,
      framesSent: w.framesSent,
      probesSent: w.probesSent,
      sessionsStarted: w.sessionsStarted,
      verdicts: w.verdicts,
      unfinished,
      timeToVerdict: encodeHistogram(w.timeToVerdict),
      sessionSetup: encodeHistogram(w.sessionSetup),
      probe: encodeHistogram(w.probe),
      lag: encodeHistogram(w.lag),
      busy: w.busy,
      errors: w.errors,
      refusals: w.refusals,
      closes: w.closes,
      cpuPercent: seconds > 0 ? ((cpu.user + cpu.system) / 1e6 / seconds) * 100 : 0,
      admissionRetries: w.admissionRetries,
      admissionWait: encodeHistogram(w.admissionWait),
      waitingAdmission: this.waiting,
      visitToVerdict: encodeHistogram(w.visitToVerdict),
      frameAck: encodeHistogram(w.frameAck),
      frameAckAnalysed: encodeHistogram(w.frameAckAnalysed),
      ackOutcomes: w.ackOutcomes,
      ackPending,
      ackLost: w.ackLost,
    };
  }

  /** Closes every connection (1000, or cut after 2 s). */
  async stop(): Promise<void> {
    this.running = false;
    const closing: Promise<void>[] = [];
    for (const s of this.sessions) {
      s.done = true;
      s.timers.forEach(clearTimeout);
      closing.push(
        new Promise((resolve) => {
          if (s.ws.readyState === WebSocket.CLOSED) return resolve();
          s.ws.once('close', () => resolve());
          s.ws.close(1000, 'bench over');
          setTimeout(() => {
            s.ws.terminate();
            resolve();
          }, 2000).unref();
        }),
      );
    }
    await Promise.all(closing);
  }

  /** One connection slot: a session after another, each with the next of the slot's own patients, until stopped. */
  private async slotLoop(slot: number): Promise<void> {
    const own = this.config.patients.filter((_, i) => i % this.config.connections === slot);
    let turn = 0;
    while (this.running) {
      const patient = own[turn++ % own.length];
      const keys = this.config.apiKeys;
      const ended = await this.runSession(patient, keys?.length ? keys[slot % keys.length] : this.config.apiKey).catch(
        (err: Error) => {
          bump(this.window.errors, `client_${err.name || 'error'}`);
          return 'failed' as const;
        },
      );
      // A session that failed or closed without a verdict: do not retry in a hot loop.
      if (ended !== 'verdict') await sleep(100);
    }
  }

  /**
   * One session from POST /sessions to its close: how it ended. A refusal that says when to come back (the gateway's
   * admission control: 503 with Retry-After) is waited out and asked again, for the same patient, as a desk would.
   */
  private async runSession(iin: string, apiKey: string): Promise<'verdict' | 'closed' | 'refused'> {
    const visitStartedAt = performance.now();
    let t0 = visitStartedAt;
    let answer = await createSession(this.config.base, apiKey, iin);
    while (this.running && !answer.ok && answer.retryAfterMs !== undefined) {
      bump(this.window.refusals, answer.code);
      this.window.admissionRetries++;
      this.waiting++;
      await sleep(answer.retryAfterMs).finally(() => this.waiting--);
      if (!this.running) return 'closed';
      t0 = performance.now();
      answer = await createSession(this.config.base, apiKey, iin);
    }
    if (!this.running) {
      // Stopped while the token was on its way: use it and close at once, so that it holds no place of the gateway's
      // admission control into the next load point.
      if (answer.ok) await discard(answer.session);
      return 'closed';
    }
    if (!answer.ok) {
      bump(this.window.refusals, answer.code);
      return 'refused';
    }
    recordMs(this.window.admissionWait, t0 - visitStartedAt);
    this.window.sessionsStarted++;
    const ws = new WebSocket(answer.session.wsUrl, answer.session.protocols, { perMessageDeflate: false });
    const s: Session = {
      ws,
      ready: false,
      done: false,
      seq: 0,
      firstFrameAt: 0,
      closedUntil: 0,
      pausedUntil: 0,
      probeSentAt: 0,
      unacked: new Map(),
      visitStartedAt,
      timers: [],
    };
    this.sessions.add(s);
    let verdict = false;
    await new Promise<void>((resolve) => {
      ws.on('message', (data, isBinary) => {
        if (isBinary || s.done) return;
        const msg = JSON.parse(data.toString()) as ServerMessage;
        verdict ||= msg.type === 'verdict';
        this.onMessage(s, msg, t0);
      });
      ws.on('close', (code) => {
        s.timers.forEach(clearTimeout);
        this.sessions.delete(s);
        for (const at of s.unacked.values()) if (at >= this.window.startedAt && this.running) this.window.ackLost++;
        s.unacked.clear();
        if (!s.done && this.running) bump(this.window.closes, code);
        s.done = true;
        resolve();
      });
      ws.on('error', () => undefined); // a close event follows
    });
    return verdict ? 'verdict' : 'closed';
  }

  private onMessage(s: Session, msg: ServerMessage, t0: number): void {
    const now = performance.now();
    switch (msg.type) {
      case 'ready':
        s.ready = true;
        recordMs(this.window.sessionSetup, now - t0);
        // Before any frame: a client without capabilities runs the blink alone, as without a hello.
        if (this.config.acks) s.ws.send(JSON.stringify({ type: 'hello', client: 'faceid-bench/ws-load', ack: true }));
        if (this.config.fps === 'closed') this.pump(s);
        else this.paced(s, 1000 / this.config.fps, now);
        if (this.config.probeIntervalMs > 0) this.probeLoop(s);
        break;
      case 'guidance':
        if (msg.code === 'blink_now' || msg.code === 'blink_again') this.blink(s, now);
        break;
      case 'ack': {
        const sentAt = msg.seq === undefined ? undefined : s.unacked.get(msg.seq);
        if (sentAt === undefined) break; // the probe's, or a frame sent before the window
        s.unacked.delete(msg.seq!);
        if (sentAt < this.window.startedAt) break;
        recordMs(this.window.frameAck, now - sentAt);
        if (msg.outcome === 'analysed') recordMs(this.window.frameAckAnalysed, now - sentAt);
        bump(this.window.ackOutcomes, msg.outcome ?? 'unknown');
        break;
      }
      case 'busy':
        this.window.busy++;
        s.pausedUntil = now + (msg.retryAfterMs ?? 0);
        break;
      case 'error':
        if (msg.code === PROBE_CODE && s.probeSentAt > 0) {
          recordMs(this.window.probe, now - s.probeSentAt);
          s.probeSentAt = 0;
        } else {
          bump(this.window.errors, msg.code ?? 'unknown');
        }
        break;
      case 'verdict':
        s.done = true;
        s.timers.forEach(clearTimeout);
        bump(this.window.verdicts, msg.result ?? 'unknown');
        if (s.firstFrameAt > 0) recordMs(this.window.timeToVerdict, now - s.firstFrameAt);
        recordMs(this.window.visitToVerdict, now - s.visitStartedAt);
        break;
    }
  }

  /** Shuts the eyes for blinkMs, reactionMs after the prompt (at once without one). */
  private blink(s: Session, promptedAt: number): void {
    const reaction = this.config.reactionMs ?? 0;
    if (reaction <= 0) {
      s.closedUntil = promptedAt + this.config.blinkMs;
      return;
    }
    s.timers[2] = setTimeout(() => {
      s.closedUntil = performance.now() + this.config.blinkMs;
    }, reaction);
  }

  /** Sends one frame: the eyes shut while a blink lasts, open otherwise. */
  private sendFrame(s: Session, onWritten?: () => void): void {
    if (!this.running) return;
    const now = performance.now();
    const set = now < s.closedUntil ? this.closed : this.open;
    const jpeg = set[s.seq % set.length];
    // A new message every time: ws masks the buffer it is given in place.
    const seq = s.seq++;
    const message = encodeFrameMessage({ format: 'jpeg', seq, captureTime: Date.now() }, jpeg);
    if (s.firstFrameAt === 0) s.firstFrameAt = now;
    if (this.config.acks) s.unacked.set(seq, now);
    s.ws.send(message, { binary: true }, onWritten);
    this.window.framesSent++;
  }

  /** A webcam: one frame every `period` ms on a fixed schedule; late ticks are recorded and never bunched up. */
  private paced(s: Session, period: number, start: number): void {
    let due = start;
    const tick = () => {
      if (!this.running || s.done || s.ws.readyState !== WebSocket.OPEN) return;
      const now = performance.now();
      recordMs(this.window.lag, now - due);
      if (now >= s.pausedUntil) this.sendFrame(s);
      due += period;
      if (due < now) due = now + period; // fell behind by more than a period: skip, as a camera would
      s.timers[0] = setTimeout(tick, due - performance.now());
    };
    tick();
  }

  /** Closed loop: the next frame as soon as the previous one has been written to the socket. */
  private pump(s: Session): void {
    const next = () => {
      if (!this.running || s.done || s.ws.readyState !== WebSocket.OPEN) return;
      const wait = s.pausedUntil - performance.now();
      if (wait > 0) {
        s.timers[0] = setTimeout(next, wait);
        return;
      }
      this.sendFrame(s, () => setImmediate(next));
    };
    next();
  }

  /** One probe in flight at a time, first at a random phase so that the sessions' probes do not align. */
  private probeLoop(s: Session): void {
    const probe = () => {
      if (!this.running || s.done || s.ws.readyState !== WebSocket.OPEN) return;
      if (s.probeSentAt === 0) {
        s.probeSentAt = performance.now();
        s.ws.send(encodeFrameMessage({ format: 'jpeg', seq: 0xffffffff, captureTime: Date.now() }, new Uint8Array(0)));
        this.window.probesSent++;
      }
      s.timers[1] = setTimeout(probe, this.config.probeIntervalMs);
    };
    s.timers[1] = setTimeout(probe, Math.random() * this.config.probeIntervalMs);
  }
}

interface ServerMessage {
  type: string;
  code?: string;
  result?: string;
  retryAfterMs?: number;
  seq?: number;
  outcome?: string;
}

/** Opens a session's WebSocket and closes it as soon as it is open (or gives up after 2 s). */
function discard(session: { wsUrl: string; protocols: string[] }): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(session.wsUrl, session.protocols, { perMessageDeflate: false });
    const timer = setTimeout(() => ws.terminate(), 2000);
    ws.on('open', () => ws.close(1000, 'bench over'));
    ws.on('error', () => undefined); // a close event follows
    ws.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const toBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

let generator: LoadGenerator | null = null;
const reply = (m: LoadReply) => process.send?.(m);

process.on('message', (raw: unknown) => {
  const msg = raw as LoadRequest;
  try {
    if (msg.type === 'start') {
      generator = new LoadGenerator(msg.config, msg.frames.open.map(toBuffer), msg.frames.closed.map(toBuffer));
      generator.start();
      reply({ type: 'started' });
    } else if (msg.type === 'mark') {
      generator?.mark();
      reply({ type: 'marked' });
    } else if (msg.type === 'pause' && generator) {
      reply({ type: 'result', result: generator.pause() });
    } else if (msg.type === 'stop') {
      const current = generator;
      generator = null;
      void (current ? current.stop() : Promise.resolve()).then(() => reply({ type: 'stopped' }));
    } else if (msg.type === 'exit') {
      process.exit(0);
    }
  } catch (err) {
    reply({ type: 'failed', message: (err as Error).message });
  }
});
process.on('disconnect', () => process.exit(0));
