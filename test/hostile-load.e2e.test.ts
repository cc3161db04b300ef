/*
 * Hostile load against the real service (SQLite, the real engine) over real WebSockets and HTTP:
 * - the progressive scan bomb and the other hostile JPEGs are refused with typed errors and cost the engine nothing:
 *   its call counters do not move (counted, not timed);
 * - an enrollment upload of the bomb is a typed 422, again without an engine call; a progressive photo passes;
 * - a client flooding frames far above fps.max has them dropped unread (counted), is warned, then closed with 4021;
 * - a client that asks for acks (`hello` with `ack: true`) gets one per frame, saying what became of it, and one that
 *   floods while reading nothing is still closed by the per-connection message limit, with no more than one ack per
 *   frame taken.
 * The per-connection limits (messages a second, error replies, send buffer) are tested on both transports in
 * test/transport.test.ts, fps.max and the flood rule on a fake clock in src/identification/frame-rate.spec.ts.
 */
import { randomBytes } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import sharp from 'sharp';
import WebSocket from 'ws';
import { createApp } from '../src/app.factory';
import { createWorkstation } from '../src/auth';
import { deskHello } from '../src/cli/desk';
import { loadConfig } from '../src/config';
import { EngineService } from '../src/engine';
import { EnrollmentService } from '../src/enrollment';
import { MetricsService } from '../src/metrics';
import { CLINICS, WORKSTATIONS, type ClinicRepository, type WorkstationRepository } from '../src/storage/ports';
import {
  encodeFrameMessage,
  SUBPROTOCOL,
  TOKEN_SUBPROTOCOL_PREFIX,
  type AckMessage,
  type HelloMessage,
  type ServerMessage,
} from '../src/transport/protocol';
import { createTestDatabase, type TestDatabase } from './support/databases';
import { missingFixturesReason, VGA, webcamJpeg } from './support/frames';
import { makeIin } from './support/iin';
import { hostileFrames, scanBomb } from './support/jpeg-bombs';

const missing = missingFixturesReason();
if (missing && process.env.CI) throw new Error(missing);
if (missing) console.warn(`hostile-load e2e skipped: ${missing}`);

