import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import {
  releaseFrame,
  WS_PATH,
  type FrameConnection,
  type FrameMessage,
  type SessionTransportHandler,
} from '../src/transport';
import { unsafeDisableWsWiping } from '../src/transport/ws-wipe';
import { UpgradeRouter } from '../src/transport/upgrade-router';
import { UwsTransport } from '../src/transport/uws.transport';
import { WsTransport } from '../src/transport/ws.transport';
import { DEFAULT_MASK, scanMemory } from './support/memscan';

/*
 * Proof that the ws transport leaves no copy of a frame behind once the handler has wiped the buffer it was given.
 * The copies at stake are ws's own (see src/transport/ws-wipe.ts): fragments of a fragmented message, and socket
 * chunks a large frame was copied out of. The client runs in a child process, so this process only ever sees the
 * frames through the socket; the child reports its signatures XOR-masked (see memscan.ts).
 * The client masks with random keys, as browsers must: ws's own copies (fragments, joined chunks) hold unmasked,
 * plain frame bytes, so the scan sees them; raw socket reads hold masked bytes. With an all-zero mask those raw reads
 * become visible too, and Node's socket layer was then seen to keep the last few KB it read (below): masked in real
 * use, not erased (the key sits beside it), and documented in the README rather than hidden here.
 * "control" runs the same with ws-wipe's wiping off (the handler still wipes what it gets): the scan must find
 * the frames, which shows the wiping is what removes them.
 * The last bytes read: under CPU load, a copy of the very end of the last socket read was occasionally found even
 * with every Buffer wiped. A plain `net` server that wipes every chunk shows the same (a few KB of the last read, in
 * about 1 run in 4), so it is Node's socket layer, not ws; later traffic overwrites it. This test is about ws's
 * own copies, so the client ends with 128 KiB of random non-frame bytes, in both modes alike.
 */

const ROOT = path.join(__dirname, '..');
const FRAMES = 16;
const NEEDLE = 32;

