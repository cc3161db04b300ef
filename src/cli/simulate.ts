import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import WebSocket from 'ws';
import { FaceEngine } from '../engine/engine';
import { defaultFixtureDir } from '../engine/models';
import { encodeFrameMessage, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from '../transport/protocol';
import { regionAround } from './bench-engine';
import type { Command, CommandIo, OptionValues } from './main';
import { parseIntInRange } from './analyze';
import { closeEyes } from './synthetic';

/** Open-eyed frames of a face and the same frames with the eyes painted shut. */
export interface PatientFrames {
  open: Buffer[];
  closed: Buffer[];
}

export type Behaviour = 'cooperative' | 'still_photo' | 'silent';

export interface PatientRun {
  messages: Array<Record<string, unknown>>;
  verdict: Record<string, unknown> | null;
  closeCode: number;
  framesSent: number;
  /** Wall time from the first frame sent to the verdict received, ms. */
  firstFrameToVerdictMs: number | null;
}

/**
 * 320x240 JPEG frames cut around the main face of a photo, a little shifted from one to the next (a live person
 * moves), plus the same with a synthetic blink. Needs `sharp` (a devDependency) and the engine for landmarks.
 */
export async function patientFrames(engine: FaceEngine, photo: Buffer): Promise<PatientFrames> {
  const sharp = (await import('sharp')).default;
  const meta = await sharp(photo).metadata();
  const W = meta.width ?? 0;
  const H = meta.height ?? 0;
  const found = await engine.analyze(Buffer.from(photo), { stages: [], maxFaces: 0 });
  const face = found.faces.find((f) => f.primary);
  if (!face) throw new Error('No face found in the photo.');
  const frames: PatientFrames = { open: [], closed: [] };
  for (const [dx, dy] of [
    [0, 0],
    [0.01, 0],
    [0, 0.01],
    [-0.01, 0.005],
  ]) {
    const r = regionAround(face.box, W, H);
    const left = Math.max(0, Math.min(W - r.width, Math.round(r.left + dx * r.width)));
    const top = Math.max(0, Math.min(H - r.height, Math.round(r.top + dy * r.height)));
    const data = await sharp(photo)
      .extract({ left, top, width: r.width, height: r.height })
      .resize(320, 240, { fit: 'fill' })
      .removeAlpha()
      .raw()
      .toBuffer();
    const rgb = { data, width: 320, height: 240 };
    const jpeg = (f: typeof rgb) => sharp(f.data, { raw: { width: 320, height: 240, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
    const open = await jpeg(rgb);
    const a = await engine.track(Buffer.from(open));
    const primary = a.faces.find((f) => f.primary);
    if (!primary?.landmarks) throw new Error('The face is lost in the 320x240 frame.');
    frames.open.push(open);
    frames.closed.push(await jpeg(closeEyes(rgb, primary.landmarks)));
  }
  return frames;
}

/**
 * A patient in front of the webcam, over a real WebSocket: streams frames at `fps`, blinks (eyes shut 250 ms) when
 * the server says `blink_now` (unless a still photo), and collects every message until the server closes.
 */
export function playPatient(
  url: string,
  token: string,
  frames: PatientFrames,
  options: { behaviour?: Behaviour; fps?: number; origin?: string; timeoutMs?: number; onMessage?: (m: Record<string, unknown>) => void } = {},
): Promise<PatientRun> {
  const behaviour = options.behaviour ?? 'cooperative';
  const fps = options.fps ?? 10;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + token], {
      origin: options.origin,
      perMessageDeflate: false,
    });
    const run: PatientRun = { messages: [], verdict: null, closeCode: 0, framesSent: 0, firstFrameToVerdictMs: null };
    let seq = 0;
    let closedUntil = 0;
    let firstAt = 0;
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => {
      ws.terminate();
      reject(new Error('The session did not end in time.'));
    }, options.timeoutMs ?? 120_000);

    const sendFrame = () => {
      if (ws.readyState !== WebSocket.OPEN) return;
      let jpeg: Buffer;
      if (behaviour === 'still_photo') jpeg = frames.open[0];
      else if (performance.now() < closedUntil) jpeg = frames.closed[seq % frames.closed.length];
      else jpeg = frames.open[seq % frames.open.length];
      firstAt ||= performance.now();
      ws.send(encodeFrameMessage({ format: 'jpeg', seq: seq++, captureTime: Date.now() }, jpeg));
      run.framesSent++;
    };

    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const msg = JSON.parse(data.toString()) as Record<string, unknown>;
      run.messages.push(msg);
      options.onMessage?.(msg);
      if (msg.type === 'ready' && behaviour !== 'silent') timer = setInterval(sendFrame, 1000 / fps);
      if (msg.type === 'guidance' && msg.code === 'blink_now' && behaviour === 'cooperative') {
        closedUntil = performance.now() + BLINK_MS;
      }
      if (msg.type === 'verdict') {
        run.verdict = msg;
        if (firstAt) run.firstFrameToVerdictMs = performance.now() - firstAt;
      }
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

const FIXTURE = 'sample3.jpg';
/** How long a blink keeps the eyes shut (a real one takes 100-400 ms). */
const BLINK_MS = 250;

export const simulateCommand: Command = {
  name: 'simulate',
  summary: 'Play a patient from a photo over a session WebSocket (demo and walk-through)',
  usage: `Usage: faceid simulate --url WS_URL --token TOKEN [--photo FILE] [--fps N] [--still]

Streams 320x240 webcam-like frames cut from a photo of one person to an identification session, blinks when the
server asks (a synthetic blink: the eyes are painted shut for 250 ms), and prints every server message as a JSON
line. Exit code 0 when a verdict arrived.

Options:
  --url WS_URL   The wsUrl answered by POST /sessions.
  --token TOKEN  The token answered by POST /sessions.
  --photo FILE   A JPEG of the patient. Default: the fixture photo ${FIXTURE} (\`npm run models\`).
  --fps N        Frames per second, 1-60. Default 10.
  --still        Behave like a still photo: never blink (expect spoof_suspected).
  -h, --help     Show this help.
`,
  options: {
    url: { type: 'string' },
    token: { type: 'string' },
    photo: { type: 'string' },
    fps: { type: 'string' },
    still: { type: 'boolean' },
  },
  allowPositionals: false,
  run: runSimulate,
};

async function runSimulate(values: OptionValues, _positionals: string[], io: CommandIo): Promise<number> {
  const url = values.url as string | undefined;
  const token = values.token as string | undefined;
  if (!url || !token) return io.usageError('--url and --token are required (from POST /sessions).');
  const fps = values.fps === undefined ? 10 : parseIntInRange(values.fps as string, 1, 60);
  if (fps === undefined) return io.usageError('--fps must be an integer from 1 to 60.');
  const photoPath = (values.photo as string | undefined) ?? path.join(defaultFixtureDir(), FIXTURE);
  const photo = await readFile(photoPath).catch(() => null);
  if (!photo) {
    io.err(`faceid simulate: cannot read ${photoPath}${values.photo ? '' : ' (run `npm run models`)'}.\n`);
    return 1;
  }
  const engine = await FaceEngine.open({ workers: 1 });
  let frames: PatientFrames;
  try {
    frames = await patientFrames(engine, photo);
  } finally {
    await engine.close();
  }
  io.err(`streaming ${fps} frames/s to ${url} ...\n`);
  const run = await playPatient(url, token, frames, {
    fps,
    behaviour: values.still ? 'still_photo' : 'cooperative',
    onMessage: (m) => io.out(JSON.stringify(m)),
  });
  io.err(`closed with ${run.closeCode} after ${run.framesSent} frames\n`);
  return run.verdict ? 0 : 1;
}