/** A desk's WebSocket that records every server message and its close. */
class Desk {
  readonly messages: ServerMessage[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly ready: Promise<void>;
  private waiters: Array<() => void> = [];
  private seq = 0;

  constructor(url: string, token: string, hello: HelloMessage = deskHello()) {
    this.ws = new WebSocket(url, [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + token], { perMessageDeflate: false });
    this.ready = new Promise((resolve) =>
      this.ws.on('message', (data) => {
        const m = JSON.parse(data.toString()) as ServerMessage;
        this.messages.push(m);
        if (m.type === 'ready') {
          this.ws.send(JSON.stringify(hello));
          resolve();
        }
        for (const w of this.waiters.splice(0)) w();
      }),
    );
    this.closed = new Promise((resolve) =>
      this.ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
    );
    this.ws.on('error', () => undefined);
  }

  readonly ws: WebSocket;

  opened(): Promise<void> {
    return this.ready;
  }

  /** Sends one JPEG frame (a new message each time: ws masks what it is given in place). */
  frame(jpeg: Buffer): number {
    const seq = this.seq++;
    this.ws.send(encodeFrameMessage({ format: 'jpeg', seq, captureTime: Date.now() }, jpeg));
    return seq;
  }

  errors(): Array<Extract<ServerMessage, { type: 'error' }>> {
    return this.messages.filter((m): m is Extract<ServerMessage, { type: 'error' }> => m.type === 'error');
  }

  acks(): AckMessage[] {
    return this.messages.filter((m): m is AckMessage => m.type === 'ack');
  }

  /** Resolves once `cond` holds on the messages so far (checked on every message), or the connection closed. */
  async until(cond: () => boolean): Promise<void> {
    let closed = false;
    void this.closed.then(() => {
      closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    while (!cond()) {
      if (closed) throw new Error(`closed before the condition held; messages: ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}

(missing ? describe.skip : describe)('hostile load (real engine, SQLite)', () => {
  let app: INestApplication;
  let database: TestDatabase;
  let base: string;
  let key: string;
  let serial = 0;
  /** Enrolled, so its sessions stay open (POST /sessions refuses a patient without a template: 409 `no_template`). */
  const patientIin = makeIin('1985-04-12', 1201);
  /** A frame without a face: its session stays in `no_face` (no verdict) for as long as these tests need. */
  let faceless: Buffer;

  /** Every call the engine took: finished, failed, refused as busy, running or queued. */
  const engineCalls = () => {
    const s = app.get(EngineService).get().stats();
    return s.completed + s.failed + s.rejected + s.inFlight + s.queued;
  };
  const metric = async (name: string): Promise<number> => {
    const text = await app.get(MetricsService).registry.metrics();
    return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  };
  const wsErrors = async (code: string): Promise<number> => {
    const text = await app.get(MetricsService).registry.metrics();
    return Number(new RegExp(`^faceid_ws_errors_total\\{code="${code}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  };
  const newPatient = () => makeIin('1984-02-17', 3000 + serial++ * 7);
  const post = async (url: string, body: Buffer, type: string) => {
    const res = await fetch(base + url, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': type },
      body,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  /** A session of the enrolled patient (none of them reaches a verdict: no frame here shows a face). */
  const openDesk = async (hello?: HelloMessage): Promise<Desk> => {
    const res = await fetch(`${base}/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        iin: patientIin,
        appointmentId: `apt-${randomBytes(4).toString('hex')}`,
        channel: 'in_person',
      }),
    });
    const s = (await res.json()) as { wsUrl: string; token: string };
    const desk = new Desk(s.wsUrl, s.token, hello);
    await desk.opened();
    return desk;
  };

  beforeAll(async () => {
    database = await createTestDatabase('sqlite', 'hostile');
    app = await createApp({
      config: loadConfig({
        ...database.env,
        PORT: '0',
        FACEID_BOOTSTRAP: 'false',
        ENGINE_WORKERS: '1',
        RATE_LIMIT_PER_MINUTE: '10000',
        FACE_ATTEMPTS_MAX: '100',
      }),
    });
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
    const clinic = await app.get<ClinicRepository>(CLINICS).create('Hostile clinic');
    key = (await createWorkstation(app.get<WorkstationRepository>(WORKSTATIONS), clinic.id, 'Desk 1')).apiKey;
    // The desk enrolls here too (the uploads below go through the HTTP route).
    await app.get<ClinicRepository>(CLINICS).setDeskEnrollment(clinic.id, true);
    await app
      .get(EnrollmentService)
      .enroll({ kind: 'admin', clinicId: clinic.id }, patientIin, [await webcamJpeg(2, { ...VGA, face: 1 })]);
    faceless = await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 90, g: 100, b: 110 } } })
      .jpeg()
      .toBuffer();
  });

  afterAll(async () => {
    await app?.close();
    await database?.drop();
  });

  it('refuses the scan bomb and every hostile JPEG with typed errors, without one engine call', async () => {
    const hostile = hostileFrames();
    const before = engineCalls();
    // At most 8 frames a session: fps.max's burst (more at once would be dropped unread, unanswered).
    for (let from = 0; from < hostile.length; from += 8) {
      const chunk = hostile.slice(from, from + 8);
      const desk = await openDesk();
      const seqs = chunk.map((h) => desk.frame(h.data));
      await desk.until(() => desk.errors().length === chunk.length);
      expect(desk.errors().map((e) => ({ seq: e.seq, code: e.code }))).toEqual(
        chunk.map((h, i) => ({ seq: seqs[i], code: h.code })),
      );
      desk.ws.send(JSON.stringify({ type: 'cancel' }));
      expect((await desk.closed).code).toBe(1000);
    }
    expect(engineCalls()).toBe(before);
  });

  it('refuses the bomb as an enrollment photo with a 422 before the engine; a progressive photo goes on', async () => {
    const before = engineCalls();
    const bomb = await post(`/patients/${newPatient()}/template`, scanBomb(), 'image/jpeg');
    expect(bomb).toEqual({
      status: 422,
      body: { error: { code: 'frame_too_complex', message: expect.stringMatching(/more than 64 scans/) } },
    });
    const form = new FormData();
    // A photo of one face, saved progressive.
    const progressiveHead = await sharp(await webcamJpeg(2, { width: 640, height: 480, face: 1 }))
      .jpeg({ progressive: true })
      .toBuffer();
    form.append('image', new Blob([new Uint8Array(progressiveHead)], { type: 'image/jpeg' }), 'a.jpg');
    form.append(
      'image',
      new Blob([new Uint8Array(scanBomb({ width: 640, height: 480, scans: 100 }))], { type: 'image/jpeg' }),
      'b.jpg',
    );
    const res = await fetch(`${base}/patients/${newPatient()}/template`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
      body: form,
    });
    expect(res.status).toBe(422);
    expect(await res.json()).toEqual({
      error: { code: 'frame_too_complex', message: 'Image 2 of 2: The JPEG has more than 64 scans.' },
    });
    expect(engineCalls()).toBe(before);

    // A progressive photo (a handful of scans, as cameras and editors save them) is enrolled.
    const photo = await post(`/patients/${newPatient()}/template`, progressiveHead, 'image/jpeg');
    expect(photo).toMatchObject({ status: 201, body: { images: 1 } });
    expect(engineCalls()).toBe(before + 1);
  });

  it('acknowledges every frame once when the hello asks: refused after its error, analysed after its guidance, or dropped', async () => {
    // Before the flood test below, whose aborted analyses may still be finishing: these counters are this test's own.
    const before = {
      analysed: await metric('faceid_frames_analysed_total'),
      dropped: await metric('faceid_frames_dropped_total'),
    };
    const desk = await openDesk({ ...deskHello(), ack: true });
    // Seven frames at once (within fps.max's burst of 8): a scan bomb, a header without bytes, five faceless frames.
    const bomb = desk.frame(scanBomb());
    const empty = desk.frame(Buffer.alloc(0));
    const faceless5 = [0, 1, 2, 3, 4].map(() => desk.frame(faceless));
    await desk.until(() => desk.acks().length === 7);
    const acks = desk.acks();
    const outcome = (seq: number) => acks.filter((a) => a.seq === seq).map((a) => a.outcome);
    expect(outcome(bomb)).toEqual(['refused']);
    expect(outcome(empty)).toEqual(['refused']);
    // Each refusal's ack comes after its error.
    const at = (pred: (m: ServerMessage) => boolean) => desk.messages.findIndex(pred);
    for (const [seq, code] of [
      [bomb, 'frame_too_complex'],
      [empty, 'frame_empty'],
    ] as const) {
      expect(at((m) => m.type === 'error' && m.code === code)).toBeLessThan(
        at((m) => m.type === 'ack' && m.seq === seq),
      );
    }
    // The first faceless frame reaches an idle engine and the last is never replaced: both analysed. Those between
    // are analysed or replaced (latest frame wins), depending on how fast the engine is: either way once.
    expect(outcome(faceless5[0])).toEqual(['analysed']);
    expect(outcome(faceless5[4])).toEqual(['analysed']);
    for (const seq of faceless5) expect(outcome(seq)).toHaveLength(1);
    // The first analysis said no_face before its ack.
    expect(at((m) => m.type === 'guidance' && m.code === 'no_face')).toBeLessThan(
      at((m) => m.type === 'ack' && m.seq === faceless5[0]),
    );
    // The acks agree with the gateway's own counters, and say nothing but what became of the frame.
    const count = (o: AckMessage['outcome']) => acks.filter((a) => a.outcome === o).length;
    expect(count('analysed')).toBe((await metric('faceid_frames_analysed_total')) - before.analysed);
    expect(count('dropped')).toBe((await metric('faceid_frames_dropped_total')) - before.dropped);
    for (const a of acks) expect(Object.keys(a).sort()).toEqual(['outcome', 'seq', 'type']);
    desk.ws.send(JSON.stringify({ type: 'cancel' }));
    expect((await desk.closed).code).toBe(1000);
  });

  it('drops frames above fps.max unread (counted), warns a flooding client, and closes it at its third flood second', async () => {
    const jpeg = faceless;
    const counters = async () => ({
      received: await metric('faceid_frames_received_total'),
      overRate: await metric('faceid_frames_over_rate_total'),
      dropped: await metric('faceid_frames_dropped_total'),
    });
    const before = await counters();
    const desk = await openDesk();
    const started = performance.now();
    // Three bursts of 70 frames (more than 4 x 15 within a second), each at least a second after the server took
    // the previous one: a bad control message after each burst is answered once the burst's frames were taken.
    for (let burst = 0; burst < 3; burst++) {
      for (let k = 0; k < 70; k++) desk.frame(jpeg);
      desk.ws.send('not json');
      const answered = desk.errors().filter((e) => e.code === 'protocol_bad_message').length + 1;
      try {
        await desk.until(() => desk.errors().filter((e) => e.code === 'protocol_bad_message').length === answered);
      } catch {
        break; // closed: the third burst
      }
      if (burst === 0)
        expect(desk.errors().map((e) => e.code)).toEqual(['frame_rate_exceeded', 'protocol_bad_message']);
      if (burst < 2) await new Promise((r) => setTimeout(r, 1000)); // pacing the client, not waiting for an outcome
    }
    expect(await desk.closed).toEqual({ code: 4021, reason: 'frame_rate_exceeded' });
    const seconds = (performance.now() - started) / 1000;
    const after = await counters();
    const received = after.received - before.received;
    const overRate = after.overRate - before.overRate;
    // Every frame up to the one that closed the session: 70 + 70 + the 61st of the third burst; the rest of the
    // third burst was discarded unread by the transport after the close.
    expect(received).toBe(70 + 70 + 61);
    // The gate let through at most its burst of 8 plus 15 a second; everything else was dropped unread.
    expect(received - overRate).toBeGreaterThan(0);
    expect(received - overRate).toBeLessThanOrEqual(8 * 3 + Math.ceil(15 * seconds));
    expect(after.dropped - before.dropped).toBeGreaterThanOrEqual(overRate);
    expect(desk.errors().filter((e) => e.code === 'frame_rate_exceeded')).toHaveLength(1);
    console.log(
      `flood: ${received} frames taken in ${seconds.toFixed(2)} s, ${overRate} dropped unread above fps.max, ${received - overRate} passed`,
    );
  });

  it('a client that asks for acks and floods while reading nothing is closed by the message limit, one ack per frame taken', async () => {
    const limit = loadConfig({}).WS_MESSAGES_PER_SECOND; // this app runs the default
    const engineBefore = engineCalls();
    const closedBefore = await wsErrors('message_rate_exceeded');
    const desk = await openDesk({ ...deskHello(), ack: true });
    desk.ws.pause(); // reads nothing more: whatever the server sends waits in its buffers
    // Ten times the message limit, at once: headers without frame bytes (refused as frame_empty, never near the
    // engine), most of them above fps.max (dropped unread).
    const sent = 10 * limit;
    for (let k = 0; k < sent; k++) desk.frame(Buffer.alloc(0));
    // Waits for the gateway to close the connection (its counter checked every 10 ms, for as long as it takes).
    while ((await wsErrors('message_rate_exceeded')) === closedBefore) await new Promise((r) => setTimeout(r, 10));
    desk.ws.resume();
    expect(await desk.closed).toEqual({ code: 4020, reason: 'message_rate_exceeded' });
    const acks = desk.acks();
    // The frames the gateway took before the limit (the hello used one message of the burst, the bucket refills while
    // they arrive): each acked exactly once, in the order sent, and none after the close.
    expect(acks.length).toBeGreaterThanOrEqual(limit - 1);
    expect(acks.length).toBeLessThan(sent);
    expect(acks.map((a) => a.seq)).toEqual(Array.from({ length: acks.length }, (_, i) => i));
    // A few within fps.max's burst were refused (with their error); the rest were dropped unread.
    const refused = acks.filter((a) => a.outcome === 'refused').length;
    expect(refused).toBe(desk.errors().filter((e) => e.code === 'frame_empty').length);
    expect(refused).toBeGreaterThan(0);
    expect(acks.filter((a) => a.outcome === 'dropped')).toHaveLength(acks.length - refused);
    // Nothing else was queued for it: `ready`, the errors (the refusals and the frame-rate warning) and the acks.
    const others = desk.messages.filter((m) => m.type !== 'ack' && m.type !== 'error' && m.type !== 'ready');
    expect(others).toEqual([]);
    expect(engineCalls()).toBe(engineBefore);
  });
});
