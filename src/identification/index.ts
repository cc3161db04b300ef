// Public surface of identification sessions.
export { IdentificationModule } from './identification.module';
export {
  SessionsService,
  type SessionPrincipal,
  type CreatedSession,
  type CreatedFaceSession,
} from './sessions.service';
export {
  CodePathService,
  CODE_PATH_CLOCK,
  CODE_PATH_CODES,
  type CodePrincipal,
  type CodeSent,
} from './code-path.service';
export { CodeHasher, newCode } from './code-hash';
export {
  FaceCapacity,
  FACE_CAPACITY_CLOCK,
  FACE_TOKEN_HOLD_MS,
  type FaceCapacityUsage,
  type FacePlace,
} from './face-capacity';
export { SessionSweep, SESSION_SWEEP_OPTIONS, type SessionSweepOptions } from './session-sweep';
export {
  ChallengePolicyService,
  normaliseChallenges,
  resolveChallenges,
  type ChallengeSource,
  type ResolvedChallenges,
} from './challenge-policy.service';
export { CameraRegistryService, ReportedCameraSchema } from './camera-registry.service';
export { IdentificationError, type IdentificationErrorCode } from './errors';
export {
  SessionRunner,
  DEFAULT_SETTINGS,
  type IdentificationSettings,
  type VerdictOutcome,
  type VerdictResult,
  type SessionQuality,
  type FrameState,
} from './session-runner';
export { assessFrame, DEFAULT_GUIDANCE, type GuidanceCode, type GuidanceThresholds } from './guidance';
export { BlinkDetector, DEFAULT_BLINK, type BlinkThresholds } from './blink';
