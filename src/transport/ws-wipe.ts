/**
 * Makes `ws`'s receiver wipe the copies of frame bytes it leaves behind.
 *
 * The ws adapter hands each binary message over as a Frame (frame.ts), released by its owner. But `ws` (8.x, lib/receiver.js)
 * makes two kinds of intermediate copies that the handler never sees:
 * 1. `consume(n)`: when a WebSocket frame spans several socket reads, its bytes are copied into a new buffer and the
 *    socket chunks keep the (masked) originals. The 4-byte mask sits next to them, so masked is as good as plain.
 * 2. `dataMessage()`: a message sent in several WebSocket fragments is concatenated into a new buffer; the fragments
 *    stay behind. With ONE fragment, `concat` returns that fragment itself, which IS the message: never wipe it.
 * Both originals are garbage after the copy, and garbage is not cleared: the frame would survive in freed heap.
 * So the two methods are wrapped to zero what they copied from, right after the copy has been made (and, for
 * fragments, after the message has been emitted). On close, bytes of an incomplete message are wiped too.
 *
 * This patches a private API. `installWsReceiverWiping()` checks that the methods exist and throws otherwise; the
 * transport tests prove the effect (fragments wiped, and a memory scan after fragmented, multi-read frames).
 */
import { WebSocket } from 'ws';
import { wipeBytes } from './frame';

/** The private parts of ws's Receiver that we touch (ws 8.x). */
interface ReceiverInternals {
  _buffers: Buffer[];
  _fragments: Buffer[];
  _fin: boolean;
  consume(n: number): Buffer;
  dataMessage(cb: unknown): void;
}

type ReceiverClass = { prototype: ReceiverInternals };

/** Test hook: sees the fragments of every multi-fragment message after they were wiped. */
export type FragmentObserver = (fragments: readonly Buffer[]) => void;

let installed = false;
let observer: FragmentObserver | undefined;
/** Test only: run the same code with wiping off, to show that a memory scan would catch the leak. */
let disabled = false;

function receiverClass(): ReceiverClass {
  const Receiver = (WebSocket as unknown as { Receiver?: ReceiverClass }).Receiver;
  const proto = Receiver?.prototype;
  if (!proto || typeof proto.consume !== 'function' || typeof proto.dataMessage !== 'function') {
    throw new Error(
      "ws's Receiver no longer has consume()/dataMessage(): review src/transport/ws-wipe.ts for this ws version.",
    );
  }
  return Receiver;
}

/** Idempotent. Affects every ws Receiver in the process (clients too), which only ever helps. */
export function installWsReceiverWiping(): void {
  if (installed) return;
  const proto = receiverClass().prototype;
  const consume = proto.consume;
  const dataMessage = proto.dataMessage;

  proto.consume = function (this: ReceiverInternals, n: number): Buffer {
    const first = this._buffers[0];
    // Within one chunk ws returns a view of it, not a copy: the handler's wipe reaches the chunk.
    if (disabled || first === undefined || n <= first.length) return consume.call(this, n);
    const sources: Buffer[] = [];
    let left = n;
    for (const chunk of this._buffers) {
      if (left <= 0) break;
      const take = Math.min(left, chunk.length);
      sources.push(chunk.subarray(0, take));
      left -= take;
    }
    const copy = consume.call(this, n);
    for (const s of sources) wipeBytes(s);
    return copy;
  };

  proto.dataMessage = function (this: ReceiverInternals, cb: unknown): void {
    // Captured before the call: dataMessage resets _fragments. Only a final frame completes a message.
    const fragments = this._fin && this._fragments.length > 1 ? this._fragments : undefined;
    dataMessage.call(this, cb);
    // The message has been concatenated into a new buffer (and emitted, with allowSynchronousEvents).
    if (fragments && !disabled) {
      for (const f of fragments) wipeBytes(f);
      observer?.(fragments);
    }
  };
  installed = true;
}

/** Wipes the bytes a receiver still holds when its connection ends (an incomplete message, unread chunks). */
export function wipeReceiverLeftovers(socket: WebSocket): void {
  if (disabled) return;
  const receiver = (socket as unknown as { _receiver?: ReceiverInternals | null })._receiver;
  if (!receiver) return;
  for (const b of receiver._buffers ?? []) wipeBytes(b);
  for (const f of receiver._fragments ?? []) wipeBytes(f);
}

/** Test only. */
export function setFragmentObserver(fn: FragmentObserver | undefined): void {
  observer = fn;
}

/** Test only: turns the wiping off (true) or on (false) for a control run. */
export function unsafeDisableWsWiping(off: boolean): void {
  disabled = off;
}
