/**
 * A camera frame from the moment the transport took its bytes off the socket until its one owner is done with it.
 *
 * The transport decodes the header (takeFrame) and hands the identification code a Frame: the decoded header, the
 * payload as a view into the message (no copy), and release(), which zeroes the whole message once. Whoever finishes
 * with a frame releases it: the session runner once the engine has copied it (or when it replaced or dropped it), the
 * gateway when it refuses it, the transport when it never hands it over (late, over a limit, a throwing handler).
 * release() is idempotent, so a clean-up path may always call it.
 *
 * This module is the one place frame bytes are zeroed (wipeBytes): Frame.release(), and the transport's wipes of bytes
 * that never became a Frame (text messages, messages after a close, the WebSocket library's own copies).
 *
 * Frames never become strings: a Frame prints and serialises as its header only.
 */
import { inspect } from 'node:util';
import { decodeFrameMessage, peekFrameSeq, ProtocolError, type FrameHeader } from './protocol';

/**
 * Zeroes bytes that held (part of) a frame. Called on the whole Buffer, so a test that switches wiping off can tell
 * these calls from other fills (test/support/ws-zeroing-server.ts).
 */
export function wipeBytes(bytes: Uint8Array): void {
  bytes.fill(0);
}

/** One binary message whose header decoded. */
export class Frame {
  readonly kind = 'frame' as const;
  readonly #message: Buffer;
  readonly #payload: Buffer;
  #released = false;

  private constructor(
    message: Buffer,
    readonly header: Readonly<FrameHeader>,
    payload: Buffer,
  ) {
    this.#message = message;
    this.#payload = payload;
  }

  /** @internal takeFrame() makes Frames; this is its way in past the private constructor. */
  static adopt(message: Buffer, header: FrameHeader, payload: Buffer): Frame {
    return new Frame(message, Object.freeze({ ...header }), payload);
  }

  /** The frame's bytes: a view into the message (all zeros once released). */
  get payload(): Buffer {
    return this.#payload;
  }

  get released(): boolean {
    return this.#released;
  }

  /** Zeroes the whole message (header, payload and any padding) the first time; later calls do nothing. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    wipeBytes(this.#message);
  }

  toJSON(): { kind: 'frame'; header: FrameHeader; bytes: number } {
    return { kind: this.kind, header: { ...this.header }, bytes: this.#payload.length };
  }

  toString(): string {
    return `Frame(seq ${this.header.seq}, ${this.header.format}, ${this.#payload.length} bytes)`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** A binary message whose header did not decode. Its bytes are already wiped; there is nothing to release. */
export interface MalformedFrame {
  readonly kind: 'malformed';
  readonly error: ProtocolError;
  /** Header bytes 4-7, when the message began with the magic and held them (for the ack of a frame dropped unread). */
  readonly seq: number | undefined;
}

/** What the transport hands over for one binary message. */
export type FrameMessage = Frame | MalformedFrame;

/**
 * Takes ownership of one binary message. A message whose header decodes becomes a Frame (the caller now owns it and
 * must release it); any other is wiped here and described by a MalformedFrame. Throws only what is not a
 * ProtocolError (a bug), after wiping the message.
 */
export function takeFrame(message: Buffer): FrameMessage {
  try {
    const { header, payload } = decodeFrameMessage(message);
    return Frame.adopt(message, header, payload);
  } catch (err) {
    const seq = peekFrameSeq(message);
    wipeBytes(message);
    if (err instanceof ProtocolError) return { kind: 'malformed', error: err, seq };
    throw err;
  }
}

/** Releases a frame handed over (a MalformedFrame holds nothing). */
export function releaseFrame(message: FrameMessage): void {
  if (message.kind === 'frame') message.release();
}
