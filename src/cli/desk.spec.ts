import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { RenderedFrame, SceneModel } from '../liveness/pad/render';
import { decodeFrameMessage, HelloMessage, LightShownMessage } from '../transport/protocol';
import { deskHello, playDesk, realTimeDesk, SYNTHETIC_CAMERA } from './desk';
import { main } from './main';

// The real-time desk player against a scripted server on a real socket: what a client of the protocol must send, in
// which order and on which clock. The model is a flat grey frame (the scene models are checked in render.spec.ts).

const flat: SceneModel = {
  kind: 'still',
  params: {},
  jpegQuality: 80,
  frameAt(t: number): RenderedFrame {
    return {
      data: Buffer.alloc(32 * 24 * 3, 128),
      width: 32,
      height: 24,
      t,
      truth: {
        sceneTime: t,
        landmarks: null,
        yaw: 0,
        pitch: 0,
        roll: 0,
        eyesClosed: false,
        screenLight: [0, 0, 0],
        exposureGain: null,
      },
    };
  },
};

type Seen =
  | { kind: 'text'; msg: Record<string, unknown>; at: number }
  | { kind: 'frame'; captureTime: number; at: number };

/** A server that sends `ready`, then lets `script` answer each client message; ends with a verdict and 1000. */
async function serve(script: (seen: Seen[], ws: WebSocket, finish: () => void) => void) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => wss.once('listening', resolve));
  const seen: Seen[] = [];
  wss.on('connection', (ws) => {
    const finish = () => {
      ws.send(JSON.stringify({ type: 'verdict', result: 'error' }));
      ws.close(1000);
    };
    ws.on('message', (data, isBinary) => {
      const at = Date.now();
      if (isBinary)
        seen.push({ kind: 'frame', captureTime: decodeFrameMessage(data as Buffer).header.captureTime, at });
      else seen.push({ kind: 'text', msg: JSON.parse(data.toString()), at });
      script(seen, ws, finish);
    });
    ws.send(JSON.stringify({ type: 'ready', sessionId: 's' }));
  });
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  return { url, seen, close: () => new Promise((resolve) => wss.close(resolve)) };
}

describe('playDesk', () => {
  it('sends hello first, frames on the client clock, and light_shown after the colours', async () => {
    const colours = [
      { rgb: [255, 0, 0], ms: 120 },
      { rgb: [0, 0, 255], ms: 90 },
      { rgb: [0, 255, 0], ms: 100 },
    ];
    let challengeSentAt = 0;
    const server = await serve((seen, ws, finish) => {
      const frames = seen.filter((s) => s.kind === 'frame');
      const last = seen[seen.length - 1];
      if (last.kind === 'frame' && frames.length === 2) {
        challengeSentAt = Date.now();
        ws.send(JSON.stringify({ type: 'challenge', kind: 'light', challengeId: 'c1', colours }));
      }
      if (last.kind === 'text' && last.msg.type === 'light_shown') finish();
    });
    try {
      const before = Date.now();
      const run = await playDesk(server.url, 'token', realTimeDesk(flat), { fps: 30, timeoutMs: 20_000 });
      expect(run.verdict).toMatchObject({ type: 'verdict' });
      expect(run.closeCode).toBe(1000);

      const [first, ...rest] = server.seen;
      expect(first.kind).toBe('text');
      const hello = HelloMessage.parse((first as { msg: unknown }).msg);
      expect(hello).toEqual(deskHello());
      expect(hello.capabilities).toEqual(['blink', 'light', 'turn']);
      expect(hello.camera).toEqual({
        label: 'faceid simulate (synthetic)',
        deviceIdHash: SYNTHETIC_CAMERA.deviceIdHash,
      });
      expect(SYNTHETIC_CAMERA.deviceIdHash).toMatch(/^[0-9a-f]{64}$/);

      // captureTime: epoch ms of this machine, taken before the frame left.
      const frames = rest.filter((s): s is Extract<Seen, { kind: 'frame' }> => s.kind === 'frame');
      expect(frames.length).toBeGreaterThanOrEqual(2);
      for (const f of frames) {
        expect(f.captureTime).toBeGreaterThanOrEqual(before - 1);
        expect(f.captureTime).toBeLessThanOrEqual(f.at + 1);
      }
      expect(frames.map((f) => f.captureTime)).toEqual([...frames.map((f) => f.captureTime)].sort((a, b) => a - b));

      const shown = LightShownMessage.parse(
        server.seen.map((s) => (s.kind === 'text' ? s.msg : null)).find((m) => m?.type === 'light_shown'),
      );
      expect(shown.challengeId).toBe('c1');
      expect(shown.shownAt).toHaveLength(colours.length + 1);
      // Painted after the challenge arrived, each colour for as long as asked, on the frames' clock.
      expect(shown.shownAt[0]).toBeGreaterThanOrEqual(challengeSentAt - 1);
      expect(shown.shownAt.slice(1).map((x, i) => Math.round(x - shown.shownAt[i]))).toEqual(colours.map((c) => c.ms));
    } finally {
      await server.close();
    }
  });

  it('plays an old client: no hello, frames at once', async () => {
    const server = await serve((seen, _ws, finish) => {
      if (seen.length === 2) finish();
    });
    try {
      const run = await playDesk(server.url, 'token', realTimeDesk(flat), { hello: null, fps: 30, timeoutMs: 20_000 });
      expect(run.verdict).not.toBeNull();
      expect(server.seen.slice(0, 2).map((s) => s.kind)).toEqual(['frame', 'frame']);
    } finally {
      await server.close();
    }
  });

  it('without a desk, says hello and sends no frame', async () => {
    const server = await serve((seen, _ws, finish) => finish());
    try {
      const run = await playDesk(server.url, 'token', null, {
        hello: deskHello('OBS Virtual Camera'),
        timeoutMs: 20_000,
      });
      expect(run.framesSent).toBe(0);
      expect(server.seen).toEqual([{ kind: 'text', msg: deskHello('OBS Virtual Camera'), at: expect.any(Number) }]);
    } finally {
      await server.close();
    }
  });
});

describe('faceid simulate options', () => {
  const capture = () => {
    let err = '';
    return { io: { stdout: { write: () => true }, stderr: { write: (s: string) => (err += s) } }, err: () => err };
  };
  it.each([
    [['--mode', 'mask'], '--mode must be one of genuine, still, painted_blink'],
    [['--still', '--mode', 'print'], '--still is --mode still'],
    [['--camera-label', 'OBS Virtual Camera', '--no-hello'], 'not with --no-hello'],
    [['--camera-label', ''], '--camera-label must be 1-200 characters'],
    [['--fps', '0'], '--fps must be an integer from 1 to 60'],
    [['--seed', 'abc'], '--seed must be a whole number'],
  ])('refuses %j before opening the engine', async (args, message) => {
    const c = capture();
    expect(await main(['simulate', '--url', 'ws://127.0.0.1:9/ws/identify', '--token', 't', ...args], c.io)).toBe(2);
    expect(c.err()).toContain(message);
    expect(c.err()).toContain('Usage: faceid simulate');
  });
});
