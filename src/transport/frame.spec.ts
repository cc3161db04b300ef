import { inspect } from 'node:util';
import { Frame, releaseFrame, takeFrame, wipeBytes } from './frame';
import { encodeFrameMessage, FRAME_HEADER_BYTES } from './protocol';

const message = (seq = 7, payload = Buffer.alloc(32, 0xab)) =>
  encodeFrameMessage({ format: 'jpeg', seq, captureTime: 1_700_000_000_000 }, payload);

describe('Frame', () => {
  it('is made by the transport with its header decoded and its payload a view into the message', () => {
    const msg = message();
    const frame = takeFrame(msg);
    expect(frame).toBeInstanceOf(Frame);
    if (frame.kind !== 'frame') throw new Error('not a frame');
    expect(frame.header).toEqual({
      version: 1,
      format: 'jpeg',
      seq: 7,
      captureTime: 1_700_000_000_000,
      width: 0,
      height: 0,
    });
    expect(Object.isFrozen(frame.header)).toBe(true);
    expect(frame.payload.length).toBe(32);
    expect(frame.payload.buffer).toBe(msg.buffer); // no copy
    expect(frame.payload.byteOffset).toBe(msg.byteOffset + FRAME_HEADER_BYTES);
    expect(frame.released).toBe(false);
  });

  it('release() zeroes the whole message exactly once, and is idempotent', () => {
    const msg = message();
    const frame = takeFrame(msg) as Frame;
    const fill = jest.spyOn(msg, 'fill');
    frame.release();
    expect(msg.every((b) => b === 0)).toBe(true);
    expect(frame.released).toBe(true);
    msg[25] = 0x42; // bytes written after the release are not the frame's any more
    frame.release();
    releaseFrame(frame);
    expect(fill).toHaveBeenCalledTimes(1);
    expect(msg[25]).toBe(0x42);
  });

  it('wipes a message whose header does not decode, and reports the error and the seq it could read', () => {
    const bad = message(41);
    bad[2] = 9; // unsupported version
    const result = takeFrame(bad);
    expect(result).toMatchObject({ kind: 'malformed', seq: 41, error: { code: 'protocol_version_unsupported' } });
    expect(bad.every((b) => b === 0)).toBe(true);
    releaseFrame(result); // nothing to release: no throw

    const noMagic = Buffer.alloc(40, 0xab);
    expect(takeFrame(noMagic)).toMatchObject({
      kind: 'malformed',
      seq: undefined,
      error: { code: 'protocol_bad_magic' },
    });
    expect(noMagic.every((b) => b === 0)).toBe(true);

    const empty = encodeFrameMessage({ format: 'jpeg', seq: 3, captureTime: 0 }, Buffer.alloc(0));
    expect(takeFrame(empty)).toMatchObject({ kind: 'malformed', seq: 3, error: { code: 'frame_empty', seq: 3 } });
  });

  it('never becomes a string: printing or serialising it shows the header and a byte count only', () => {
    const payload = Buffer.from('secret-frame-bytes-secret-frame-bytes');
    const frame = takeFrame(message(5, payload)) as Frame;
    const texts = [String(frame), `${frame}`, JSON.stringify(frame), inspect(frame), inspect({ frame }, { depth: 5 })];
    for (const text of texts) {
      expect(text).not.toContain('secret');
      expect(text).not.toMatch(/7365637265/); // "secre" in hex
    }
    expect(JSON.parse(JSON.stringify(frame))).toEqual({
      kind: 'frame',
      header: expect.objectContaining({ seq: 5 }),
      bytes: payload.length,
    });
    expect(Object.keys(frame)).not.toContain('payload');
    frame.release();
  });

  it('wipeBytes zeroes the whole Buffer with one fill(0) on it', () => {
    const b = Buffer.alloc(16, 0xff);
    const fill = jest.spyOn(b, 'fill');
    wipeBytes(b);
    expect(fill).toHaveBeenCalledWith(0);
    expect(b.every((x) => x === 0)).toBe(true);
  });
});
