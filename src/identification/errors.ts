/** Typed failures of the identification flow; `code` is stable and shared with HTTP, WS and the docs. */
export type IdentificationErrorCode =
  | 'face_id_not_applicable'
  | 'attempts_exceeded'
  | 'session_not_found'
  | 'token_invalid';

export class IdentificationError extends Error {
  constructor(
    readonly code: IdentificationErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'IdentificationError';
  }
}
