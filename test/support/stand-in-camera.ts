import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BrowserContext } from 'playwright-core';
import sharp from 'sharp';
import { regionAround } from '../../src/cli/bench-engine';
import { closeEyes } from '../../src/cli/synthetic';
import type { FaceEngine } from '../../src/engine';
import { webcamJpeg } from './frames';

/*
 * The stand-in camera for the browser tests: a TEST DOUBLE of a real face lit by the screen (see
 * stand-in-camera.browser.js for what it draws and why). This side makes its frames from the public sample photos
 * (webcam-like crops around one face, with the eyes painted shut for a blink: synthetic test data), finds the face
 * in each for the light to fall on, serves the frames to the test page from a route of the test's own browser
 * context (the gateway never serves them), and injects the script.
 */

/** Where the light falls in one frame: an ellipse over the face (forehead to chin), and the nose tip. Pixels. */
export interface StandInFace {
  cx: number;
  cy: number;
  /** Half-axes: across the face (along the eye line) and down it. */
  rx: number;
  ry: number;
  /** The head's roll: the eye line's angle to the image's x axis, radians. */
  angle: number;
  noseX: number;
  noseY: number;
}

/** The frames of one person: open eyes (small moves), the same with the eyes painted shut, and the faces. */
export interface StandInFrames {
  open: Buffer[];
  closed: Buffer[];
  /** One per open frame (the closed frame k is open frame k with the eyes painted). */
  faces: StandInFace[];
  width: number;
  height: number;
}

/** What the stand-in does. A genuine patient: light and blink. */
export interface StandInBehaviour {
  /** The track's label. Default "Test camera (stand-in)", a normal camera's kind of name. */
  label?: string;
  /** The track's deviceId (the client must send only a hash of it). */
  deviceId?: string;
  /** The face reflects the screen's colours. */
  light: boolean;
  /**
   * Where the light lands: `face` (a face in front of the screen: the face, shaded by its relief, and 1/15 of it on
   * the wall) or `frame` (every pixel evenly: a replayed video under a colour filter, a print filling the view).
   */
  lightOn?: 'face' | 'frame';
  /** The eyes close when the page asks for a blink. */
  blink: boolean;
  /** One frame only, no movement (a photo held up). */
  still?: boolean;
}

/** The full configuration handed to the browser script. */
export interface StandInConfig extends Required<StandInBehaviour> {
  open: string[];
  closed: string[];
  faces: StandInFace[];
  width: number;
  height: number;
  fps: number;
  /** Screen colour x gain is added at the brightest point of the face (0..255 per channel). */
  gain: number;
  /** The wall's share of the face's response. */
  surround: number;
  /** The nose's extra response (a Gaussian bump over the nose tip), relative to the middle of the face. */
  nose: number;
  /** The face ellipsoid's depth / its half-width (1: a head about as deep as it is wide; less: a flatter face). */
  depth: number;
  /** Exponent on Lambert's cosine (1 = a matte face). */
  shadingPower: number;
  /** From the page painting a colour to the camera's frames showing it. */
  lagMs: number;
  reactionMs: number;
  blinkMs: number;
  blinkEveryMs: number;
}

export const STAND_IN_LABEL = 'Test camera (stand-in)';
const ROUTE_PREFIX = '/__stand-in-camera/';
const SCRIPT = fs.readFileSync(path.join(__dirname, 'stand-in-camera.browser.js'), 'utf8');

/** The frame size: what the client sends (320x240), so the client does not scale. */
const WIDTH = 320;
const HEIGHT = 240;

/**
 * The stand-in's frames of sample photo `photo`: 320x240 webcam-like crops around its main face, a little shifted
 * from one to the next (a live person moves), the same with the eyes painted shut, and where the face is in each.
 */