/** The child: random frames, half of them sent in 3 fragments, all large enough to span socket reads. */
const CLIENT = `
const crypto = require('node:crypto');
const WebSocket = require(require.resolve('ws', { paths: [process.cwd()] }));
const [url, frames, needle, mask] = [process.argv[1], +process.argv[2], +process.argv[3], +process.argv[4]];
const list = [];
const needles = [];
for (let i = 0; i < frames; i++) {
  const f = crypto.randomBytes(90000 + crypto.randomInt(60000));
  list.push(f);
  const cuts = [Math.floor(f.length / 3), Math.floor((2 * f.length) / 3)];
  // Signatures at the start, across each fragment boundary, in the middle and at the end.
  for (const at of [24, cuts[0] - 8, cuts[1] - 8, Math.floor(f.length / 2) + 5, f.length - needle]) {
    needles.push(Buffer.from(f.subarray(at, at + needle)).map((b) => b ^ mask).toString('hex'));
  }
}
process.stdout.write(JSON.stringify({ needles }) + '\\n');
const ws = new WebSocket(url, { perMessageDeflate: false });
let echoed = 0;
ws.on('open', () => {
  list.forEach((f, i) => {
    if (i % 2 === 0) ws.send(f, { binary: true });
    else {
      const a = Math.floor(f.length / 3), b = Math.floor((2 * f.length) / 3);
      ws.send(f.subarray(0, a), { binary: true, fin: false });
      ws.send(f.subarray(a, b), { binary: true, fin: false });
      ws.send(f.subarray(b), { binary: true, fin: true });
    }
  });
});
ws.on('message', () => {
  if (++echoed !== frames) return;
  // Trailing traffic that is no frame: see "the last bytes read" in the header comment.
  ws.send(crypto.randomBytes(128 * 1024), { binary: true }, () => setTimeout(() => ws.close(1000), 50));
});
ws.on('close', () => process.exit(0));
ws.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

class WipingHandler implements SessionTransportHandler {
  frames = 0;
  bytes = 0;
  closed = 0;
  async authenticate() {
    return { ok: true as const, sessionId: 's' };
  }
  onOpen(): void {}
  onFrame(conn: FrameConnection, frame: FrameMessage): void {
    this.frames++;
    if (frame.kind === 'frame') this.bytes += frame.payload.length;
    releaseFrame(frame);
    conn.sendJson({ type: 'busy', retryAfterMs: 0 });
  }
  onText(): void {}
  onClose(): void {
    this.closed++;
  }
}

interface RunResult {
  frames: number;
  hits: number;
  needles: number;
  found: number;
  /** Frames with at least one signature found. */
  leakedFrames: number[];
}

async function run(mode: 'real' | 'control', kind: 'ws' | 'uws' = 'ws'): Promise<RunResult> {
  const handler = new WipingHandler();
  const server: Server = createServer();
  const silent = { log: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
  const options = {
    handler,
    maxPayload: 256 * 1024,
    origins: { allowed: ['*'], httpPort: () => null },
    logger: silent,
  };
  const router = new UpgradeRouter(server);
  const transport =
    kind === 'ws' ? new WsTransport(server, options) : new UwsTransport({ ...options, host: '127.0.0.1', port: 0 });
  if (transport instanceof WsTransport) router.route(WS_PATH, transport.handleUpgrade);
  router.attach();
  await transport.start();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = kind === 'ws' ? (server.address() as AddressInfo).port : transport.port();
  const url = `ws://127.0.0.1:${port}${WS_PATH}`;
  unsafeDisableWsWiping(mode === 'control');
  let stdout = '';
  let stderr = '';
  try {
    const child = spawn(process.execPath, ['-e', CLIENT, url, String(FRAMES), String(NEEDLE), String(DEFAULT_MASK)], {
      cwd: ROOT,
    });
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    if (code !== 0) throw new Error(`client failed (${code}): ${stderr}`);
    const deadline = Date.now() + 5000;
    while (handler.closed === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  } finally {
    unsafeDisableWsWiping(false);
    await transport.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  const report = JSON.parse(stdout.split('\n')[0]) as { needles: string[] };
  const needles = report.needles.map((h) => Buffer.from(h, 'hex'));
  const result = scanMemory(needles, DEFAULT_MASK);
  const perFrame = needles.length / FRAMES;
  return {
    frames: handler.frames,
    hits: result.hits,
    needles: needles.length,
    found: result.perNeedle.filter((n) => n > 0).length,
    leakedFrames: [...new Set(result.perNeedle.flatMap((n, i) => (n > 0 ? [Math.floor(i / perFrame)] : [])))],
  };
}

describe('ws transport zeroing (memory scan)', () => {
  // Real first: the control's leftovers are other frames, so they cannot be mistaken for the real run's.
  it('leaves no frame bytes behind: fragments and multi-read chunks are wiped', async () => {
    const r = await run('real');
    expect(r.frames).toBe(FRAMES + 1); // + the trailing non-frame message
    expect({ hits: r.hits, found: r.found }).toEqual({ hits: 0, found: 0 });
  });

  it('control (ws-wipe off, the handler still wipes): the same scan finds the frames', async () => {
    const r = await run('control');
    expect(r.frames).toBe(FRAMES + 1); // + the trailing non-frame message
    // How much of the unwiped copies is still there depends on what reused the memory meanwhile (a loaded run found
    // 17 of 80 needles, under the quarter this once required); the control only has to show the scan sees them.
    console.log(`transport zeroing control: ${r.found}/${r.needles} needles found, frames ${r.leakedFrames.join(',')}`);
    expect(r.found).toBeGreaterThan(0);
    expect(r.leakedFrames.length).toBeGreaterThan(0);
  });

  // A known limit, measured rather than hidden: uWS unmasks in place in its native buffers (a shared 512 KiB
  // receive buffer per event loop, and per-socket buffers for messages that span reads), out of JavaScript's
  // reach. The adapter zeroes every byte uWS shows to JavaScript and the handler wipes its copy; without that,
  // every frame would be found. What uWS keeps natively is measured here: in 29 runs (load average 5 to 17 on 2
  // cores), 2 to 4 of the 16 frames and 4 to 9 of 80 needles; the frames kept were the last 5 sent but once (an early
  // one, under load), so only their number is bounded, with a margin of 2 over the most seen.
  it("uws (known leak, measured): the adapter wipes what it can reach; uWS's native buffers keep a few recent frames", async () => {
    const r = await run('real', 'uws');
    expect(r.frames).toBe(FRAMES + 1); // + the trailing non-frame message
    console.log(
      `uws known leak: ${r.leakedFrames.length}/${FRAMES} frames (${r.leakedFrames.join(',')}), ${r.found}/${r.needles} needles`,
    );
    expect(r.leakedFrames.length).toBeLessThanOrEqual(6);
  });
});
