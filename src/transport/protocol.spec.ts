import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CLIENT_MESSAGES,
  FRAME_HEADER_BYTES,
  PROTOCOL_ERROR_CODES,
  ProtocolError,
  SERVER_MESSAGES,
  ServerMessage,
  WS_CLOSE,
  decodeFrameMessage,
  encodeFrameMessage,
  parseClientMessage,
  peekFrameSeq,
  rawFrameBytes,
  type FrameHeader,
  type ProtocolErrorCode,
} from './protocol';
import { renderProtocolDoc } from './protocol-doc';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).closeCode).toBe(WS_CLOSE.protocol_error);
    return (err as ProtocolError).code;
  }
  return undefined;
}

describe('frame codec', () => {
  it('round-trips every format, returning the payload as a view (no copy)', () => {
    const cases: [FrameHeader['format'], number, number][] = [
      ['jpeg', 0, 0],
      ['rgba', 4, 3],
      ['bgr', 5, 2],
      ['i420', 4, 2],
    ];
    for (const [format, width, height] of cases) {
      const bytes = format === 'jpeg' ? 1234 : rawFrameBytes(format, width, height);
      const payload = Buffer.from(Array.from({ length: bytes }, (_, i) => (i * 7 + 1) & 0xff));
      const header = { format, seq: 0xfffffffe, captureTime: 1_767_225_600_123.25, width, height };
      const msg = encodeFrameMessage(header, payload);
      expect(msg.length).toBe(FRAME_HEADER_BYTES + bytes);
      expect([...msg.subarray(0, 4)]).toEqual([0x46, 0x49, 1, ['jpeg', 'rgba', 'bgr', 'i420'].indexOf(format)]);
      const decoded = decodeFrameMessage(msg);
      expect(decoded.header).toEqual({ version: 1, ...header });
      expect(decoded.payload.equals(payload)).toBe(true);
      expect(decoded.payload.buffer).toBe(msg.buffer); // a view: wiping the message wipes the payload
      expect(decoded.payload.byteOffset).toBe(msg.byteOffset + FRAME_HEADER_BYTES);
    }
  });

  it('is little-endian as documented', () => {
    const msg = encodeFrameMessage(
      { format: 'bgr', seq: 0x01020304, captureTime: 1, width: 0x0102, height: 1 },
      Buffer.alloc(0x0102 * 3),
    );
    expect([...msg.subarray(4, 8)]).toEqual([4, 3, 2, 1]);
    expect(msg.readDoubleLE(8)).toBe(1);
    expect([...msg.subarray(16, 20)]).toEqual([2, 1, 1, 0]);
  });

  const valid = () => encodeFrameMessage({ format: 'jpeg', seq: 7, captureTime: 0 }, Buffer.from([0xff, 0xd8, 0xff]));
  const raw = (format: 'rgba' | 'bgr' | 'i420', w: number, h: number, bytes: number) =>
    encodeFrameMessage({ format, seq: 7, captureTime: 0, width: w, height: h }, Buffer.alloc(bytes));

  it.each<[ProtocolErrorCode, () => Buffer]>([
    ['protocol_bad_magic', () => Buffer.alloc(0)],
    ['protocol_bad_magic', () => Buffer.from('{"type":"hello"}')],
    ['protocol_bad_magic', () => Object.assign(valid(), { 1: 0x4a })],
    ['protocol_header_truncated', () => valid().subarray(0, FRAME_HEADER_BYTES - 1)],
    ['protocol_version_unsupported', () => Object.assign(valid(), { 2: 2 })],
    ['protocol_version_unsupported', () => Object.assign(valid(), { 2: 0 })],
    ['protocol_bad_format', () => Object.assign(valid(), { 3: 4 })],
    ['frame_empty', () => valid().subarray(0, FRAME_HEADER_BYTES)],
    ['frame_dimensions_invalid', () => raw('rgba', 0, 10, 40)],
    ['frame_dimensions_invalid', () => raw('bgr', 10, 0, 30)],
    ['frame_dimensions_invalid', () => raw('i420', 3, 2, 9)],
    ['frame_size_mismatch', () => raw('rgba', 2, 2, 15)],
    ['frame_size_mismatch', () => raw('i420', 2, 2, 7)],
  ])('refuses with %s', (code, make) => {
    expect(codeOf(() => decodeFrameMessage(make()))).toBe(code);
  });

  it('echoes seq in frame-level errors once the header was readable', () => {
    try {
      decodeFrameMessage(raw('rgba', 2, 2, 15));
    } catch (err) {
      expect((err as ProtocolError).seq).toBe(7);
    }
  });

  it('peeks only the seq of a message dropped unread (for its ack), and only behind the magic', () => {
    const msg = valid();
    const copy = Buffer.from(msg);
    expect(peekFrameSeq(msg)).toBe(7);
    expect(msg.equals(copy)).toBe(true);
    expect(peekFrameSeq(encodeFrameMessage({ format: 'jpeg', seq: 0xffffffff, captureTime: 0 }, Buffer.alloc(0)))).toBe(
      0xffffffff,
    );
    expect(peekFrameSeq(msg.subarray(0, 7))).toBeUndefined();
    expect(peekFrameSeq(Object.assign(Buffer.from(msg), { 0: 0x47 }))).toBeUndefined();
  });

  it('never alters the bytes it parses', () => {
    const msg = valid();
    const copy = Buffer.from(msg);
    decodeFrameMessage(msg);
    expect(msg.equals(copy)).toBe(true);
  });

  it('covers every ProtocolError code in these tests or the text parser', () => {
    expect([...PROTOCOL_ERROR_CODES].sort()).toEqual(
      [
        'protocol_bad_magic',
        'protocol_header_truncated',
        'protocol_version_unsupported',
        'protocol_bad_format',
        'protocol_bad_message',
        'frame_empty',
        'frame_dimensions_invalid',
        'frame_size_mismatch',
      ].sort(),
    );
  });
});

