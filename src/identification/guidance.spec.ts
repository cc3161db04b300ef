import type { Analysis, Face } from '../engine';
import { assessFrame } from './guidance';

const face = (over: Partial<Face> = {}, box = { x: 100, y: 60, width: 100, height: 120 }): Face => ({
  box,
  score: 0.99,
  primary: true,
  eyes: { left: 0.9, right: 0.9 },
  pose: { yaw: 5, pitch: 2, roll: 0 },
  quality: { faceSize: 34, sharpness: 120, brightness: 120, poseAngle: 5 },
  ...over,
});
const frame = (...faces: Face[]): Analysis => ({ width: 320, height: 240, faces, timings: {} as Analysis['timings'] });

describe('assessFrame', () => {
  it('accepts a good frame', () => {
    expect(assessFrame(frame(face())).problem).toBeNull();
  });

  it('names the first problem a person can fix', () => {
    expect(assessFrame(frame()).problem).toBe('no_face');
    const second = face({ primary: false }, { x: 10, y: 10, width: 90, height: 110 });
    expect(assessFrame(frame(face(), second)).problem).toBe('multiple_faces');
    const small = face({ quality: { faceSize: 15, sharpness: 120, brightness: 120, poseAngle: 5 } });
    expect(assessFrame(frame(small)).problem).toBe('too_far');
    const dark = face({ quality: { faceSize: 34, sharpness: 120, brightness: 30, poseAngle: 5 } });
    expect(assessFrame(frame(dark)).problem).toBe('too_dark');
    const blurry = face({ quality: { faceSize: 34, sharpness: 5, brightness: 120, poseAngle: 5 } });
    expect(assessFrame(frame(blurry)).problem).toBe('blurry');
    expect(assessFrame(frame(face({ pose: { yaw: 50, pitch: 0, roll: 0 } }))).problem).toBe('look_at_camera');
  });

  it('says too_dark when no face is found in a frame too dark to find one in, no_face otherwise', () => {
    const empty = (brightness?: number): Analysis => ({
      ...frame(),
      ...(brightness === undefined ? {} : { brightness }),
    });
    expect(assessFrame(empty(12)).problem).toBe('too_dark');
    expect(assessFrame(empty(29.9)).problem).toBe('too_dark');
    expect(assessFrame(empty(30)).problem).toBe('no_face');
    expect(assessFrame(empty(140)).problem).toBe('no_face');
    // An engine call without the quality stage measures no brightness: nothing to say but no_face.
    expect(assessFrame(empty()).problem).toBe('no_face');
    // With a face found, the face's own brightness decides, not the frame's.
    expect(assessFrame({ ...frame(face()), brightness: 10 }).problem).toBeNull();
  });

  it('lets a small face in the background pass', () => {
    const background = face({ primary: false }, { x: 250, y: 10, width: 30, height: 36 });
    expect(assessFrame(frame(face(), background)).problem).toBeNull();
  });
});
