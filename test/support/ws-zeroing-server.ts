/*
 * The server half of the WebSocket zeroing proof (test/ws.zeroing.test.ts), in its own process:
 *
 *   node --expose-gc -r ts-node/register/transpile-only test/support/ws-zeroing-server.ts <real|control>
 *
 * Started with an IPC channel (child_process.fork). It boots the real app (createApp, SQLite in a temporary
 * folder, the `ws` transport on an ephemeral port), creates a clinic and a workstation key, enrolls one patient from
 * a sample photo, then reports { type: 'ready', port, key, iin }. The test process is the client: it streams signed
 * frames over /ws/identify until the verdict. Its plain frames never enter this process other than through the
 * WebSocket, and the needles it sends here are XOR-masked (see memscan.ts).
 *
 * IPC requests (each answered with one message of the same `type`, or { type: 'error', message }):
 *   { type: 'scan', label, mask, needles: hex, length, kinds: string[], frames: number[] }
 *       collects garbage (global.gc), then scans this process's writable memory for the masked needles;
 *       answers { type: 'scan', label, summary: ScanSummary, analyses, pins, skippedWipes, receiver }.
 *   { type: 'close-app' }   app.close() (HTTP and WebSocket servers, then the engine); answers { type: 'close-app' }.
 *   { type: 'stop' }        removes the temporary folder and exits.
 *
 * Both modes wrap FaceEngine.prototype.analyze to count calls and to allocate a 64 KiB "heap pin" after each one
 * (the engine copies the frame before analyze() returns): glibc gives a free block at the top of the heap back to
 * the OS, which would hide what is left in it from the scan. The pins make the scan stricter, never laxer; the
 * analyze arguments pass through untouched in the real mode. Both modes also count (and only count) the two paths
 * of ws's receiver that copy frame bytes, so the test can check they were taken: a WebSocket frame that arrived in
 * several socket reads (consume() joins them into a new buffer) and a message sent in fragments (joined likewise).
 *
 * "control" turns every wipe off by monkeypatching inside this process only (no configuration or product code changes):
 *   - FaceEngine.open gets `unsafeDisableWipe: true` (the addon's native wipes);
 *   - FaceEngine.prototype.analyze gets `wipeInput: false` (the engine's zeroing of the caller's Buffer);
 *   - Buffer.prototype.fill becomes a no-op for `fill(0)` over a whole Buffer (no offset or end), from just before
 *     the 'ready' report to the end, except while a scan runs (the scanner zeroes its own buffers). Every JS-side
 *     frame wipe on the WebSocket path has that form: the transport's wipes of late or refused messages,
 *     ws-wipe.ts's wipes of the receiver's fragments and multi-read chunks (its own unsafeDisableWsWiping switch is
 *     not needed), and the session's wipes of its message buffers. Typed arrays other than Buffers (embeddings,
 *     templates) keep their own fill. The calls skipped are counted and reported.
 * The control must find the frames' bytes, which proves that the same scan would see a leak in the real run.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { WebSocket } from 'ws';
import { createApp } from '../../src/app.factory';
import { createWorkstation } from '../../src/auth/api-key';
import { loadConfig } from '../../src/config';
import { FaceEngine } from '../../src/engine/engine';
import type { AnalyzeOptions } from '../../src/engine/types';
import { CLINICS, WORKSTATIONS, type ClinicRepository, type WorkstationRepository } from '../../src/storage/ports';
import { VGA, webcamJpeg } from './frames';
import { makeIin } from './iin';
import { scanMemory } from './memscan';
import type { KindCount, ScanSummary } from './zeroing-run';
import { serveZeroingChild } from './zeroing-child';

type Mode = 'real' | 'control';

export interface ScanRequest {
  type: 'scan';
  label: string;
  mask: number;
  /** The masked needles back to back, as hex. */
  needles: string;
  /** Bytes per needle. */
  length: number;
  kinds: string[];
  /** Frame index of each needle. */
  frames: number[];
}

