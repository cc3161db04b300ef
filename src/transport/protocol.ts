/**
 * The identification wire protocol (path /ws/identify, subprotocol `faceid.v1`). docs/protocol.md describes it for
 * client authors; keep the two in step (a test checks every message type appears there).
 *
 * Two kinds of WebSocket messages:
 * - binary: one camera frame = a 20-byte little-endian header + the frame bytes. Frames never become strings.
 * - text: small JSON control messages, one zod schema per message type, validated at the edge.
 */
import { z } from 'zod';
import type { VerdictResult } from '../storage/ports';

/** The subprotocol the server answers with; the token travels beside it as `token.<token>`. */
export const SUBPROTOCOL = 'faceid.v1';
export const TOKEN_SUBPROTOCOL_PREFIX = 'token.';
export const WS_PATH = '/ws/identify';

/** The frame rate asked for in `ready`, frames a second. Frames above `max` are dropped unread (after FRAME_BURST). */
export const FRAME_RATE = Object.freeze({ min: 5, max: 15 });
/** Frames that may arrive at once beyond fps.max before any is dropped (the size of the session's token bucket). */
export const FRAME_BURST = 8;
/**
 * A flood: a second in which more than `factor` x fps.max frames arrive. The first flood second gets a
 * `frame_rate_exceeded` warning; the `seconds`-th closes the connection with 4021.
 */
export const FRAME_FLOOD = Object.freeze({ factor: 4, seconds: 3 });

// ---------------------------------------------------------------------------------------------------------------
// Close codes
// ---------------------------------------------------------------------------------------------------------------

/**
 * WebSocket close codes the server uses. 4000-4999 are ours (RFC 6455 leaves them to applications).
 * Too-large messages use the standard 1009 rather than a private code: `ws` sends it itself before reading the
 * oversized payload, browsers and libraries know it, and the uWS adapter sends the same code.
 */
export const WS_CLOSE = {
  /** After the verdict (or a client `cancel`). */
  normal: 1000,
  /** Server shutting down. */
  going_away: 1001,
  /** A message above WS_MAX_PAYLOAD. */
  payload_too_large: 1009,
  /** The server failed (a bug or an unexpected error); the client may start a new session. */
  internal_error: 1011,
  /** The server is draining before a stop and admits no new session (RFC 6455's "try again later"): the token is unused. */
  draining: 1013,
  /** Unknown, already used or expired token: the three are indistinguishable on purpose. */
  token_invalid: 4001,
  /** The page's Origin is not in WS_ALLOWED_ORIGINS. */
  origin_forbidden: 4003,
  /** A malformed frame header or control message. */
  protocol_error: 4008,
  /** The session already has a verdict (or was cancelled): no more frames are taken. */
  session_finished: 4010,
  /** The client stopped reading: more than WS_SEND_BUFFER_MAX bytes waited to be sent to it. */
  send_buffer_full: 4012,
  /** More than WS_MESSAGES_PER_SECOND messages a second (after a burst of as many). */
  message_rate_exceeded: 4020,
  /** Frames kept arriving far above fps.max after the `frame_rate_exceeded` warning. */
  frame_rate_exceeded: 4021,
  /** The patient's face attempts are used up (failed ones plus sessions running now): the code path remains. */
  attempts_exceeded: 4029,
} as const;
export type WsCloseName = keyof typeof WS_CLOSE;
export type WsCloseCode = (typeof WS_CLOSE)[WsCloseName];

