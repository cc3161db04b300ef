import { readFile } from 'node:fs/promises';
import { FaceEngine } from '../engine/engine';
import { EngineError } from '../engine/errors';
import { FULL_STAGES, TRACK_STAGES, type Analysis, type Face } from '../engine/types';
import type { Command, CommandIo, OptionValues } from './main';

const DEFAULT_MAX_FACES = 16;

/** Parses a whole number within [min, max] (numeric flags); undefined when the text is not one. */
export function parseIntInRange(text: string, min: number, max: number): number | undefined {
  if (!/^\s*[+-]?\d+\s*$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
}

/**
 * One output line per image. Embeddings are never printed (biometric templates); landmarks only on request.
 */
export function analysisRecord(file: string, analysis: Analysis, withLandmarks: boolean): Record<string, unknown> {
  return {
    file,
    width: analysis.width,
    height: analysis.height,
    faces: analysis.faces.map((f) => faceRecord(f, withLandmarks)),
    timings: analysis.timings,
  };
}

function faceRecord(face: Face, withLandmarks: boolean): Record<string, unknown> {
  // Pick fields explicitly: anything the engine adds later stays out until it is reviewed here.
  const out: Record<string, unknown> = {
    box: face.box,
    score: face.score,
    primary: face.primary,
    liveness: face.liveness,
    eyes: face.eyes,
    pose: face.pose,
    quality: face.quality,
  };
  if (withLandmarks && face.landmarks) out.landmarks = Array.from(face.landmarks);
  return out;
}

/** A per-file error as printed: engine errors keep their code, file-system errors become file_unreadable. */
export function errorRecord(file: string, err: unknown): { file: string; error: { code: string; message: string } } {
  if (err instanceof EngineError) return { file, error: { code: err.code, message: err.message } };
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string' && typeof e.syscall === 'string') {
    const code = e.code === 'ENOENT' ? 'file_not_found' : 'file_unreadable';
    return { file, error: { code, message: `Cannot read the file (${e.code}).` } };
  }
  return { file, error: { code: 'internal', message: e?.message ?? String(err) } };
}

export const analyzeCommand: Command = {
  name: 'analyze',
  summary: 'Run the face engine on JPEG files and print one JSON line per image.',
  usage: `faceid analyze IMAGE... [--all-stages | --track] [--max-faces N] [--landmarks]

Runs every stage (detect, landmarks, embedding, liveness, eyes, pose, quality) on each JPEG and prints one JSON
line per image: {file, width, height, faces: [{box, score, primary, liveness, eyes, pose, quality}], timings}.
Embeddings are never printed. A file that fails prints {file, error: {code, message}} and the others go on;
the exit code is then 1.

Options:
  --all-stages     Run every stage (the default).
  --track          Run only the per-frame tracking stages (landmarks, eyes, pose, quality).
  --max-faces N    Faces (primary first, then by size) that get the per-face stages, 1-64. Default ${DEFAULT_MAX_FACES}.
  --landmarks      Include the 68 landmarks (x0,y0,x1,y1,... in pixels) of each face.
  -h, --help       Show this help.
`,
  options: {
    'all-stages': { type: 'boolean' },
    track: { type: 'boolean' },
    'max-faces': { type: 'string' },
    landmarks: { type: 'boolean' },
  },
  allowPositionals: true,
  run: runAnalyze,
};

async function runAnalyze(values: OptionValues, files: string[], io: CommandIo): Promise<number> {
  if (files.length === 0) return io.usageError('no IMAGE given.');
  if (values['all-stages'] && values.track) return io.usageError('--all-stages and --track exclude each other.');
  let maxFaces = DEFAULT_MAX_FACES;
  if (values['max-faces'] !== undefined) {
    const n = parseIntInRange(values['max-faces'] as string, 1, 64);
    if (n === undefined) return io.usageError('--max-faces must be a whole number from 1 to 64.');
    maxFaces = n;
  }
  const stages = values.track ? TRACK_STAGES : FULL_STAGES;
  const withLandmarks = values.landmarks === true;

  const engine = await FaceEngine.open({ workers: 1 });
  let failed = 0;
  try {
    // Sequential on purpose: output order = argument order, one frame in memory at a time.
    for (const file of files) {
      try {
        const jpeg = await readFile(file);
        const analysis = await engine.analyze(jpeg, { stages, maxFaces }); // zeroes `jpeg`
        io.out(JSON.stringify(analysisRecord(file, analysis, withLandmarks)));
      } catch (err) {
        failed++;
        io.out(JSON.stringify(errorRecord(file, err)));
      }
    }
  } finally {
    await engine.close();
  }
  return failed > 0 ? 1 : 0;
}