export type ServerRequest = ScanRequest | { type: 'close-app' } | { type: 'stop' };

export interface ReadyReport {
  type: 'ready';
  port: number;
  key: string;
  iin: string;
  /** Milliseconds from process start to ready. */
  bootMs: number;
}

export interface ScanReport {
  type: 'scan';
  label: string;
  summary: ScanSummary;
  /** Engine calls so far, by kind (full = with the embedding stage). */
  analyses: { track: number; full: number };
  /** Heap pins held. */
  pins: number;
  /** Control only: whole-Buffer fill(0) calls that were skipped while armed. */
  skippedWipes: number;
  /** What ws's receivers did: frames copied together from several socket reads, messages joined from fragments. */
  receiver: { multiReadCopies: number; fragmentedMessages: number };
}

export type ServerReport = ReadyReport | ScanReport | { type: 'close-app' } | { type: 'error'; message: string };

const started = Date.now();
const gc = (globalThis as { gc?: () => void }).gc;
const send = (msg: ServerReport): void => {
  process.send?.(msg);
};

const mode = process.argv[2] as Mode;
if (mode !== 'real' && mode !== 'control') {
  process.stderr.write('usage: ws-zeroing-server.ts <real|control> (with an IPC channel)\n');
  process.exit(2);
}
const control = mode === 'control';

// ------------------------------------------------------------------------------------------------------------
// Instrumentation (both modes) and the control mode's wipe switches (this process only).

const pins: Buffer[] = [];
const analyses = { track: 0, full: 0 };

const originalAnalyze = FaceEngine.prototype.analyze;
FaceEngine.prototype.analyze = function (this: FaceEngine, frame: Buffer | Uint8Array, options: AnalyzeOptions = {}) {
  const full = options.stages?.includes('embedding') ?? false;
  if (full) analyses.full++;
  else analyses.track++;
  const result = originalAnalyze.call(this, frame, control ? { ...options, wipeInput: false } : options);
  pins.push(Buffer.alloc(64 * 1024)); // above the engine's copy of this frame (made before analyze returned)
  return result;
};

if (control) {
  const originalOpen = FaceEngine.open.bind(FaceEngine);
  FaceEngine.open = (options = {}) => originalOpen({ ...options, unsafeDisableWipe: true });
}

// Counts (only) the two receiver paths that make copies of frame bytes, so the test knows both were taken.
interface ReceiverInternals {
  _buffers: Buffer[];
  _fragments: Buffer[];
  _fin: boolean;
  consume(n: number): Buffer;
  dataMessage(cb: unknown): void;
}
const receiver = { multiReadCopies: 0, fragmentedMessages: 0 };
const receiverProto = (WebSocket as unknown as { Receiver: { prototype: ReceiverInternals } }).Receiver.prototype;
const originalConsume = receiverProto.consume;
const originalDataMessage = receiverProto.dataMessage;
receiverProto.consume = function (this: ReceiverInternals, n: number): Buffer {
  if (n >= 1024 && this._buffers[0] !== undefined && n > this._buffers[0].length) receiver.multiReadCopies++;
  return originalConsume.call(this, n);
};
receiverProto.dataMessage = function (this: ReceiverInternals, cb: unknown): void {
  if (this._fin && this._fragments.length > 1) receiver.fragmentedMessages++;
  return originalDataMessage.call(this, cb);
};

let armed = false;
let skippedWipes = 0;
const originalFill = Buffer.prototype.fill;
if (control) {
  // `any`: Buffer.prototype.fill has several overloads; this wrapper forwards its arguments unchanged.
  (Buffer.prototype as any).fill = function (this: Buffer, ...args: unknown[]) {
    const [value, offset, end] = args;
    const wholeZero = value === 0 && args.length <= 3 && (offset ?? 0) === 0 && (end ?? this.length) === this.length;
    if (armed && wholeZero) {
      skippedWipes++;
      return this;
    }
    return (originalFill as (...a: unknown[]) => Buffer).apply(this, args);
  };
}

