import type { FaceEngine } from '../../src/engine';
import { patientFrames, playPatient, type Behaviour, type PatientFrames, type PatientRun } from '../../src/cli/simulate';
import { webcamJpeg } from './frames';

export type FaceFrames = PatientFrames;
export type SessionRun = PatientRun;
export type { Behaviour };
export const runPatient = playPatient;

/** A scripted patient's frames from sample photo `photo` (index into the fixture photos). */
export async function faceFrames(engine: FaceEngine, photo: number): Promise<FaceFrames> {
  // A 640x480 crop around the photo's main face; patientFrames cuts 320x240 frames from it, as a webcam would.
  return patientFrames(engine, await webcamJpeg(photo, { width: 640, height: 480, faceFraction: 0.3 }));
}
