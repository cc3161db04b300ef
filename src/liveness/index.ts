// Active liveness challenges: pure logic, no Nest, no storage, no engine calls.
export {
  DEFAULT_LIGHT_THRESHOLDS,
  LIGHT_PALETTE,
  planLightChallenge,
  secureRandom,
  validateShownReport,
  type LightColour,
  type LightPhase,
  type LightPlan,
  type LightPlanOptions,
  type LightThresholds,
  type Rgb,
  type ShownCheck,
} from './light';
export {
  checkLightResponse,
  SHAPE_REGIONS,
  type LightFailure,
  type LightMetrics,
  type LightSample,
  type LightVerdict,
  type ShapeRegion,
} from './light-response';
export {
  DEFAULT_TURN_THRESHOLDS,
  parallax,
  planTurn,
  turnSign,
  TurnTracker,
  type Parallax,
  type TurnDirection,
  type TurnFailure,
  type TurnFrame,
  type TurnMetrics,
  type TurnPlan,
  type TurnStatus,
  type TurnThresholds,
} from './head-turn';
export { isVirtualCamera } from './virtual-camera';
export {
  CHALLENGE_KINDS,
  CHALLENGES_EXPECTS,
  ChallengeSet,
  formatChallenges,
  parseChallenges,
  type ChallengeKind,
} from './policy';