describe('control messages', () => {
  it('parses the client messages, ignoring unknown fields', () => {
    expect(parseClientMessage('{"type":"hello","client":"web/1.0","extra":1}')).toEqual({
      type: 'hello',
      client: 'web/1.0',
    });
    expect(parseClientMessage('{"type":"hello"}')).toEqual({ type: 'hello' });
    expect(parseClientMessage('{"type":"cancel"}')).toEqual({ type: 'cancel' });
    expect(parseClientMessage('{"type":"hello","ack":true}')).toEqual({ type: 'hello', ack: true });
    expect(codeOf(() => parseClientMessage('{"type":"hello","ack":"yes"}'))).toBe('protocol_bad_message');
  });

  it.each([
    ['not json', 'Control messages must be JSON.'],
    ['null', 'Unknown message type.'],
    ['[]', 'Unknown message type.'],
    ['{"type":"verdict"}', 'Unknown message type.'],
    ['{"type":"hello","client":5}', "Invalid 'hello' message."],
    [`{"type":"hello","client":"${'x'.repeat(101)}"}`, "Invalid 'hello' message."],
    [JSON.stringify({ type: 'cancel', pad: 'x'.repeat(5000) }), 'Control messages are at most 4096 characters.'],
  ])('refuses %s with protocol_bad_message, quoting nothing of it', (text, message) => {
    expect(codeOf(() => parseClientMessage(text))).toBe('protocol_bad_message');
    try {
      parseClientMessage(text);
    } catch (err) {
      expect((err as Error).message).toBe(message);
    }
  });

  it('validates server messages strictly', () => {
    const ok: ServerMessage[] = [
      { type: 'ready', sessionId: 's', maxPayload: 262144, fps: { min: 5, max: 15 } },
      { type: 'guidance', code: 'blink_now', progress: 0.5 },
      { type: 'busy', retryAfterMs: 200 },
      { type: 'challenge', kind: 'light', challengeId: 'c1', colours: [{ rgb: [255, 0, 0], ms: 300 }] },
      { type: 'challenge', kind: 'turn', challengeId: 'c2', direction: 'left' },
      { type: 'error', code: 'frame_corrupt', message: 'x', seq: 3 },
      { type: 'ack', seq: 3, outcome: 'analysed' },
      { type: 'ack', seq: 0xffffffff, outcome: 'refused' },
      {
        type: 'verdict',
        sessionId: 's',
        result: 'match',
        liveness: { passive: 0.9, blink: true, light: true, turn: null },
        reason: null,
        timings: { firstFrameToVerdictMs: 1800, framesReceived: 30, framesAnalysed: 20, framesDropped: 10 },
      },
      {
        type: 'verdict',
        sessionId: 's',
        result: 'timeout',
        liveness: { passive: null, blink: false, light: null, turn: null },
        reason: 'no_blink',
        timings: { firstFrameToVerdictMs: null, framesReceived: 0, framesAnalysed: 0, framesDropped: 0 },
      },
    ];
    for (const m of ok) expect(ServerMessage.parse(m)).toEqual(m);
    for (const bad of [
      { type: 'guidance', code: 'smile', progress: 0.5 },
      { type: 'guidance', code: 'no_face', progress: 1.5 },
      { type: 'error', code: 'Not A Code', message: 'x' },
      { type: 'ready', sessionId: 's', maxPayload: 1, fps: { min: 5, max: 15 }, token: 'leak' },
      // An ack says what became of the frame and nothing of its analysis.
      { type: 'ack', seq: 3, outcome: 'analysed', score: 0.8 },
      { type: 'ack', seq: 3, outcome: 'analysed', engineMs: 12 },
      { type: 'ack', seq: 3, outcome: 'lost' },
      { type: 'ack', seq: -1, outcome: 'dropped' },
      // The desk never gets the similarity score (it could hill-climb on it).
      {
        type: 'verdict',
        sessionId: 's',
        result: 'no_match',
        score: 0.31,
        liveness: { passive: null, blink: true, light: true, turn: null },
        reason: null,
        timings: { firstFrameToVerdictMs: 1800, framesReceived: 30, framesAnalysed: 20, framesDropped: 10 },
      },
    ]) {
      expect(ServerMessage.safeParse(bad).success).toBe(false);
    }
  });
});

describe('docs/protocol.md', () => {
  const file = path.join(__dirname, '..', '..', 'docs', 'protocol.md');
  const doc = fs.readFileSync(file, 'utf8');

  it('is up to date with the schemas (npx ts-node --transpile-only scripts/protocol-doc.ts)', () => {
    expect(renderProtocolDoc(doc)).toBe(doc);
  });

  it('documents every message type and close code', () => {
    for (const schema of [...CLIENT_MESSAGES, ...SERVER_MESSAGES])
      expect(doc).toContain(`#### \`${schema.shape.type.value}\``);
    for (const code of Object.values(WS_CLOSE)) expect(doc).toContain(`| ${code} |`);
    for (const code of PROTOCOL_ERROR_CODES) expect(doc).toContain(`\`${code}\``);
  });
});