/** For docs/protocol.md (generated). */
export const WS_CLOSE_DESCRIPTIONS: Record<WsCloseName, string> = {
  normal: 'The session is over: after the verdict, or after the client sent `cancel`.',
  going_away: 'The server is shutting down. Start a new session later.',
  payload_too_large:
    'A message was larger than `maxPayload` (WS_MAX_PAYLOAD). The standard code, as `ws` and browsers know it.',
  internal_error: 'The server failed. The session is lost; the operator may start a new one.',
  draining:
    'This gateway is draining before it stops (a restart, an update) and admits no new session; sessions already ' +
    'running here go on. The token was not looked at, so it is still unused: connect again with it after a second ' +
    'or so, or start a new session (faceid-client.js reconnects so); behind a load balancer the next connection ' +
    'goes to another gateway.',
  token_invalid: 'The token is unknown, already used or expired (deliberately indistinguishable), or missing.',
  origin_forbidden: "The page's Origin is not in WS_ALLOWED_ORIGINS. No token was looked at.",
  protocol_error:
    'A binary message with a bad header (see the protocol_* codes); or, with reason `too_many_errors`, more refused ' +
    'messages (answered with `protocol_*` and `frame_*` errors) than WS_ERRORS_PER_MINUTE allows.',
  session_finished: 'The session already has a verdict or was cancelled; it takes no more frames.',
  send_buffer_full:
    'The client stopped reading: more than WS_SEND_BUFFER_MAX bytes waited to be sent to it. The close frame queues ' +
    'behind them; a client that never reads sees the connection drop (1006) when the closing handshake times out.',
  message_rate_exceeded:
    'More than WS_MESSAGES_PER_SECOND messages (frames and control messages) a second, after a burst of as many. ' +
    'Messages that arrive after it are discarded unread.',
  frame_rate_exceeded:
    `Frames kept arriving at more than ${FRAME_FLOOD.factor} x fps.max a second: ${FRAME_FLOOD.seconds} such seconds in ` +
    'one session, the first of them answered with the `frame_rate_exceeded` warning.',
  attempts_exceeded:
    "The patient's face attempts (FACE_ATTEMPTS_MAX) are used up, counting the sessions running now: the token stays " +
    'unused. Identify the patient with the six-digit code instead.',
};

// ---------------------------------------------------------------------------------------------------------------
// Binary frames
// ---------------------------------------------------------------------------------------------------------------

export const FRAME_MAGIC = [0x46, 0x49] as const; // 'F', 'I'
export const PROTOCOL_VERSION = 1;
export const FRAME_HEADER_BYTES = 20;
/** Index = the format byte on the wire. */
export const FRAME_FORMATS = ['jpeg', 'rgba', 'bgr', 'i420'] as const;
export type FrameFormat = (typeof FRAME_FORMATS)[number];

export interface FrameHeader {
  version: number;
  format: FrameFormat;
  /** Client's frame counter (u32); echoed in error messages. */
  seq: number;
  /** Milliseconds since the epoch on the client's clock (f64). */
  captureTime: number;
  /** Pixels; 0 for jpeg (the JPEG carries its own size). */
  width: number;
  height: number;
}

export interface DecodedFrame {
  header: FrameHeader;
  /** A view into the message buffer (no copy): wiping the message wipes the payload. */
  payload: Buffer;
}

export const PROTOCOL_ERROR_CODES = [
  'protocol_bad_magic',
  'protocol_version_unsupported',
  'protocol_bad_format',
  /** Binary message shorter than the 20-byte header. */
  'protocol_header_truncated',
  /** Text message that is not JSON or matches no client message schema. */
  'protocol_bad_message',
  'frame_empty',
  /** Raw format with width or height 0 (or odd, for i420). */
  'frame_dimensions_invalid',
  /** Raw format whose byte count does not match width x height (same code as the engine's). */
  'frame_size_mismatch',
] as const;
export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

/** For docs/protocol.md (generated). */
export const PROTOCOL_ERROR_DESCRIPTIONS: Record<ProtocolErrorCode, string> = {
  protocol_bad_magic: "The binary message does not start with 'F','I'.",
  protocol_version_unsupported: `Header byte 2 is not ${PROTOCOL_VERSION}.`,
  protocol_bad_format: 'Header byte 3 is not a known format.',
  protocol_header_truncated: `The binary message is shorter than the ${FRAME_HEADER_BYTES}-byte header.`,
  protocol_bad_message: 'A text message that is not JSON, too long, or matches no client message.',
  frame_empty: 'The header is followed by no frame bytes.',
  frame_dimensions_invalid: 'A raw frame (rgba, bgr, i420) with width or height 0, or an i420 frame with an odd one.',
  frame_size_mismatch: 'A raw frame whose byte count is not what its format, width and height call for.',
};