// ------------------------------------------------------------------------------------------------------------

let app: NestExpressApplication | undefined;
let dataDir: string | undefined;

async function boot(): Promise<ReadyReport> {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-ws-zeroing-'));
  const env: Record<string, string | undefined> = {
    ...process.env,
    PORT: '0',
    HOST: '127.0.0.1',
    FACEID_DATA_DIR: dataDir,
    FACEID_BOOTSTRAP: 'false',
    BLINK_WINDOW_MS: '1500',
    SESSION_TIMEOUT_MS: '6000',
    ENGINE_WORKERS: '2',
    WS_TRANSPORT: 'ws',
    LOG_LEVEL: 'warn',
  };
  delete env.DATABASE_URL; // SQLite in the temporary folder, whatever the caller's environment says
  app = await createApp({ config: loadConfig(env) });
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as { port: number }).port;

  const clinic = await app.get<ClinicRepository>(CLINICS).create('Zeroing clinic');
  await app.get<ClinicRepository>(CLINICS).setDeskEnrollment(clinic.id, true); // the desk enrolls the patient below
  const { apiKey: key } = await createWorkstation(
    app.get<WorkstationRepository>(WORKSTATIONS),
    clinic.id,
    'Zeroing desk',
  );

  const iin = makeIin('1985-04-12', 1201);
  const photo = await webcamJpeg(2, { ...VGA });
  const res = await fetch(`http://127.0.0.1:${port}/patients/${iin}/template`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'image/jpeg' },
    body: photo,
  });
  photo.fill(0);
  const text = await res.text();
  if (res.status !== 201) throw new Error(`Enrollment answered ${res.status}: ${text.slice(0, 300)}`);

  armed = control; // from here on, the control's JS wipes are off
  return { type: 'ready', port, key, iin, bootMs: Date.now() - started };
}

function scan(req: ScanRequest): ScanReport {
  const wasArmed = armed;
  armed = false; // the scanner zeroes its own buffers with fill(0)
  try {
    return scanNow(req);
  } finally {
    armed = wasArmed;
  }
}

function scanNow(req: ScanRequest): ScanReport {
  const bin = Buffer.from(req.needles, 'hex');
  const needles: Buffer[] = [];
  for (let at = 0; at + req.length <= bin.length; at += req.length) needles.push(bin.subarray(at, at + req.length));
  if (needles.length !== req.kinds.length || needles.length !== req.frames.length) {
    throw new Error(`scan: ${needles.length} needles, ${req.kinds.length} kinds, ${req.frames.length} frame indexes`);
  }
  gc?.(); // unreferenced Buffers go back to malloc, unwiped: the scan must see what they leave there
  gc?.();
  const r = scanMemory(needles, req.mask);
  const kinds: Record<string, KindCount> = {};
  r.perNeedle.forEach((hits, i) => {
    const k = (kinds[req.kinds[i]] ??= { needles: 0, found: 0, hits: 0, frames: [] });
    k.needles++;
    k.hits += hits;
    if (hits > 0) {
      k.found++;
      if (!k.frames.includes(req.frames[i])) k.frames.push(req.frames[i]);
    }
  });
  for (const k of Object.values(kinds)) k.frames.sort((a, b) => a - b);
  return {
    type: 'scan',
    label: req.label,
    summary: { hits: r.hits, kinds, bytesScanned: r.bytesScanned, regions: r.regions, ms: Math.round(r.ms) },
    analyses: { ...analyses },
    pins: pins.length,
    skippedWipes,
    receiver: { ...receiver },
  };
}

function cleanup(): void {
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  dataDir = undefined;
}

serveZeroingChild({
  send,
  boot,
  scan,
  closeApp: async () => {
    await app?.close();
    app = undefined;
  },
  release: () => {
    pins.length = 0;
  },
  cleanup,
});
