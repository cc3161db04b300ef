/** Frame encodings the engine accepts. JPEG only among compressed formats: other decoders may use temp files. */
export type FrameFormat = 'jpeg' | 'rgba' | 'bgr' | 'i420';

/**
 * Pipeline stages. `detect` always runs; the rest are opt-in per call. `anchor`: a small signature of where the face
 * sits in its box (see `Face.anchor`), for `reuseLandmarks` on later frames.
 */
export type Stage = 'landmarks' | 'embedding' | 'liveness' | 'eyes' | 'pose' | 'quality' | 'light' | 'anchor';

export const TRACK_STAGES: readonly Stage[] = ['landmarks', 'eyes', 'pose', 'quality', 'light'];
export const FULL_STAGES: readonly Stage[] = ['landmarks', 'embedding', 'eyes', 'pose', 'quality', 'light'];

/**
 * Face detectors. `default`: the detector on the whole frame resized to 320x240 (`detect` in models/manifest.json;
 * about 9 ms of CPU). `blazeface`: MediaPipe's short-range BlazeFace on the frame letterboxed to 128x128 (about 4.5 ms),
 * its boxes mapped onto the default detector's (taller, lower), since the landmark network was trained on those; when
 * it finds no face, the default detector runs on the frame too, so it never finds fewer faces than the default.
 */
export type Detector = 'default' | 'blazeface';
export const DETECTORS: readonly Detector[] = ['default', 'blazeface'];

export interface AnalyzeOptions {
  /**
   * The detector for this call (when it detects, i.e. without `box`). Default: `default`, and for `track()` the
   * engine's `trackDetector`. `blazeface` only on an engine opened with trackDetector 'blazeface' (which loads it).
   */
  detector?: Detector;
  /** Default 'jpeg'. Raw formats need width and height. */
  format?: FrameFormat;
  width?: number;
  height?: number;
  /** Default: TRACK_STAGES. */
  stages?: readonly Stage[];
  /** How many faces (primary first, then by size) get the per-face stages. Default 1. */
  maxFaces?: number;
  /** Zero the caller's buffer once it has been copied into native memory. Default true. */
  wipeInput?: boolean;
  /**
   * Track a face found in an earlier frame: analyse this box (frame pixels) instead of running the detector. The
   * face comes back as the only, primary face with score 0. Saves the detector's ~7 ms on frames between detections.
   */
  box?: Box;
  /**
   * Run the landmark network on the face and on its mirror image and average them (default true): a face and its
   * mirror image then read the same |yaw|. false halves the landmark cost, for frames whose pose is not measured.
   */
  mirrorLandmarks?: boolean;
  /**
   * With `box` only: the landmarks of an earlier frame analysed in the same box, and that frame's `anchor`. The engine
   * compares this frame's anchor with it (about 0.05 ms) and, when the face moved at most `maxShift` pixels, reuses
   * the landmarks, moved by the shift the anchors show (the face comes back with `landmarksReused: true`), instead of
   * running the landmark network; otherwise the landmarks are computed as usual. The other stages (eyes, pose, light,
   * quality, the embedding's alignment) then use the reused landmarks.
   */
  reuseLandmarks?: LandmarkReuse;
}

export interface LandmarkReuse {
  /** 136 numbers, as `Face.landmarks`. */
  landmarks: Float32Array;
  /** `Face.anchor` of the frame those landmarks came from (64 numbers). */
  anchor: Float32Array;
  /** Largest movement of the face, in frame pixels, for which they are reused. */
  maxShift: number;
}

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Pose {
  /** Degrees, from the landmarks fitted to a generic 3D face (solvePnP). Positive yaw = the face turned to the
   *  image's right (the patient's own left in an unmirrored image); 0 = facing the camera. */
  yaw: number;
  pitch: number;
  roll: number;
}

export interface Quality {
  /** Inter-ocular distance in pixels (falls back to box width / 2.5 without landmarks). */
  faceSize: number;
  /** Variance of the Laplacian on the 112x112 grey face crop. */
  sharpness: number;
  /** Mean grey level of the face crop, 0-255. */
  brightness: number;
  /** max(|yaw|, |pitch|) in degrees, or null without landmarks. */
  poseAngle: number | null;
}

export interface Eyes {
  /** Probability that each eye is open, 0-1. Left = the image's left. */
  left: number;
  right: number;
}

/** Regions whose colour the light challenge follows. `surround` = beside the head (normally the wall behind). */
export const LIGHT_REGIONS = [
  'face',
  'forehead',
  'nose',
  'leftCheek',
  'rightCheek',
  'chin',
  'surround',
  'frame',
] as const;
export type LightRegion = (typeof LIGHT_REGIONS)[number];
/** Mean R,G,B (0-255, as decoded) per region; null where the region falls outside the frame. */
export type FaceLight = Record<LightRegion, [number, number, number] | null>;

