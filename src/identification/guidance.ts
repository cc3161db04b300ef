import type { Analysis, Face } from '../engine';
import type { GuidanceCode } from '../transport/protocol';

/** What the patient should do next, shown by the client (the wire's codes: GUIDANCE_CODES). */
export type { GuidanceCode };

export interface GuidanceThresholds {
  /** Inter-ocular distance in pixels below which the face is too far (or the frame too small). */
  minFaceSize: number;
  /** Mean grey level of the face below which it is too dark. */
  minBrightness: number;
  /** Mean grey level of the whole frame below which a frame without a face is too dark (not `no_face`). */
  minFrameBrightness: number;
  /** Laplacian variance of the aligned face below which it is blurry. */
  minSharpness: number;
  /** Largest |yaw| / |pitch| in degrees that still counts as looking at the camera. */
  maxYaw: number;
  maxPitch: number;
  /** A second face this large relative to the primary one (area) means two people are in front of the camera. */
  secondFaceRatio: number;
}

// Measured on webcam-like 320x240 frames of the sample photos: a seated patient gives an inter-ocular distance of
// 31-37 px, brightness 87-150 and sharpness 48-448. Pose comes from a 3D fit of the landmarks (a face and its mirror
// image read the same |yaw| within 3 degrees on the labelled set), so a turn of more than 25 degrees is a turn.
// The whole frame: the twelve faces of the sample photos, at 320x240 and 640x480, their pixels darkened step by step
// (x0.7 down to x0.06): the detector lost each face once the frame's mean grey level fell to 4-21 (the face's own
// 10-22, long after `too_dark` from minBrightness), while the undarkened frames read 45-149. 30 catches every lost
// face with a margin and leaves the darkest ordinary frame (a dark background, its face well lit) 15 levels above.
export const DEFAULT_GUIDANCE: GuidanceThresholds = {
  minFaceSize: 24,
  minBrightness: 50,
  minFrameBrightness: 30,
  minSharpness: 15,
  maxYaw: 25,
  maxPitch: 30,
  secondFaceRatio: 0.5,
};

export interface FrameAssessment {
  /** null when the frame is good enough to identify from. */
  problem: Exclude<
    GuidanceCode,
    'hold_still' | 'blink_now' | 'blink_again' | 'watch_screen' | 'turn_left' | 'turn_right'
  > | null;
  face: Face | null;
}

/** Judges one analysed frame: the first problem found, in the order a person can fix them. */
export function assessFrame(a: Analysis, t: GuidanceThresholds = DEFAULT_GUIDANCE): FrameAssessment {
  const face = a.faces.find((f) => f.primary) ?? null;
  if (!face) {
    // The detector finds nothing in a dark frame: say what to fix (the light), not that nobody is there.
    const dark = a.brightness !== undefined && a.brightness < t.minFrameBrightness;
    return { problem: dark ? 'too_dark' : 'no_face', face: null };
  }
  const area = face.box.width * face.box.height;
  if (a.faces.some((f) => !f.primary && f.box.width * f.box.height >= t.secondFaceRatio * area)) {
    return { problem: 'multiple_faces', face };
  }
  const q = face.quality;
  if (q && q.faceSize < t.minFaceSize) return { problem: 'too_far', face };
  if (q && q.brightness < t.minBrightness) return { problem: 'too_dark', face };
  if (q && q.sharpness < t.minSharpness) return { problem: 'blurry', face };
  if (face.pose && (Math.abs(face.pose.yaw) > t.maxYaw || Math.abs(face.pose.pitch) > t.maxPitch)) {
    return { problem: 'look_at_camera', face };
  }
  return { problem: null, face };
}
