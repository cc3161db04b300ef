// Public surface of identification sessions.
export { IdentificationModule } from './identification.module';
export { SessionsService, type SessionPrincipal, type CreatedSession } from './sessions.service';
export { IdentificationError, type IdentificationErrorCode } from './errors';
export {
  SessionRunner,
  DEFAULT_SETTINGS,
  type IdentificationSettings,
  type VerdictOutcome,
  type VerdictResult,
} from './session-runner';
export { assessFrame, DEFAULT_GUIDANCE, type GuidanceCode, type GuidanceThresholds } from './guidance';
export { BlinkDetector, DEFAULT_BLINK, type BlinkThresholds } from './blink';
