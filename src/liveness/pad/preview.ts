/**
 * Writes sample frames of every scene model as PNGs, to look at:
 *   npx ts-node --transpile-only src/liveness/pad/preview.ts OUT_DIR [PHOTO.jpg | --synthetic] [--seed N]
 * Per model: `<kind>.png`, a contact sheet of one session (idle, four colours, the blink, the turn's peak, after),
 * and `<kind>-light.png`: the same moment under a red and under a blue screen and their difference x8 (what the
 * light challenge measures). Without a photo it uses the first sample photo (`npm run models`) and the engine,
 * or the drawn face when neither is there. Images stay in OUT_DIR: never commit them.
 */
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import type { RgbFrame } from '../../cli/synthetic';
import { fitFace, type FaceModel } from './face-model';
import {
  colourSequence,
  constantScreen,
  createModel,
  MODEL_KINDS,
  type ModelKind,
  type Prompts,
  type RenderedFrame,
  type Rgb,
} from './render';
import { padPhotos } from './source';
import { syntheticFace } from './synthetic-face';

const COLOURS: { rgb: Rgb; ms: number }[] = [
  { rgb: [255, 0, 0], ms: 400 },
  { rgb: [0, 255, 0], ms: 400 },
  { rgb: [0, 0, 255], ms: 400 },
  { rgb: [255, 255, 0], ms: 400 },
];
const LIGHT_START = 1000;
const PROMPTS: Prompts = { blinkAt: 3000, turn: { at: 4000, direction: 'left' } };
const SESSION_MS = 7000;
const FPS = 20;

async function loadFace(arg: string | undefined): Promise<{ face: FaceModel; label: string }> {
  if (arg !== '--synthetic') {
    const photo = arg ?? padPhotos()[0]?.file;
    if (photo) {
      const { FaceEngine } = await import('../../engine/engine');
      const { loadPadFace, describeFace } = await import('./source');
      const engine = await FaceEngine.open({ workers: 1 });
      try {
        const f = await loadPadFace(engine, photo);
        if (f) return { face: f.model, label: describeFace(f) };
        process.stderr.write(`no face found in ${photo}; using the drawn face\n`);
      } finally {
        await engine.close();
      }
    }
  }
  const s = syntheticFace();
  return { face: fitFace(s.frame, s.landmarks), label: 'drawn face' };
}

async function sheet(frames: RgbFrame[], labels: string[], cols: number, file: string): Promise<void> {
  const sharp = (await import('sharp')).default;
  const W = frames[0].width,
    H = frames[0].height;
  const rows = Math.ceil(frames.length / cols);
  const tiles = await Promise.all(
    frames.map(async (f, i) => {
      const svg = Buffer.from(
        `<svg width="${W}" height="16"><rect width="${W}" height="16" fill="black" opacity="0.6"/>` +
          `<text x="4" y="12" font-size="12" font-family="sans-serif" fill="white">${labels[i]}</text></svg>`,
      );
      const input = await sharp(f.data, { raw: { width: W, height: H, channels: 3 } })
        .composite([{ input: svg, top: 0, left: 0 }])
        .png()
        .toBuffer();
      return { input, left: (i % cols) * W, top: Math.floor(i / cols) * H };
    }),
  );
  await sharp({ create: { width: cols * W, height: rows * H, channels: 3, background: { r: 0, g: 0, b: 0 } } })
    .composite(tiles)
    .png()
    .toFile(file);
}

function difference(a: RgbFrame, b: RgbFrame, gain: number): RgbFrame {
  const data = Buffer.alloc(a.data.length);
  for (let i = 0; i < data.length; i++) data[i] = Math.min(255, Math.abs(a.data[i] - b.data[i]) * gain);
  return { data, width: a.width, height: a.height };
}

function session(
  kind: ModelKind,
  face: FaceModel,
  seed: number,
  extra?: Record<string, unknown>,
): { frames: RenderedFrame[]; labels: string[] } {
  const model = createModel(kind, face, { seed, ...extra });
  const screen = colourSequence(LIGHT_START, COLOURS);
  const all: RenderedFrame[] = [];
  for (let t = 0; t <= SESSION_MS; t += 1000 / FPS) all.push(model.frameAt(t, screen, PROMPTS));
  const at = (t: number) => all.reduce((best, f) => (Math.abs(f.t - t) < Math.abs(best.t - t) ? f : best));
  const picks: [string, RenderedFrame][] = [['idle', at(600)]];
  COLOURS.forEach((c, i) => picks.push([`rgb(${c.rgb.join(',')})`, at(LIGHT_START + 400 * i + 350)]));
  const blink = all.find((f) => f.t > PROMPTS.blinkAt! && f.truth.eyesClosed) ?? at(PROMPTS.blinkAt! + 500);
  picks.push([blink.truth.eyesClosed ? 'blink' : 'blink prompt +500', blink]);
  const peak = all
    .filter((f) => f.t > PROMPTS.turn!.at)
    .reduce((best, f) => (Math.abs(f.truth.yaw) > Math.abs(best.truth.yaw) ? f : best));
  picks.push([`turn peak yaw ${peak.truth.yaw.toFixed(0)}`, peak]);
  picks.push(['after', at(SESSION_MS)]);
  return { frames: picks.map((p) => p[1]), labels: picks.map(([l, f]) => `${kind} t=${Math.round(f.t)} ${l}`) };
}

async function main(argv: string[]): Promise<number> {
  const out = argv[0];
  if (!out || out.startsWith('-')) {
    process.stderr.write('usage: preview.ts OUT_DIR [PHOTO.jpg | --synthetic] [--seed N]\n');
    return 2;
  }
  const seedAt = argv.indexOf('--seed');
  const seed = seedAt >= 0 ? Number(argv[seedAt + 1]) : 1;
  const photoArg = argv.slice(1).find((a, i, arr) => a !== '--seed' && arr[i - 1] !== '--seed');
  await mkdir(out, { recursive: true });
  const { face, label } = await loadFace(photoArg);
  process.stderr.write(`${label}\n`);
  const kinds: { kind: ModelKind; name: string; extra?: Record<string, unknown> }[] = MODEL_KINDS.map((kind) => ({
    kind,
    name: kind,
  }));
  kinds.push({ kind: 'warped_photo', name: 'warped_photo-bent', extra: { bendRadiusMm: 150 } });
  kinds.push({ kind: 'screen', name: 'screen-recording', extra: { source: 'recording' } });
  kinds.push({ kind: 'tint_injector', name: 'tint_injector-liveish', extra: { base: 'liveish' } });
  for (const { kind, name, extra } of kinds) {
    const s = session(kind, face, seed, extra);
    await sheet(s.frames, s.labels, 4, path.join(out, `${name}.png`));
    // The light test: same seed and times, red vs blue from the start.
    const red = createModel(kind, face, { seed, ...extra });
    const blue = createModel(kind, face, { seed, ...extra });
    let fr: RenderedFrame | null = null,
      fb: RenderedFrame | null = null;
    for (let t = 0; t <= 1500; t += 50) {
      fr = red.frameAt(t, constantScreen([255, 0, 0]), {});
      fb = blue.frameAt(t, constantScreen([0, 0, 255]), {});
    }
    await sheet(
      [fr!, fb!, difference(fr!, fb!, 8)],
      [`${name} red`, `${name} blue`, 'abs(red - blue) x8'],
      3,
      path.join(out, `${name}-light.png`),
    );
    process.stderr.write(`wrote ${name}.png, ${name}-light.png\n`);
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