export interface Face {
  box: Box;
  score: number;
  primary: boolean;
  /** 68 points as x0,y0,x1,y1,... in frame pixels. */
  landmarks?: Float32Array;
  /** 512 floats, L2-normalised. */
  embedding?: Float32Array;
  /** Probability of a live face, 0-1 (softmax class 0). */
  liveness?: number;
  eyes?: Eyes;
  pose?: Pose;
  quality?: Quality;
  light?: FaceLight;
  /**
   * Stage `anchor`: the mean grey level across and down the inner face box (32 + 32 numbers, each profile divided by
   * its mean, so the light's level and colour cancel). Only comparable between frames analysed in the same box.
   * Absent when the inner box is smaller than 32 px or leaves the frame.
   */
  anchor?: Float32Array;
  /** true when the landmarks are the caller's (`reuseLandmarks`): the face had not moved. */
  landmarksReused?: boolean;
}

export interface StageTimings {
  decode: number;
  detect: number;
  landmarks: number;
  align: number;
  embedding: number;
  liveness: number;
  eyes: number;
  quality: number;
  light: number;
  wipe: number;
  /** Time in the native queue before a worker picked the job. */
  queued: number;
  total: number;
}

/** The timing keys in pipeline order, for reports. */
export const STAGE_TIMING_KEYS: readonly (keyof StageTimings)[] = [
  'decode',
  'detect',
  'landmarks',
  'align',
  'embedding',
  'liveness',
  'eyes',
  'quality',
  'light',
  'wipe',
  'queued',
  'total',
];

export interface Analysis {
  width: number;
  height: number;
  /**
   * Stage `quality`: the mean grey level of the whole frame, 0-255 (absent without that stage). A frame too dark for
   * the detector to find a face in still says so.
   */
  brightness?: number;
  faces: Face[];
  /** Milliseconds per stage. */
  timings: StageTimings;
}

/** See EngineOptions.faceNormalisation. */
export type FaceNormalisation = 'none' | 'gain';
export const FACE_NORMALISATIONS: readonly FaceNormalisation[] = ['none', 'gain'];

export interface EngineOptions {
  /** Concurrent jobs, each with its own networks. Default: number of cores. */
  workers?: number;
  /** Jobs that may wait for a worker before `busy` is returned. Default workers * 4. */
  queueSize?: number;
  /**
   * OpenCV threads per job. Default min(2, cores): lower latency; 1 gives peak throughput. An OpenCV global: engines
   * open at the same time in one process must agree on it (otherwise invalid_argument).
   */
  threadsPerJob?: number;
  /** Run liveness beside the embedding on a spare core when one is idle. Default true. */
  parallelStages?: boolean;
  /** Face detector score threshold (the default detector's). Default 0.7. */
  detectThreshold?: number;
  /**
   * Illumination normalisation of the aligned 112x112 face before the feature network (the embedding only: quality,
   * eyes and light read the face as the camera saw it). `gain`: a face whose inner mean grey level is under 100 is
   * brightened towards 100, by at most x2; lighter faces are left alone, so well-lit enrollment photos embed exactly as
   * without it. Default `none`: on webcam-like probes (README, "Webcam frames") the gain lifted genuine scores of dark
   * frames without noise (+0.012) but lowered those of dark noisy ones (-0.001 to -0.013), as real cameras deliver them
   * in the dark; mean/std, per-channel, gamma and CLAHE normalisation did worse and were dropped.
   */
  faceNormalisation?: FaceNormalisation;
  /**
   * Average the embedding with that of the mirrored aligned face, then L2-normalise (the feature network runs twice:
   * about 13 ms more CPU per full call, +47%). Default false: genuine scores rise by 0.004-0.005 under every webcam
   * condition measured (the weakest tenth by 0.004-0.007) while impostor scores stay put, but at an equal FAR 1e-3
   * that bought 1.6 points of TAR on the harshest mix and next to nothing elsewhere (README, "Webcam frames").
   * Embeddings made either way stay comparable (a photo's two embeddings agree to 0.99 or more): no template needs
   * enrolling again.
   */
  mirrorEmbedding?: boolean;
  /**
   * The detector of track calls (`track()`; full calls and `analyze()` use the default detector). Default 'default'.
   * 'blazeface' (which also loads that model, models/manifest.json `blazeface`) halves the detector's CPU, but its boxes
   * agree less with the default's (IoU 0.89 median), which the landmark network was trained on: in pad-eval's 100
   * genuine sessions per set it refused more live faces (light+blink 4 against 1, turn+blink 9 against 6; README,
   * "Speed"), so it is not the default.
   */
  trackDetector?: Detector;
  /** Largest frame accepted, in pixels (width * height). Default 4096 * 4096. */
  maxPixels?: number;
  /**
   * Test builds of the addon only (native/build-test): turn every native wipe off, process-wide, so the zeroing
   * test's control run can prove its scan would see a leak. The product build rejects it with invalid_argument.
   */
  unsafeDisableWipe?: boolean;
}

export interface EngineStats {
  workers: number;
  queueSize: number;
  inFlight: number;
  queued: number;
  completed: number;
  failed: number;
  rejected: number;
}

/** Absolute paths of the ONNX files each pipeline stage needs (see models/manifest.json). */
export interface ModelPaths {
  detect: string;
  landmark: string;
  feature: string;
  liveness: string;
  eye: string;
  /** The lighter detector; only when an option needs it (trackDetector 'blazeface'). */
  blazeface?: string;
}
