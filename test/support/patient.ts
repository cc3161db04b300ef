import { playDesk, realTimeDesk, type PatientRun, type PlayDeskOptions } from '../../src/cli/desk';
import type { FaceEngine } from '../../src/engine';
import { createModel } from '../../src/liveness/pad/render';
import { loadPadFace, type PadFace } from '../../src/liveness/pad/source';
import { webcamJpeg } from './frames';

export type SessionRun = PatientRun;
export type FaceFrames = PadFace;
/** cooperative: a live face (the genuine scene model); still_photo: the still model; silent: no frame at all. */
export type Behaviour = 'cooperative' | 'still_photo' | 'silent';

let sessions = 0;

/**
 * A patient at a desk over a real WebSocket, as `faceid simulate` plays one: hello first (unless `hello: null`), then
 * frames of the scene model in real time, answering the server's challenges. Each session gets its own seed.
 */
export function runPatient(
  url: string,
  token: string,
  face: FaceFrames,
  options: PlayDeskOptions & { behaviour?: Behaviour } = {},
): Promise<SessionRun> {
  const { behaviour = 'cooperative', ...play } = options;
  const seed = 1000 + ++sessions;
  // These tests are about the session's plumbing, so the live face sits at the easy end of the model's ranges: it
  // takes 25% of a white screen's light (the model draws 10-25%; at the weak end the light check refuses a few per
  // cent of live faces), the webcam is the least noisy and least compressed of its range (with the noisiest, the eye
  // model reads some open eyes of these photos below "open"), and a blink asked for is deliberate, 300-450 ms (the
  // model draws 120-300), so a loaded machine that analyses only a few frames a second still sees the eyes shut.
  // The error rates at the hard end are measured, not tested: `faceid pad-eval` and the bench's pad phase (BPCER).
  const model =
    behaviour === 'silent'
      ? null
      : behaviour === 'still_photo'
        ? createModel('still', face.model, { seed })
        : createModel('genuine', face.model, {
            seed,
            lightGain: 0.25,
            camera: { noiseSigma: 2, jpegQuality: 90 },
            promptedBlinkMs: [300, 450],
          });
  return playDesk(url, token, model && realTimeDesk(model), play);
}

/**
 * A patient's face from sample photo `photo` (index into the fixture photos; `face`: which of its faces, FACES
 * order), fitted for the scene models.
 */
export async function faceFrames(
  engine: FaceEngine,
  photo: number,
  face = 0,
  faceFraction = 0.45,
): Promise<FaceFrames> {
  // A 640x480 crop around the face, cut in memory; loadPadFace cuts the desk's 320x240 frame from it, 4 face widths
  // wide, extending the crop's border where it runs out. A tight crop (the face 0.45 of its height) keeps the group
  // photo's neighbours out of that frame (they would read as multiple_faces).
  const jpeg = await webcamJpeg(photo, { width: 640, height: 480, faceFraction, face });
  const fitted = await loadPadFace(engine, jpeg);
  if (!fitted) throw new Error(`No face found in sample photo ${photo}.`);
  return fitted;
}
