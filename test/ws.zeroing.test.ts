import { randomBytes } from 'node:crypto';
import { execFile, fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import type { Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import WebSocket from 'ws';
import { encodeFrameMessage } from '../src/transport/protocol';
import { describeZeroing, found, leaks, missingAssets } from './support/assets';
import { faceCrop, fixturePhotos, QVGA } from './support/frames';
import { controlRunEnv } from './support/test-addon';
import type { ReadyReport, ScanReport, ServerReport, ServerRequest } from './support/ws-zeroing-server';

/*
 * The zeroing proof over the service's real WebSocket path: no byte of a frame sent to /ws/identify survives in the
 * server's memory once the session has ended.
 *
 * The server runs in a child process (test/support/ws-zeroing-server.ts): the real app with SQLite, a clinic, a
 * workstation key and an enrolled patient, and the default challenges (light, blink). This process is the client: it has a third process write frames with
 * random signature blocks (signature-frames.js), opens a session over HTTP, streams the frames over the WebSocket
 * until the verdict and the close (each frame goes out whole, in fragments, and split across socket reads: see
 * runSession), then asks the server to scan its own writable memory for the signatures: the frames' JPEG bytes and
 * decoded pixel rows (BGR, and libjpeg's luma rows). Scans run before the session (no false positives), after the
 * verdict and close, and after app.close(). The plain frames exist only here and in what the server received; the
 * server gets the needles XOR-masked. Raw BGR rows are never sent, so their needles must never be found.
 *
 * The client masks its WebSocket frames with a random key, as every browser must (RFC 6455). So the scan sees every
 * plain copy the server makes (ws's unmasked fragments and joined messages, the session's buffers, the engine's
 * copies) but not the raw socket reads, which hold masked bytes. With an all-zero key those raw reads become visible
 * too: run that way, Node's socket layer was seen to keep the last few KB it read (about 1 run in 4 under CPU load),
 * until later traffic overwrote them. That residue is masked, not erased (the key sits beside it): a documented limit
 * (README, "Privacy on the WebSocket path"), not something this test can fix.
 *
 * The control run has every wipe switched off inside the server child only (see ws-zeroing-server.ts) and must find
 * the signatures: proof that the scan would see a leak. The real run must find none, of any kind.
 */

const execFileP = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');
const SUPPORT = path.join(__dirname, 'support');
const FRAMES = 8; // several: glibc returns the first large freed block to the OS, which alone could hide a leak
/** How a frame goes out: one WebSocket frame; three fragments; one WebSocket frame written in two TCP writes. */
const WAYS = ['whole', 'fragments', 'split'] as const;
type Way = (typeof WAYS)[number];
const FPS = 15; // the protocol's maximum: more frames within the blink window
const FRAGMENTS = 3;
const SPLIT_PAUSE_MS = 15;
const FACE_PHOTO = 2; // sample3.jpg: one frontal face, eyes open

const skipReason = missingAssets();
const describeWs = describeZeroing('WebSocket zeroing test');

interface Needles {
  mask: number;
  /** Masked needles back to back, hex. */
  hex: string;
  length: number;
  kinds: string[];
  frames: number[];
}

interface FrameSet {
  dir: string;
  jpegs: Buffer[];
  needles: Needles;
}

/** Writes FRAMES signed frames in a child process and reads the JPEGs (plain) and the needles (masked). */
async function generate(seed: number, dirs: string[]): Promise<FrameSet> {
  // One face whose eyes read open in every frame (a still photo never blinks), so the session runs until its blink
  // window has passed; another zoom and shift for each frame, so no two frames share their pixels.
  const photo = fixturePhotos()[FACE_PHOTO];
  const meta = await sharp(photo).metadata();
  const size = { width: meta.width ?? 0, height: meta.height ?? 0 };
  const frames = [];
  for (let i = 0; i < FRAMES; i++) {
    const rect = faceCrop(photo, size, { ...QVGA, faceFraction: 0.36 + 0.02 * i, shiftX: ((i % 3) - 1) * 0.02 });
    frames.push({ photo, rect });
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-ws-frames-'));
  dirs.push(dir);
  const spec = { out: dir, seed, width: QVGA.width, height: QVGA.height, frames };
  await execFileP(process.execPath, [path.join(SUPPORT, 'signature-frames.js'), JSON.stringify(spec)], { cwd: ROOT });
  const jpegs = frames.map((_, i) => fs.readFileSync(path.join(dir, `frame-${i}.jpg`)));
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'needles.json'), 'utf8')) as {
    mask: number;
    needles: { frame: number; kind: string; offset: number; length: number }[];
  };
  const bin = fs.readFileSync(path.join(dir, 'needles.bin'));
  const length = index.needles[0].length;
  if (index.needles.some((n, i) => n.length !== length || n.offset !== i * length)) {
    throw new Error('Unexpected needle layout in needles.json.');
  }
  fs.rmSync(dir, { recursive: true, force: true }); // the plain frames stay in this process only
  return {
    dir,
    jpegs,
    needles: {
      mask: index.mask,
      hex: bin.toString('hex'),
      length,
      kinds: index.needles.map((n) => n.kind),
      frames: index.needles.map((n) => n.frame),
    },
  };
}

