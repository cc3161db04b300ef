import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { FaceEngine } from '../engine/engine';
import { defaultFixtureDir } from '../engine/models';
import { hashSeed } from '../liveness/pad/random';
import { createModel, MODEL_KINDS, type ModelKind } from '../liveness/pad/render';
import { loadPadFace } from '../liveness/pad/source';
import { parseIntInRange } from './analyze';
import { deskHello, playDesk, realTimeDesk } from './desk';
import type { Command, CommandIo, OptionValues } from './main';

const FIXTURE = 'sample3.jpg';

export const simulateCommand: Command = {
  name: 'simulate',
  summary: 'Play a live face or an attack from a photo over a session WebSocket (demo and walk-through)',
  usage: `faceid simulate --url WS_URL --token TOKEN [--photo FILE] [--fps N] [--mode KIND | --still]
                [--camera-label TEXT] [--no-hello] [--seed N]

Plays a desk in front of a scene model of a photo (docs/liveness.md), over a real WebSocket and in real time: it
sends hello (every challenge: blink, light, turn; a synthetic camera), then 320x240 webcam-like frames stamped with
this machine's clock, shows the light challenge's colours on the simulated screen and reports when they were
painted; the model answers what the server asks. The default model is a live face: lit by the screen, it turns its
head and blinks when asked. Prints every server message as a JSON line. Exit code 0 when a verdict arrived.

Options:
  --url WS_URL         The wsUrl answered by POST /sessions.
  --token TOKEN        The token answered by POST /sessions.
  --photo FILE         A JPEG of the patient. Default: the fixture photo ${FIXTURE} (\`npm run models\`).
  --fps N              Frames per second, 1-60. Default 15.
  --mode KIND          What the camera films: ${MODEL_KINDS.join(', ')}.
                       Default genuine; the others are presentation attacks (expect spoof_suspected).
  --still              Same as --mode still.
  --camera-label TEXT  The camera label the hello reports (e.g. "OBS Virtual Camera": a virtual camera is refused).
                       Default "faceid simulate (synthetic)".
  --no-hello           Send no hello, as a client from before the challenges (refused where a challenge other
                       than the blink is required).
  --seed N             Repeat a model's randomness (0-4294967295). Default: a new one each run.
  -h, --help           Show this help.
`,
  options: {
    url: { type: 'string' },
    token: { type: 'string' },
    photo: { type: 'string' },
    fps: { type: 'string' },
    mode: { type: 'string' },
    still: { type: 'boolean' },
    'camera-label': { type: 'string' },
    'no-hello': { type: 'boolean' },
    seed: { type: 'string' },
  },
  allowPositionals: false,
  run: runSimulate,
};

async function runSimulate(values: OptionValues, _positionals: string[], io: CommandIo): Promise<number> {
  const url = values.url as string | undefined;
  const token = values.token as string | undefined;
  if (!url || !token) return io.usageError('--url and --token are required (from POST /sessions).');
  const fps = values.fps === undefined ? 15 : parseIntInRange(values.fps as string, 1, 60);
  if (fps === undefined) return io.usageError('--fps must be an integer from 1 to 60.');
  const mode = (values.mode as string | undefined) ?? (values.still ? 'still' : 'genuine');
  if (!MODEL_KINDS.includes(mode as ModelKind))
    return io.usageError(`--mode must be one of ${MODEL_KINDS.join(', ')}.`);
  if (values.still && mode !== 'still') return io.usageError('--still is --mode still: give one or the other.');
  const label = values['camera-label'] as string | undefined;
  if (label !== undefined && (label.length === 0 || label.length > 200))
    return io.usageError('--camera-label must be 1-200 characters.');
  if (label !== undefined && values['no-hello'])
    return io.usageError('--camera-label is sent in the hello: not with --no-hello.');
  const seed =
    values.seed === undefined
      ? hashSeed(Date.now(), process.pid)
      : parseIntInRange(values.seed as string, 0, 0xffffffff);
  if (seed === undefined) return io.usageError('--seed must be a whole number from 0 to 4294967295.');

  const photoPath = (values.photo as string | undefined) ?? path.join(defaultFixtureDir(), FIXTURE);
  const photo = await readFile(photoPath).catch(() => null);
  if (!photo) {
    io.err(`faceid simulate: cannot read ${photoPath}${values.photo ? '' : ' (run `npm run models`)'}.\n`);
    return 1;
  }
  const engine = await FaceEngine.open({ workers: 1 });
  const face = await loadPadFace(engine, photo).finally(() => engine.close());
  if (!face) {
    io.err(`faceid simulate: no face found in ${photoPath}.\n`);
    return 1;
  }
  const desk = realTimeDesk(createModel(mode as ModelKind, face.model, { seed }));
  io.err(`playing ${mode} (seed ${seed}) at ${fps} frames/s to ${url} ...\n`);
  const run = await playDesk(url, token, desk, {
    fps,
    hello: values['no-hello'] ? null : deskHello(label),
    onMessage: (m) => io.out(JSON.stringify(m)),
  });
  io.err(`closed with ${run.closeCode} after ${run.framesSent} frames\n`);
  return run.verdict ? 0 : 1;
}
