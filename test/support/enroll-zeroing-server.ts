/*
 * The server half of the enrollment zeroing proof (test/enrollment.zeroing.test.ts), in its own process:
 *
 *   node --expose-gc -r ts-node/register/transpile-only test/support/enroll-zeroing-server.ts <real|control>
 *
 * Started with an IPC channel (child_process.fork). It boots the real app (createApp, SQLite in a temporary folder)
 * and creates a clinic with an enrollment key, then reports { type: 'ready', port, key }. The test process is the
 * client: it uploads signed reference photos to POST /patients/{iin}/template (a raw image/jpeg body, with and
 * without a Content-Length, and multipart), some over the size limit. The plain photos never enter this process
 * other than through those requests, and the needles it sends here are XOR-masked (see memscan.ts).
 *
 * IPC requests (each answered with one message of the same `type`, or { type: 'error', message }):
 *   { type: 'scan', label, mask, needles: hex, length, kinds: string[], frames: number[] }
 *       collects garbage (global.gc), then scans this process's writable memory for the masked needles;
 *       answers { type: 'scan', label, summary: ScanSummary, analyses, skippedWipes }.
 *   { type: 'close-app' }   app.close(); answers { type: 'close-app' }.
 *   { type: 'stop' }        removes the temporary folder and exits.
 *
 * Both modes wrap FaceEngine.prototype.analyze to count calls and to allocate a 64 KiB "heap pin" after each one
 * (glibc gives a free block at the top of the heap back to the OS, which would hide what is left in it from the
 * scan: the pins make the scan stricter, never laxer).
 *
 * "control" turns every wipe off inside this process only (as ws-zeroing-server.ts does): the addon's native wipes
 * (unsafeDisableWipe, which needs the test build of the addon: see test-addon.ts), the engine's zeroing of the
 * caller's Buffer (wipeInput: false), and every whole-Buffer `fill(0)` from just before the 'ready' report on, except
 * while a scan runs. Every JS-side wipe on the upload path has that form: each request chunk once copied, each
 * outgrown or refused gathering buffer, the multipart storage's chunks, and the uploads once the response is done.
 * The calls skipped are counted and reported. The control must find the photos' bytes, which proves that the same
 * scan would see a leak in the real run.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createApp } from '../../src/app.factory';
import { createEnrollmentKey } from '../../src/auth/enrollment-key';
import { loadConfig } from '../../src/config';
import { FaceEngine } from '../../src/engine/engine';
import type { AnalyzeOptions } from '../../src/engine/types';
import { CLINICS, ENROLLMENT_KEYS, type ClinicRepository, type EnrollmentKeyRepository } from '../../src/storage/ports';
import { scanMemory } from './memscan';
import type { ScanRequest } from './ws-zeroing-server';
import type { KindCount, ScanSummary } from './zeroing-run';
import { serveZeroingChild } from './zeroing-child';

type Mode = 'real' | 'control';

export type EnrollServerRequest = ScanRequest | { type: 'close-app' } | { type: 'stop' };

export interface EnrollReadyReport {
  type: 'ready';
  port: number;
  /** The clinic's enrollment key: it stores a template at once (201). */
  key: string;
  bootMs: number;
}

export interface EnrollScanReport {
  type: 'scan';
  label: string;
  summary: ScanSummary;
  /** Engine calls so far. */
  analyses: number;
  /** Control only: whole-Buffer fill(0) calls that were skipped while armed. */
  skippedWipes: number;
}

export type EnrollServerReport =
  | EnrollReadyReport
  | EnrollScanReport
  | { type: 'close-app' }
  | { type: 'error'; message: string };

const started = Date.now();
const gc = (globalThis as { gc?: () => void }).gc;
const send = (msg: EnrollServerReport): void => {
  process.send?.(msg);
};

const mode = process.argv[2] as Mode;
if (mode !== 'real' && mode !== 'control') {
  process.stderr.write('usage: enroll-zeroing-server.ts <real|control> (with an IPC channel)\n');
  process.exit(2);
}
const control = mode === 'control';

// ------------------------------------------------------------------------------------------------------------
// Instrumentation (both modes) and the control mode's wipe switches (this process only).

const pins: Buffer[] = [];
let analyses = 0;

const originalAnalyze = FaceEngine.prototype.analyze;
FaceEngine.prototype.analyze = function (this: FaceEngine, frame: Buffer | Uint8Array, options: AnalyzeOptions = {}) {
  analyses++;
  const result = originalAnalyze.call(this, frame, control ? { ...options, wipeInput: false } : options);
  pins.push(Buffer.alloc(64 * 1024)); // above the engine's copy of this photo (made before analyze returned)
  return result;
};

if (control) {
  const originalOpen = FaceEngine.open.bind(FaceEngine);
  FaceEngine.open = (options = {}) => originalOpen({ ...options, unsafeDisableWipe: true });
}

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

async function boot(): Promise<EnrollReadyReport> {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-enroll-zeroing-'));
  const env: Record<string, string | undefined> = {
    ...process.env,
    PORT: '0',
    HOST: '127.0.0.1',
    FACEID_DATA_DIR: dataDir,
    FACEID_BOOTSTRAP: 'false',
    ENGINE_WORKERS: '1',
    RATE_LIMIT_PER_MINUTE: '100000',
    LOG_LEVEL: 'warn',
  };
  delete env.DATABASE_URL; // SQLite in the temporary folder, whatever the caller's environment says
  app = await createApp({ config: loadConfig(env) });
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as { port: number }).port;
  const clinic = await app.get<ClinicRepository>(CLINICS).create('Enrollment zeroing clinic');
  const { apiKey: key } = await createEnrollmentKey(
    app.get<EnrollmentKeyRepository>(ENROLLMENT_KEYS),
    clinic.id,
    'Registry',
  );
  armed = control; // from here on, the control's JS wipes are off
  return { type: 'ready', port, key, bootMs: Date.now() - started };
}

function scan(req: ScanRequest): EnrollScanReport {
  const wasArmed = armed;
  armed = false; // the scanner zeroes its own buffers with fill(0)
  try {
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
      analyses,
      skippedWipes,
    };
  } finally {
    armed = wasArmed;
  }
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