/** The server child, driven over IPC. */
class ServerChild {
  private readonly child: ChildProcess;
  private output = '';
  private exited: string | null = null;
  private readonly waiters: { resolve: (m: ServerReport) => void; reject: (e: Error) => void }[] = [];

  constructor(readonly mode: 'real' | 'control') {
    this.child = fork(path.join(SUPPORT, 'ws-zeroing-server.ts'), [mode], {
      cwd: ROOT,
      execArgv: ['--expose-gc', '-r', require.resolve('ts-node/register/transpile-only')],
      env: mode === 'control' ? controlRunEnv() : process.env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString('utf8')).slice(-8000);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.child.on('message', (m: ServerReport) => {
      const w = this.waiters.shift();
      if (!w) return;
      if (m.type === 'error')
        w.reject(new Error(`${mode} server: ${m.message}\n--- server output ---\n${this.output}`));
      else w.resolve(m);
    });
    this.child.on('exit', (code, signal) => {
      this.exited = `exited with ${code ?? signal}`;
      const err = new Error(`${mode} server ${this.exited}\n--- server output ---\n${this.output}`);
      for (const w of this.waiters.splice(0)) w.reject(err);
    });
  }

  /** The next report from the child (the first one is 'ready'). */
  next<T extends ServerReport>(type: T['type'], timeoutMs: number): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.mode} server ${this.exited}\n${this.output}`));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.mode} server: no '${type}' within ${timeoutMs} ms\n${this.output}`)),
        timeoutMs,
      );
      this.waiters.push({
        resolve: (m) => {
          clearTimeout(timer);
          if (m.type !== type) reject(new Error(`${this.mode} server: expected '${type}', got '${m.type}'`));
          else resolve(m as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  request<T extends ServerReport>(msg: ServerRequest, timeoutMs = 30_000): Promise<T> {
    const reply = this.next<T>(msg.type as T['type'], timeoutMs);
    this.child.send(msg);
    return reply;
  }

  scan(label: string, n: Needles): Promise<ScanReport> {
    const { mask, hex, length, kinds, frames } = n;
    return this.request<ScanReport>({ type: 'scan', label, mask, needles: hex, length, kinds, frames });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    if (this.child.connected) this.child.send({ type: 'stop' } satisfies ServerRequest);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }
}

interface ClientRun {
  verdict: Record<string, unknown> | null;
  closeCode: number;
  sent: number;
  /** Frames sent each way. */
  ways: Record<Way, number>;
  /** Guidance and error codes received, in order. */
  codes: string[];
}

/** A final binary WebSocket frame, masked with a random key as a browser does. */
function maskedFrame(payload: Buffer): Buffer {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + ext + 4); // the last 4 bytes: the masking key
  head[0] = 0x82; // FIN, binary
  head[1] = 0x80 | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) head.writeUInt16BE(len, 2);
  if (ext === 8) head.writeBigUInt64BE(BigInt(len), 2);
  const key = randomBytes(4);
  key.copy(head, 2 + ext);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([head, body]);
}

/**
 * One session over the WebSocket: the FRAMES frames in turn at FPS until the server sends its verdict and closes.
 * Frame i goes out the way WAYS[(i + round) % 3], so each frame goes each way within three rounds:
 * - whole: one WebSocket frame (usually one socket read on the server);
 * - fragments: a message in FRAGMENTS WebSocket fragments, which ws joins into a new buffer;
 * - split: one WebSocket frame written to the socket in two halves SPLIT_PAUSE_MS apart, so the server reads it in
 *   two reads and ws copies it together (written raw: ws itself writes a frame in one go).
 */
async function runSession(ready: ReadyReport, jpegs: Buffer[]): Promise<ClientRun> {
  const base = `http://127.0.0.1:${ready.port}`;
  const res = await fetch(`${base}/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ready.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ iin: ready.iin, appointmentId: `apt-zeroing-${Date.now()}`, channel: 'in_person' }),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`POST /sessions answered ${res.status}: ${text.slice(0, 500)}`);
  const body = JSON.parse(text) as { sessionId: string; wsUrl: string; token: string; protocols: string[] };

  return new Promise<ClientRun>((resolve, reject) => {
    const ws = new WebSocket(body.wsUrl, body.protocols, {
      perMessageDeflate: false,
    });
    const run: ClientRun = {
      verdict: null,
      closeCode: 0,
      sent: 0,
      ways: { whole: 0, fragments: 0, split: 0 },
      codes: [],
    };
    let timer: NodeJS.Timeout | undefined;
    let splitting = false;
    const guard = setTimeout(() => {
      ws.terminate();
      reject(new Error(`The session did not end in time: ${JSON.stringify(run)}`));
    }, 20_000);

    const sendFrame = () => {
      if (ws.readyState !== WebSocket.OPEN || splitting) return;
      const i = run.sent;
      const way = WAYS[(i + Math.floor(i / FRAMES)) % WAYS.length];
      const msg = encodeFrameMessage({ format: 'jpeg', seq: i, captureTime: Date.now() }, jpegs[i % FRAMES]);
      if (way === 'fragments') {
        const step = Math.ceil(msg.length / FRAGMENTS);
        for (let k = 0; k < FRAGMENTS; k++) {
          ws.send(msg.subarray(k * step, Math.min(msg.length, (k + 1) * step)), {
            binary: true,
            fin: k === FRAGMENTS - 1,
          });
        }
      } else if (way === 'split') {
        // Nothing else may reach the socket between the halves. ws's sender is idle between ticks (no compression,
        // nothing queued, and sendFrame waits), and reading is paused: ws answers a close frame from the server
        // with its own at once, which would land inside this frame.
        const socket = (ws as unknown as { _socket?: Socket })._socket;
        if (!socket) throw new Error("ws's client socket is not where this test expects it (ws._socket).");
        const wire = maskedFrame(msg);
        const cut = Math.floor(wire.length / 2);
        splitting = true;
        socket.pause();
        socket.write(wire.subarray(0, cut));
        setTimeout(() => {
          if (!socket.destroyed) socket.write(wire.subarray(cut));
          socket.resume();
          splitting = false;
        }, SPLIT_PAUSE_MS);
      } else {
        ws.send(msg, { binary: true });
      }
      run.ways[way]++;
      run.sent++;
    };

    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const m = JSON.parse(data.toString()) as Record<string, unknown>;
      if (m.type === 'ready') {
        // A client of the challenges says so before its first frame (else the light's workstation refuses it at
        // once: client_unsupported). It never shows the colours nor blinks: the session ends as a spoof, after
        // frames have gone every way. This is a test of memory, not liveness.
        ws.send(JSON.stringify({ type: 'hello', client: 'zeroing-test', capabilities: ['blink', 'light'] }));
        timer ??= setInterval(sendFrame, 1000 / FPS);
      } else if (m.type === 'guidance' || m.type === 'error') run.codes.push(String(m.code));
      else if (m.type === 'verdict') run.verdict = m;
    });
    ws.on('close', (code) => {
      clearInterval(timer);
      clearTimeout(guard);
      run.closeCode = code;
      resolve(run);
    });
    ws.on('error', (err) => {
      clearInterval(timer);
      clearTimeout(guard);
      reject(err);
    });
  });
}

/** One line per scan: found/needles (hits) per kind. */
function table(r: ScanReport): string {
  const kinds = Object.entries(r.summary.kinds)
    .map(
      ([k, c]) =>
        `${k} ${c.found}/${c.needles} (${c.hits} hits${c.frames.length ? `, frames ${c.frames.join(',')}` : ''})`,
    )
    .join('; ');
  const { bytesScanned, regions, ms } = r.summary;
  return `  ${r.label.padEnd(8)} ${kinds}  [${(bytesScanned / 2 ** 20).toFixed(0)} MiB, ${regions} mappings, ${ms} ms]`;
}

interface Outcome {
  run: ClientRun;
  baseline: ScanReport;
  session: ScanReport;
  closed: ScanReport;
  bootMs: number;
}

/** A whole run: boot the server child, scan (baseline), stream a session, scan, close the app, scan. */
async function zeroingRun(mode: 'real' | 'control', frames: FrameSet): Promise<Outcome> {
  const server = new ServerChild(mode);
  try {
    const ready = await server.next<ReadyReport>('ready', 60_000);
    const baseline = await server.scan('baseline', frames.needles);
    const run = await runSession(ready, frames.jpegs);
    const session = await server.scan('session', frames.needles);
    await server.request({ type: 'close-app' });
    const closed = await server.scan('closed', frames.needles);
    const v = run.verdict;
    console.log(
      `WebSocket zeroing, ${mode}: boot ${ready.bootMs} ms; ${run.sent} frames sent (${JSON.stringify(run.ways)}); ` +
        `server receiver: ${JSON.stringify(session.receiver)}; verdict ${v?.result} ${JSON.stringify(v?.timings)}; ` +
        `close ${run.closeCode}; engine calls ` +
        `${session.analyses.track} track + ${session.analyses.full} full; guidance ${[...new Set(run.codes)].join(',')}` +
        `${mode === 'control' ? `; JS wipes skipped ${session.skippedWipes}` : ''}\n` +
        [baseline, session, closed].map(table).join('\n'),
    );
    return { run, baseline, session, closed, bootMs: ready.bootMs };
  } finally {
    await server.stop();
  }
}

/** The session really ran: frames went out every way, were analysed, and a verdict closed it. */
function expectSessionRan(o: Outcome): void {
  expect(o.run.verdict).not.toBeNull();
  // No light report, eyes open throughout: spoof_suspected (light_not_shown or no_blink), or timeout. Either ends it.
  expect(['spoof_suspected', 'timeout']).toContain(o.run.verdict!.result);
  expect(o.run.closeCode).toBe(1000);
  expect(o.run.sent).toBeGreaterThanOrEqual(2 * FRAMES);
  for (const way of WAYS) expect(o.run.ways[way]).toBeGreaterThanOrEqual(4);
  // The server's receiver took both copying paths: joined fragments, and frames gathered from several reads.
  expect(o.session.receiver.fragmentedMessages).toBeGreaterThanOrEqual(1);
  expect(o.session.receiver.multiReadCopies).toBeGreaterThanOrEqual(1);
  const timings = o.run.verdict!.timings as { framesReceived: number; framesAnalysed: number };
  expect(timings.framesAnalysed).toBeGreaterThanOrEqual(FRAMES);
  expect(o.session.analyses.track).toBeGreaterThan(0);
  expect(o.session.analyses.track + o.session.analyses.full).toBeGreaterThanOrEqual(timings.framesAnalysed);
}

describeWs('WebSocket zeroing: no frame byte survives a session in the server', () => {
  const dirs: string[] = [];
  let realFrames: FrameSet;
  let controlFrames: FrameSet;

  beforeAll(async () => {
    if (skipReason) throw new Error(skipReason);
    realFrames = await generate(21, dirs);
    controlFrames = await generate(22, dirs);
  }, 60_000);

  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    for (const set of [realFrames, controlFrames]) for (const j of set?.jpegs ?? []) j.fill(0);
  });

  it('real: after the verdict, and after close, no JPEG byte or decoded row is left', async () => {
    const o = await zeroingRun('real', realFrames);
    expectSessionRan(o);
    expect(leaks(o.baseline.summary)).toEqual({});
    expect(leaks(o.session.summary)).toEqual({});
    expect(leaks(o.closed.summary)).toEqual({});
  }, 90_000);

  it('control (every wipe off in the server): the same scan finds the JPEG bytes and decoded rows', async () => {
    const o = await zeroingRun('control', controlFrames);
    expectSessionRan(o);
    expect(o.session.skippedWipes).toBeGreaterThan(0);
    expect(leaks(o.baseline.summary)).toEqual({}); // nothing before the frames: no false positives
    expect(found(o.session.summary, 'jpeg-bytes')).toBeGreaterThan(0);
    expect(found(o.session.summary, 'jpeg-row-bgr') + found(o.session.summary, 'jpeg-row-y')).toBeGreaterThan(0);
    // Raw frames never went to the server: their rows must not be found.
    expect(o.session.summary.kinds['raw-row-bgr'].hits).toBe(0);
  }, 90_000);
});
