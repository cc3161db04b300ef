/** Stable error codes shared by the addon, HTTP bodies, WS messages, logs and docs. */
export const ENGINE_ERROR_CODES = [
  'frame_empty',
  'frame_format_unsupported',
  'frame_corrupt',
  'frame_truncated',
  'frame_too_large',
  /** Refused from its markers before decoding: progressive (webcam frames), arithmetic-coded, or too many scans. */
  'frame_too_complex',
  'frame_dimensions_invalid',
  'frame_size_mismatch',
  'invalid_argument',
  'busy',
  'engine_closed',
  'model_missing',
  'model_invalid',
  'internal',
] as const;

export type EngineErrorCode = (typeof ENGINE_ERROR_CODES)[number];

/** Every failure of the engine. Messages never hold frame data. */
export class EngineError extends Error {
  constructor(
    readonly code: EngineErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }

  /** Turns an addon error (a plain Error with a `code`) into an EngineError. */
  static from(err: unknown): EngineError {
    if (err instanceof EngineError) return err;
    const e = err as { code?: string; message?: string };
    const code = (ENGINE_ERROR_CODES as readonly string[]).includes(e?.code ?? '')
      ? (e.code as EngineErrorCode)
      : 'internal';
    return new EngineError(code, e?.message ?? String(err));
  }
}