/**
 * Codes of the server's own bounds on frames, sent as `error` messages (the session goes on). For docs/protocol.md
 * (generated). The structure check reads only the JPEG's markers, so these refusals cost microseconds.
 */
export const LIMIT_ERROR_DESCRIPTIONS = {
  frame_too_complex:
    'A JPEG frame that is progressive or arithmetic-coded, or has more than 4 scans: refused from its markers, before ' +
    'any decoding (a webcam sends baseline JPEG; each scan of a progressive one is a pass over the whole image).',
  frame_too_large:
    'A frame with more pixels than WS_FRAME_MAX_PIXELS (default 1920x1080), read from the JPEG header or the raw ' +
    'frame header: refused before any decoding.',
  frame_rate_exceeded:
    `A warning: frames arrive at more than ${FRAME_FLOOD.factor} x fps.max a second. Frames above fps.max are dropped ` +
    `unread anyway; after ${FRAME_FLOOD.seconds} such seconds the server closes with 4021.`,
} as const;

/** A malformed message. Messages never quote frame bytes. `seq` is set when the header was readable. */
export class ProtocolError extends Error {
  readonly closeCode = WS_CLOSE.protocol_error;

  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    readonly seq?: number,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** Whether a binary message starts with the frame magic (the decoder and the seq peek must agree on it). */
function startsWithMagic(buf: Buffer): boolean {
  return buf.length >= 2 && buf[0] === FRAME_MAGIC[0] && buf[1] === FRAME_MAGIC[1];
}

/** Parses the header of a binary message. Throws ProtocolError; never copies or alters the bytes. */
export function decodeFrameMessage(buf: Buffer): DecodedFrame {
  if (!startsWithMagic(buf)) {
    throw new ProtocolError('protocol_bad_magic', "Binary messages must start with the bytes 'FI'.");
  }
  if (buf.length < FRAME_HEADER_BYTES) {
    throw new ProtocolError('protocol_header_truncated', `A frame header is ${FRAME_HEADER_BYTES} bytes.`);
  }
  const version = buf[2];
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      'protocol_version_unsupported',
      `Frame header version ${version}; supported: ${PROTOCOL_VERSION}.`,
    );
  }
  const seq = buf.readUInt32LE(4);
  const format = FRAME_FORMATS[buf[3]];
  if (format === undefined) {
    throw new ProtocolError('protocol_bad_format', `Unknown frame format ${buf[3]}.`, seq);
  }
  const header: FrameHeader = {
    version,
    format,
    seq,
    captureTime: buf.readDoubleLE(8),
    width: buf.readUInt16LE(16),
    height: buf.readUInt16LE(18),
  };
  if (buf.length === FRAME_HEADER_BYTES) throw new ProtocolError('frame_empty', 'The frame has no bytes.', seq);
  if (format !== 'jpeg') {
    const { width, height } = header;
    if (width === 0 || height === 0) {
      throw new ProtocolError('frame_dimensions_invalid', `Raw ${format} frames need a width and a height.`, seq);
    }
    if (format === 'i420' && (width % 2 !== 0 || height % 2 !== 0)) {
      throw new ProtocolError('frame_dimensions_invalid', 'I420 frames need an even width and height.', seq);
    }
    // Checked here, not only in the engine, so a bad frame never displaces a good one waiting for analysis.
    const expected = rawFrameBytes(format, width, height);
    if (buf.length - FRAME_HEADER_BYTES !== expected) {
      throw new ProtocolError(
        'frame_size_mismatch',
        `A ${width}x${height} ${format} frame has ${expected} bytes.`,
        seq,
      );
    }
  }
  return { header, payload: buf.subarray(FRAME_HEADER_BYTES) };
}

/**
 * The `seq` of a binary message the server drops unread (above fps.max, or after the session ended), for its `ack`:
 * header bytes 4-7 when the message starts with the magic and holds them, else undefined. Reads nothing else.
 */
export function peekFrameSeq(buf: Buffer): number | undefined {
  if (buf.length < 8 || !startsWithMagic(buf)) return undefined;
  return buf.readUInt32LE(4);
}

