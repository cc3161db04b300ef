/*
 * One run of the zeroing proof, in its own process (the addon's wipe switch is process-wide):
 *
 *   node --expose-gc -r ts-node/register/transpile-only test/support/zeroing-run.ts <dir> <real|control> <jpeg|bgr>
 *
 * <dir> holds what signature-frames.js wrote. Each frame file of the chosen format is read into one Buffer and
 * deleted; each frame first takes the track path a session takes while the light challenge shows (a copy tracked with
 * the anchor, then another copy in that box reusing those landmarks), then all frames go through engine.full() at
 * once (both workers busy). This process's memory is then
 * scanned for the masked signatures of every kind; the other format's needles double as a negative control, since
 * those frames never enter this process. One format per process: in a mixed run the second batch reuses (and
 * overwrites) the heap blocks the first one freed, which would hide the first batch's leaks from the control.
 * Scans:
 *   held    while the callers' Buffers are still referenced (the engine should have zeroed them: wipeInput);
 *   engine  after the caller has zeroed its Buffers itself, so only copies made by the engine remain;
 *   closed  after engine.close().
 * The primary faces' embeddings become needles too (kind "embedding", masked in this process as soon as they
 * arrive), and the caller wipes them before the scans, as a session does: what is found is the engine's copies.
 * "real" runs the product's defaults. "control" turns every wipe off (unsafeDisableWipe, wipeInput: false) and must
 * find hits: it proves the scan would see a leak. Prints one JSON line on stdout.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FaceEngine } from '../../src/engine/engine';
import { TRACK_STAGES, type Analysis, type AnalyzeOptions, type Stage } from '../../src/engine/types';
import { scanMemory } from './memscan';

interface NeedleIndex {
  mask: number;
  /** Size of the raw frames. */
  width: number;
  height: number;
  needles: { frame: number; kind: string; offset: number; length: number }[];
}

export interface KindCount {
  needles: number;
  /** Needles found at least once. */
  found: number;
  /** Occurrences. */
  hits: number;
  /** Frames with at least one needle found (which frames' data survived). */
  frames: number[];
}

export interface ScanSummary {
  hits: number;
  kinds: Record<string, KindCount>;
  bytesScanned: number;
  regions: number;
  ms: number;
}

export interface RunResult {
  mode: 'real' | 'control';
  format: 'jpeg' | 'bgr';
  frames: number;
  /** Faces found per frame. */
  faces: number[];
  /** Frames whose primary face got an embedding (the whole pipeline ran). */
  embedded: number;
  /** Caller Buffers that were all zeros when engine.full() resolved. */
  callerZeroed: number;
  /** Frames whose second track call reused the first one's landmarks (the reuse path ran). */
  reused: number;
  scans: { baseline: ScanSummary; held: ScanSummary; engine: ScanSummary; closed: ScanSummary };
}

const gc = (globalThis as { gc?: () => void }).gc;
/** Embedding needles: 64 bytes (16 floats) at four places in each 2,048-byte embedding. */
const EMBEDDING_NEEDLE = 64;
const EMBEDDING_SLICES = [0, 512, 1024, 1536];

function frameFiles(dir: string, ext: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith('frame-') && f.endsWith(ext))
    .sort((a, b) => parseInt(a.slice(6), 10) - parseInt(b.slice(6), 10))
    .map((f) => path.join(dir, f));
}

/** One copy per frame: readFileSync reads a regular file straight into the Buffer it returns. */
function readAndDelete(files: string[]): Buffer[] {
  return files.map((f) => {
    const buf = fs.readFileSync(f);
    fs.unlinkSync(f);
    return buf;
  });
}