export async function standInFrames(engine: FaceEngine, photo: number): Promise<StandInFrames> {
  // A 640x480 webcam-like picture of the person, then 320x240 crops around the face, as a desk camera would see it.
  const picture = await webcamJpeg(photo, { width: 640, height: 480, faceFraction: 0.3 });
  const found = await engine.analyze(Buffer.from(picture), { stages: [], maxFaces: 0 });
  const main = found.faces.find((f) => f.primary);
  if (!main) throw new Error(`stand-in camera: no face in sample photo ${photo}.`);
  const frames: StandInFrames = { open: [], closed: [], faces: [], width: WIDTH, height: HEIGHT };
  for (const [dx, dy] of [
    [0, 0],
    [0.01, 0],
    [0, 0.01],
    [-0.01, 0.005],
  ]) {
    const r = regionAround(main.box, found.width, found.height);
    const left = Math.max(0, Math.min(found.width - r.width, Math.round(r.left + dx * r.width)));
    const top = Math.max(0, Math.min(found.height - r.height, Math.round(r.top + dy * r.height)));
    const data = await sharp(picture)
      .extract({ left, top, width: r.width, height: r.height })
      .resize(WIDTH, HEIGHT, { fit: 'fill' })
      .removeAlpha()
      .raw()
      .toBuffer();
    const jpeg = (rgb: Buffer) =>
      sharp(rgb, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
        .jpeg({ quality: 85 })
        .toBuffer();
    const open = await jpeg(data);
    const face = (await engine.track(Buffer.from(open))).faces.find((f) => f.primary);
    if (!face?.landmarks) throw new Error(`stand-in camera: the face of photo ${photo} is lost in a 320x240 frame.`);
    const closed = await jpeg(closeEyes({ data, width: WIDTH, height: HEIGHT }, face.landmarks, { lashRows: 1 }).data);
    await expectClosedEyes(engine, closed, photo);
    frames.open.push(open);
    frames.closed.push(closed);
    frames.faces.push(faceEllipse(face.landmarks));
  }
  return frames;
}

/** Both eyes' reading (0 closed .. 1 open) at most this, after the lossy round trip below, or the stand-in refuses. */
const CLOSED_MAX = 0.1;

/**
 * The painted blink must read closed through what the browser does to it (canvas stream, video, the client's JPEG):
 * approximated by a blur and JPEG 50. A closure read half open lets a blink go unseen at some moments and not at
 * others, which made a test that is not about blinking fail now and then.
 */
async function expectClosedEyes(engine: FaceEngine, closed: Buffer, photo: number): Promise<void> {
  const lossy = await sharp(closed).blur(1).jpeg({ quality: 50, chromaSubsampling: '4:2:0' }).toBuffer();
  for (const jpeg of [closed, lossy]) {
    const eyes = (await engine.track(Buffer.from(jpeg))).faces.find((f) => f.primary)?.eyes;
    if (!eyes || Math.max(eyes.left, eyes.right) > CLOSED_MAX) {
      const read = eyes ? `${eyes.left.toFixed(2)}/${eyes.right.toFixed(2)}` : 'no eyes';
      throw new Error(`stand-in camera: the painted blink of photo ${photo} does not read closed (${read}).`);
    }
  }
  lossy.fill(0);
}

/**
 * The ellipse from the 68 landmarks, turned with the head's roll (the eye line): a little wider than jaw to jaw,
 * from above the brows to below the chin.
 */
export function faceEllipse(l: Float32Array): StandInFace {
  const px = (i: number) => l[2 * i];
  const py = (i: number) => l[2 * i + 1];
  const eye = (first: number) => {
    let sx = 0;
    let sy = 0;
    for (let k = 0; k < 6; k++) {
      sx += px(first + k);
      sy += py(first + k);
    }
    return [sx / 6, sy / 6];
  };
  const [lx, ly] = eye(36);
  const [rx, ry] = eye(42);
  const iod = Math.hypot(rx - lx, ry - ly);
  const angle = Math.atan2(ry - ly, rx - lx);
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  // Landmarks in the face's own axes (x along the eye line, y down the face).
  const x = (i: number) => px(i) * cos + py(i) * sin;
  const y = (i: number) => -px(i) * sin + py(i) * cos;
  let brow = Infinity;
  for (let i = 17; i <= 26; i++) brow = Math.min(brow, y(i));
  // A little beyond the face on every side: the edge of the ellipse, where the light falls off, is the edge of the
  // head, not the chin or the forehead the engine measures.
  const top = brow - 1.2 * iod; // about the hairline
  const bottom = y(8) + 0.3 * iod;
  const u = (x(0) + x(16)) / 2;
  const v = (top + bottom) / 2;
  return {
    cx: u * cos - v * sin,
    cy: u * sin + v * cos,
    rx: (Math.abs(x(16) - x(0)) / 2) * 1.1,
    ry: (bottom - top) / 2,
    angle,
    noseX: px(30),
    noseY: py(30),
  };
}

/**
 * Replaces getUserMedia in every page of `context` with the stand-in camera showing `frames`. Call before the
 * context's other init scripts that wrap getUserMedia (they then wrap this one).
 */
export async function useStandInCamera(
  context: BrowserContext,
  frames: StandInFrames,
  behaviour: StandInBehaviour,
): Promise<StandInConfig> {
  const files = new Map<string, Buffer>();
  const url = (name: string, jpeg: Buffer) => {
    files.set(name, jpeg);
    return ROUTE_PREFIX + name;
  };
  const config: StandInConfig = {
    label: behaviour.label ?? STAND_IN_LABEL,
    deviceId: behaviour.deviceId ?? 'a7f3c1e09b2d4c55e8f1a0b3c6d9e2f4a1b7c0d3e6f9a2b5c8d1e4f7a0b3c6d9',
    light: behaviour.light,
    blink: behaviour.blink,
    still: behaviour.still ?? false,
    lightOn: behaviour.lightOn ?? 'face',
    open: frames.open.map((j, i) => url(`open-${i}.jpg`, j)),
    closed: frames.closed.map((j, i) => url(`closed-${i}.jpg`, j)),
    faces: frames.faces,
    width: frames.width,
    height: frames.height,
    fps: 15,
    gain: 0.2,
    surround: 1 / 15,
    nose: 0.3,
    depth: 1,
    shadingPower: 1,
    lagMs: 80,
    reactionMs: 300,
    blinkMs: 250,
    blinkEveryMs: 1200,
  };
  await context.route(
    (u) => u.pathname.startsWith(ROUTE_PREFIX),
    (route) => {
      const body = files.get(new URL(route.request().url()).pathname.slice(ROUTE_PREFIX.length));
      return body ? route.fulfill({ status: 200, contentType: 'image/jpeg', body }) : route.fulfill({ status: 404 });
    },
  );
  await context.addInitScript(`(() => {\n${SCRIPT}\ninstallStandInCamera(${JSON.stringify(config)});\n})()`);
  return config;
}