/** Bytes of a raw frame (rgba 4, bgr 3, i420 1.5 per pixel; width and height even for i420). */
export function rawFrameBytes(format: Exclude<FrameFormat, 'jpeg'>, width: number, height: number): number {
  const pixels = width * height;
  return format === 'rgba' ? pixels * 4 : format === 'bgr' ? pixels * 3 : (pixels * 3) / 2;
}

/**
 * Builds a binary frame message (clients, tests, load generators). The result is a new buffer holding a copy of
 * `payload`: wipe it when done if it held a real frame.
 */
export function encodeFrameMessage(
  header: Omit<FrameHeader, 'version' | 'width' | 'height'> & { version?: number; width?: number; height?: number },
  payload: Uint8Array,
): Buffer {
  const formatByte = FRAME_FORMATS.indexOf(header.format);
  if (formatByte < 0) throw new RangeError(`Unknown frame format ${String(header.format)}.`);
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out[0] = FRAME_MAGIC[0];
  out[1] = FRAME_MAGIC[1];
  out[2] = header.version ?? PROTOCOL_VERSION;
  out[3] = formatByte;
  out.writeUInt32LE(header.seq >>> 0, 4);
  out.writeDoubleLE(header.captureTime, 8);
  out.writeUInt16LE(header.width ?? 0, 16);
  out.writeUInt16LE(header.height ?? 0, 18);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Control messages (JSON text)
// ---------------------------------------------------------------------------------------------------------------

/** Challenges a client may be able to run (`hello.capabilities`). */
export const LIVENESS_CAPABILITIES = ['blink', 'light', 'turn'] as const;

/** Stable error codes are snake_case identifiers (engine, protocol and session codes alike). */
const errorCode = z
  .string()
  .regex(/^[a-z][a-z0-9_]*$/)
  .max(64);
const u32 = z.number().int().min(0).max(0xffffffff);
const count = z.number().int().min(0);

// Client -> server. Unknown keys are stripped (a newer client may send more); an unknown `type` is an error.
export const HelloMessage = z
  .object({
    type: z.literal('hello'),
    /** Free-form client name and version, for logs (e.g. "faceid-web/1.2.0"). */
    client: z.string().max(100).optional(),
    /** The liveness challenges this client can run. A client that sends none runs the blink only. */
    capabilities: z.array(z.enum(LIVENESS_CAPABILITIES)).max(8).optional(),
    /** The camera in use: its label as the browser reports it, and a SHA-256 (hex) of its device id. */
    camera: z
      .object({
        label: z.string().max(200),
        deviceIdHash: z.string().regex(/^[0-9a-f]{16,128}$/),
      })
      .optional(),
    /**
     * Ask for an `ack` for every binary frame once the server is done with it (load generators, diagnostics). Off by
     * default: a browser pays nothing for it.
     */
    ack: z.boolean().optional(),
  })
  .meta({
    description:
      'Client -> server, first (before any frame when the client runs challenges): the client software, the ' +
      'challenges it can run, and its camera.',
  });

export const LightShownMessage = z
  .object({
    type: z.literal('light_shown'),
    challengeId: z.string().min(1).max(64),
    /** Client-clock epoch ms (the clock of the frames' captureTime) at which each colour was painted, then one more:
     *  when the last colour ended. */
    shownAt: z.array(z.number().finite()).min(2).max(33),
  })
  .meta({ description: 'Client -> server, after a light challenge: when each colour was actually on the screen.' });

export const CancelMessage = z
  .object({ type: z.literal('cancel') })
  .meta({ description: 'Client -> server: the patient or operator gave up; the server ends the session.' });

/** Every client message schema: the parser's union, and the list docs and tests read. */
export const CLIENT_MESSAGES = [HelloMessage, CancelMessage, LightShownMessage] as const;
export const ClientMessage = z.discriminatedUnion('type', CLIENT_MESSAGES);
export type LightShownMessage = z.infer<typeof LightShownMessage>;
export type HelloMessage = z.infer<typeof HelloMessage>;
export type CancelMessage = z.infer<typeof CancelMessage>;
export type ClientMessage = z.infer<typeof ClientMessage>;

// Server -> client. Strict: an unknown key is a bug in our code (and could leak something), so it throws.
export const ReadyMessage = z
  .strictObject({
    type: z.literal('ready'),
    sessionId: z.string(),
    /** Largest binary message (header included) the server takes, in bytes. */
    maxPayload: z.number().int().positive(),
    /** Frame rate the client should send at: at least `min`, at most `max` frames per second. */
    fps: z.strictObject({ min: z.number().positive(), max: z.number().positive() }),
  })
  .meta({ description: 'Server -> client, first message after the token was accepted: start sending frames.' });

export const GUIDANCE_CODES = [
  'no_face',
  'multiple_faces',
  'too_far',
  'too_dark',
  'blurry',
  'look_at_camera',
  'hold_still',
  'blink_now',
  'blink_again',
  'watch_screen',
  'turn_left',
  'turn_right',
] as const;
export type GuidanceCode = (typeof GUIDANCE_CODES)[number];

/** For docs/protocol.md (generated): what the client should tell the patient. */
export const GUIDANCE_DESCRIPTIONS: Record<GuidanceCode, string> = {
  no_face: 'No face in view (a frame too dark to find a face in gets `too_dark` instead).',
  multiple_faces: 'More than one face in view: only the patient should face the camera.',
  too_far: 'The face is too small: come closer.',
  too_dark: 'Not enough light on the face, or the whole picture is too dark to find one.',
  blurry: 'The image is blurred: hold still or clean the lens.',
  look_at_camera: 'The head is turned: look straight at the camera.',
  hold_still: 'Good: keep still while the server works.',
  blink_now: 'The liveness challenge: blink once.',
  blink_again:
    'No blink came within the first window: blink once more (a second window, no longer than the first; without a ' +
    'blink the session ends `spoof_suspected`, reason `no_blink`).',
  watch_screen: 'The light challenge is on: look at the screen and keep still while it changes colour.',
  turn_left: "The head-turn challenge: turn the head to the patient's own left, then back to the camera.",
  turn_right: "The head-turn challenge: turn the head to the patient's own right, then back to the camera.",
};

/**
 * Milliseconds the patient has left for the challenge now running (its window), for a visible countdown. Sent with
 * the challenge and with its prompts (`watch_screen`, `turn_left`/`turn_right`, `blink_now`, `blink_again`).
 */
const windowMs = z
  .number()
  .int()
  .min(0)
  .max(60_000)
  .meta({
    description:
      'Milliseconds left in the window of the challenge now running, counted from when the server sent this message ' +
      '(for a countdown): the colours of a light challenge, the time to turn, or the time to blink.',
  });

/** A face's position in the frame as fractions of its width and height (0..1): where it is, nothing of the face. */
export const FaceBox = z
  .strictObject({
    x: z.number().min(0).max(1),
    y: z.number().min(0).max(1),
    width: z.number().min(0).max(1),
    height: z.number().min(0).max(1),
  })
  .meta({
    description:
      "The patient's face box in the last analysed frame, as fractions (0..1) of the frame's width and height, from " +
      'its top-left corner (the camera image as sent, not mirrored). Absent when no face was found. Draw it coloured ' +
      'by `code` (a problem, or a prompt).',
  });

export const GuidanceMessage = z
  .strictObject({
    type: z.literal('guidance'),
    code: z.enum(GUIDANCE_CODES),
    /** How far the session is towards a verdict, 0..1 (for a progress ring). */
    progress: z.number().min(0).max(1),
    /** With a challenge's prompt: the time it has left, ms. */
    windowMs: windowMs.optional(),
    /** The face's position in the frame, 0..1. */
    box: FaceBox.optional(),
  })
  .meta({ description: 'Server -> client: what the patient should do now.' });

const rgb = z.tuple([
  z.number().int().min(0).max(255),
  z.number().int().min(0).max(255),
  z.number().int().min(0).max(255),
]);

export const LightChallengeMessage = z
  .strictObject({
    type: z.literal('challenge'),
    kind: z.literal('light'),
    challengeId: z.string(),
    /** Fill the patient-facing screen with each colour for `ms`, in order, at once; then send `light_shown`. */
    colours: z.array(z.strictObject({ rgb, ms: z.number().int().positive() })),
    /** The colours' total duration, ms: how long the patient keeps looking at the screen. */
    windowMs: windowMs.optional(),
  })
  .meta({ description: 'Server -> client: the light challenge, a fresh random sequence of colours.' });

export const TurnChallengeMessage = z
  .strictObject({
    type: z.literal('challenge'),
    kind: z.literal('turn'),
    challengeId: z.string(),
    /** The patient's own left or right (in an unmirrored camera image, their left is the image's right). */
    direction: z.enum(['left', 'right']),
    /** How long the patient has to turn, ms. */
    windowMs: windowMs.optional(),
  })
  .meta({
    description: 'Server -> client: the head-turn challenge; the patient turns, then looks back at the camera.',
  });

export const ChallengeMessage = z.discriminatedUnion('kind', [LightChallengeMessage, TurnChallengeMessage]);

export const BusyMessage = z
  .strictObject({
    type: z.literal('busy'),
    /** Wait at least this long before sending the next frame. */
    retryAfterMs: z.number().int().min(0),
  })
  .meta({ description: 'Server -> client: the engine is saturated; slow down.' });

/** What became of one binary frame (`ack.outcome`). */
export const FRAME_OUTCOMES = ['analysed', 'dropped', 'refused'] as const;
export type FrameOutcome = (typeof FRAME_OUTCOMES)[number];

/** For docs/protocol.md (generated). */
export const FRAME_OUTCOME_DESCRIPTIONS: Record<FrameOutcome, string> = {
  analysed: 'The frame went through the engine (its guidance, if any, was sent before this ack).',
  dropped:
    'The frame was not analysed and no error was sent for it: replaced by a newer frame while an analysis ran ' +
    '(latest frame wins), dropped unread above fps.max, skipped because the engine was saturated (with a `busy` ' +
    'message), or it came after the session had ended.',
  refused: 'An `error` was sent for the frame (before this ack): a bad or hostile frame, or an engine error.',
};

export const AckMessage = z
  .strictObject({
    type: z.literal('ack'),
    /** The frame's `seq`, from its header. */
    seq: u32,
    outcome: z.enum(FRAME_OUTCOMES),
  })
  .meta({
    description:
      'Server -> client, only after `hello` with `ack: true`: one per binary frame, once the server is done with it. ' +
      'Nothing of the frame or its analysis: no image, no score, no measurement.',
  });

export const ErrorMessage = z
  .strictObject({
    type: z.literal('error'),
    code: errorCode,
    message: z.string(),
    /** The frame's `seq` when the error is about one frame. */
    seq: u32.optional(),
  })
  .meta({ description: 'Server -> client: a frame or message was refused; the session may go on.' });

/** Why a session ended `spoof_suspected` (or `error` for `client_unsupported`). */
export const LIVENESS_REASONS = [
  'no_blink',
  'light_not_shown',
  'light_out_of_order',
  'light_late',
  'light_no_response',
  'light_uniform',
  'light_flat',
  'turn_missing',
  'turn_early',
  'turn_flat',
  'passive_low',
  'virtual_camera',
  'client_unsupported',
] as const;
export type LivenessReason = (typeof LIVENESS_REASONS)[number];

/** For docs/protocol.md (generated). */
export const LIVENESS_REASON_DESCRIPTIONS: Record<LivenessReason, string> = {
  no_blink:
    'No blink (open, closed, open) within the blink window after `blink_now`, nor within the second one after ' +
    '`blink_again`.',
  light_not_shown: 'The client never reported showing the colours of the light challenge.',
  light_out_of_order: 'The reported colour times are not increasing, or differ from the asked durations.',
  light_late: 'The colours were shown too long after the challenge was sent.',
  light_no_response:
    "The face's colour did not follow the sequence (a photo, a replay, or a screen that emits its own light).",
  light_uniform:
    'The face answered no more than what is beside it: a tint over the whole image, or a print filling the view.',
  light_flat: 'The face answered evenly across forehead, nose and cheeks, as a flat surface does.',
  turn_missing: 'No head turn in the asked direction in time.',
  turn_early: 'The head turned before the prompt (a recording does not wait for it).',
  turn_flat: 'The turn is explained by a flat picture seen from another angle: no depth.',
  passive_low:
    'The passive liveness model scored the face below LIVENESS_MIN (only where a deployment runs that model).',
  virtual_camera: 'The client reported a virtual camera (software that injects video) as its camera.',
  client_unsupported:
    'The client cannot run the challenges this workstation requires (result `error`): update the client.',
};

/** Same values as storage's VerdictResult (checked at compile time below). */
export const VERDICT_RESULTS = ['match', 'no_match', 'spoof_suspected', 'no_template', 'timeout', 'error'] as const;

export const VerdictMessage = z
  .strictObject({
    type: z.literal('verdict'),
    sessionId: z.string(),
    // No similarity score: a desk that saw it could hill-climb on it. The score goes to the MIS (verdict events)
    // and to statistics.
    result: z.enum(VERDICT_RESULTS),
    liveness: z.strictObject({
      /** Passive liveness probability (about 0..1, unbounded for the same reason as score); null when not measured. */
      passive: z.number().nullable(),
      /** Whether the blink challenge was passed. */
      blink: z.boolean(),
      /** Whether the light challenge was passed; null when it was not asked. */
      light: z.boolean().nullable(),
      /** Whether the head-turn challenge was passed; null when it was not asked. */
      turn: z.boolean().nullable(),
    }),
    /** Why liveness failed or the client was refused (LIVENESS_REASONS); null otherwise. */
    reason: z.enum(LIVENESS_REASONS).nullable(),
    timings: z.strictObject({
      /** Null when no frame arrived (e.g. timeout). */
      firstFrameToVerdictMs: z.number().min(0).nullable(),
      framesReceived: count,
      framesAnalysed: count,
      /** Frames replaced by a newer one before analysis (latest frame wins), or dropped unread above fps.max. */
      framesDropped: count,
    }),
  })
  .meta({ description: 'Server -> client, last message: the outcome. The server then closes with 1000.' });

/** Every server message schema: the union, and the list docs and tests read. */
export const SERVER_MESSAGES = [
  ReadyMessage,
  GuidanceMessage,
  LightChallengeMessage,
  TurnChallengeMessage,
  BusyMessage,
  AckMessage,
  ErrorMessage,
  VerdictMessage,
] as const;
export const ServerMessage = z.union(SERVER_MESSAGES);
export type ReadyMessage = z.infer<typeof ReadyMessage>;
export type GuidanceMessage = z.infer<typeof GuidanceMessage>;
export type FaceBox = z.infer<typeof FaceBox>;
export type BusyMessage = z.infer<typeof BusyMessage>;
export type ErrorMessage = z.infer<typeof ErrorMessage>;
export type AckMessage = z.infer<typeof AckMessage>;
export type VerdictMessage = z.infer<typeof VerdictMessage>;
export type ChallengeMessage = z.infer<typeof ChallengeMessage>;
export type ServerMessage = z.infer<typeof ServerMessage>;

/** Text messages above this are refused without parsing (control messages are tiny). */
export const MAX_TEXT_MESSAGE = 4096;

/** Parses a client text message. Throws ProtocolError('protocol_bad_message'); the message never quotes the input. */
export function parseClientMessage(text: string): ClientMessage {
  if (text.length > MAX_TEXT_MESSAGE) {
    throw new ProtocolError('protocol_bad_message', `Control messages are at most ${MAX_TEXT_MESSAGE} characters.`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ProtocolError('protocol_bad_message', 'Control messages must be JSON.');
  }
  const parsed = ClientMessage.safeParse(json);
  if (!parsed.success) {
    const type = (json as { type?: unknown } | null)?.type;
    const known = typeof type === 'string' && CLIENT_MESSAGES.some((s) => s.shape.type.value === type);
    throw new ProtocolError('protocol_bad_message', known ? `Invalid '${type}' message.` : 'Unknown message type.');
  }
  return parsed.data;
}

// Compile-time check that the wire enum and storage's face outcomes stay the same set (`expired` and `locked_out`
// end sessions off the WebSocket: a sweep, the code path).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const verdictResultsMatchStorage: Same<
  (typeof VERDICT_RESULTS)[number],
  Exclude<VerdictResult, 'expired' | 'locked_out'>
> = true;
void verdictResultsMatchStorage;