async function main(): Promise<void> {
  const [dir, mode, format] = process.argv.slice(2);
  if (!dir || (mode !== 'real' && mode !== 'control') || (format !== 'jpeg' && format !== 'bgr')) {
    throw new Error('usage: zeroing-run.ts <dir> <real|control> <jpeg|bgr>');
  }
  const control = mode === 'control';

  // Only masked signatures ever enter this process (see memscan.ts).
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'needles.json'), 'utf8')) as NeedleIndex;
  const bin = fs.readFileSync(path.join(dir, 'needles.bin'));
  const needles = index.needles.map((n) => bin.subarray(n.offset, n.offset + n.length));
  const kinds = index.needles.map((n) => n.kind);
  const frameOf = index.needles.map((n) => n.frame);

  const scan = (): ScanSummary => {
    gc?.(); // drop unreferenced Buffers first: their memory goes back to malloc unwiped
    const r = scanMemory(needles, index.mask);
    const byKind: Record<string, KindCount> = {};
    r.perNeedle.forEach((hits, i) => {
      const k = (byKind[kinds[i]] ??= { needles: 0, found: 0, hits: 0, frames: [] });
      k.needles++;
      k.hits += hits;
      if (hits > 0) {
        k.found++;
        if (!k.frames.includes(frameOf[i])) k.frames.push(frameOf[i]);
      }
    });
    return { hits: r.hits, kinds: byKind, bytesScanned: r.bytesScanned, regions: r.regions, ms: Math.round(r.ms) };
  };

  const baseline = scan();
  const engine = await FaceEngine.open({ workers: 2, unsafeDisableWipe: control });
  const wipeInput = !control;

  const held = readAndDelete(frameFiles(dir, format === 'jpeg' ? '.jpg' : '.bgr'));
  const opts: AnalyzeOptions =
    format === 'jpeg' ? { wipeInput } : { wipeInput, format, width: index.width, height: index.height };
  // The light challenge's path: copies of the frame (the engine wipes each as it wipes the caller's), tracked with the
  // anchor, then tracked again in that box with those landmarks offered for reuse.
  const stages: Stage[] = [...TRACK_STAGES, 'anchor'];
  const tracked = await Promise.all(
    held.map(async (b) => {
      const first = (await engine.track(Buffer.from(b), { ...opts, stages })).faces.find((f) => f.primary);
      if (!first?.landmarks || !first.anchor) return false;
      const reuseLandmarks = { landmarks: first.landmarks, anchor: first.anchor, maxShift: 2 };
      const again = await engine.track(Buffer.from(b), { ...opts, stages, box: first.box, reuseLandmarks });
      return again.faces[0]?.landmarksReused === true;
    }),
  );
  const pending = held.map((b) => engine.full(b, opts)); // the engine copies each frame before this returns
  // Pins the top of the heap above those copies: glibc hands a free block at the top back to the OS, which
  // would hide what is left in it from the scan (in both modes; this makes the scan stricter, never laxer).
  const heapPin = Buffer.alloc(64 * 1024);
  const results: Analysis[] = await Promise.all(pending);
  const callerZeroed = held.filter((b) => b.every((v) => v === 0)).length;
  const embedded = results.filter((a) => a.faces.some((f) => f.primary && f.embedding?.length === 512)).length;
  // The embeddings are biometric data too: masked slices of each become needles, then the caller wipes its copies
  // (as the session does), so any copy the engine kept is what the scans find.
  results.forEach((a, frame) => {
    const e = a.faces.find((f) => f.primary)?.embedding;
    if (!e) return;
    const bytes = new Uint8Array(e.buffer, e.byteOffset, e.byteLength);
    for (const at of EMBEDDING_SLICES) {
      const masked = Buffer.alloc(EMBEDDING_NEEDLE);
      for (let k = 0; k < EMBEDDING_NEEDLE; k++) masked[k] = bytes[at + k] ^ index.mask;
      needles.push(masked);
      kinds.push('embedding');
      frameOf.push(frame);
    }
  });
  for (const a of results) for (const f of a.faces) f.embedding?.fill(0);

  const heldScan = scan();
  for (const b of held) b.fill(0); // the caller's own wipe; a no-op when the engine did it
  const engineScan = scan();
  await engine.close();
  const closedScan = scan();
  heapPin.fill(0); // keeps it referenced until here

  const result: RunResult = {
    mode,
    format,
    frames: held.length,
    faces: results.map((a) => a.faces.length),
    embedded,
    callerZeroed,
    reused: tracked.filter(Boolean).length,
    scans: { baseline, held: heldScan, engine: engineScan, closed: closedScan },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err: Error & { code?: string }) => {
  process.stderr.write(`zeroing-run failed: ${err.code ?? ''} ${err.stack ?? err}\n`);
  process.exit(1);
});
