import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Browser, BrowserContext, Page, WebSocketRoute } from 'playwright-core';
import sharp from 'sharp';
import { createApp } from '../src/app.factory';
import { createWorkstation } from '../src/auth';
import { loadConfig } from '../src/config';
import { EngineService } from '../src/engine';
import { CLINICS, WORKSTATIONS, type ClinicRepository, type WorkstationRepository } from '../src/storage/ports';
import { decodeFrameMessage } from '../src/transport/protocol';
import { missingFixturesReason, webcamJpeg } from './support/frames';
import { makeIin } from './support/iin';
import { faceFrames, type FaceFrames } from './support/patient';
import { blinkingSequence, writeY4m } from './support/y4m';

// The demo page and the browser client in real Chromium, against the real app (engine, storage, WebSockets, the
// development SMS outbox, the MIS events feed), with a fake camera: Chromium plays a y4m made here from the public
// sample photos (synthetic frames, with a synthetic blink). Screenshots of the key steps go to
// test-results/screenshots/. With UPDATE_DEMO_PNG=1 the match screenshot also replaces docs/demo.png.

const CHROMIUM = process.env.FACEID_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOTS = path.join(__dirname, '..', 'test-results', 'screenshots');
const DEMO_PNG = path.join(__dirname, '..', 'docs', 'demo.png');
/** The y4m frame rate: Chromium plays the file at this rate, looping. */
const CAMERA_FPS = 15;

function skipReason(): string | null {
  const fixtures = missingFixturesReason();
  if (fixtures) return fixtures;
  if (!fs.existsSync(CHROMIUM)) {
    return `Chromium not found at ${CHROMIUM}: apt-get install chromium (bash scripts/dev.sh setup installs it).`;
  }
  try {
    require.resolve('playwright-core');
  } catch {
    return 'playwright-core is not installed: run npm ci.';
  }
  return null;
}

const skip = skipReason();
if (skip && process.env.CI) throw new Error(`browser tests cannot run in CI: ${skip}`);
if (skip) console.warn(`browser tests skipped: ${skip}`);

type Camera = 'same_blinking' | 'other_blinking' | 'same_still';

(skip ? describe.skip : describe)('demo page and browser client in Chromium (fake camera)', () => {
  jest.setTimeout(120_000);

  let app: NestExpressApplication;
  let base: string;
  let dataDir: string;
  let videoDir: string;
  let apiKey: string;
  let reference: Buffer; // the enrolled patient's reference photo (a 640x480 JPEG)
  const cameras = new Map<Camera, string>();
  const browsers = new Map<Camera, Browser>();
  const contexts: BrowserContext[] = [];
  let serial = 3000;
  const newIin = () => makeIin('1987-03-14', serial++ * 7);

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-browser-'));
    videoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-y4m-'));
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      PORT: '0',
      FACEID_DATA_DIR: dataDir,
      FACEID_BOOTSTRAP: 'false',
      RATE_LIMIT_PER_MINUTE: '0',
      ENGINE_WORKERS: '2',
      BLINK_WINDOW_MS: '4000',
      SESSION_TIMEOUT_MS: '20000',
      SMS_ADAPTER: 'dev', // GET /dev/outbox: the page shows the code the patient would get by SMS
      LOG_LEVEL: 'warn',
    };
    delete env.DATABASE_URL;
    delete env.WS_TRANSPORT;
    app = await createApp({ config: loadConfig(env) });
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;

    const clinic = await app.get<ClinicRepository>(CLINICS).create('Browser test clinic');
    apiKey = (await createWorkstation(app.get<WorkstationRepository>(WORKSTATIONS), clinic.id, 'Desk 1')).apiKey;

    // Fake cameras: the enrolled person (sample photo 2) blinking every 1.8 s, somebody else (photo 3) blinking,
    // and a still photo of the enrolled person. 1.5 s open + 0.33 s closed: a blink follows every request for one
    // well within BLINK_WINDOW_MS.
    const engine = app.get(EngineService).get();
    const same: FaceFrames = await faceFrames(engine, 2);
    const other: FaceFrames = await faceFrames(engine, 3);
    const blinking = (f: FaceFrames) =>
      blinkingSequence(f.open, f.closed, { fps: CAMERA_FPS, openSeconds: 1.5, closedSeconds: 0.33, cycles: 2 });
    const videos: Record<Camera, Buffer[]> = {
      same_blinking: blinking(same),
      other_blinking: blinking(other),
      same_still: Array.from({ length: CAMERA_FPS }, () => same.open[0]),
    };
    for (const [name, frames] of Object.entries(videos) as Array<[Camera, Buffer[]]>) {
      const file = path.join(videoDir, `${name}.y4m`);
      await writeY4m(file, frames, CAMERA_FPS);
      cameras.set(name, file);
    }
    reference = await webcamJpeg(2, { width: 640, height: 480 });
  });

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    for (const b of browsers.values()) await b.close().catch(() => undefined);
    await app?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    if (videoDir) fs.rmSync(videoDir, { recursive: true, force: true }); // the synthetic camera videos
  });

  /** One Chromium per fake camera (the camera file is a launch flag). */
  async function browserWith(camera: Camera): Promise<Browser> {
    const have = browsers.get(camera);
    if (have) return have;
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox', // Chromium as root
        '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream',
        `--use-file-for-fake-video-capture=${cameras.get(camera)}`,
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-dev-shm-usage',
      ],
    });
    browsers.set(camera, browser);
    return browser;
  }

  interface DemoPage {
    page: Page;
    /** Console errors and page errors. */
    problems: string[];
  }

  async function openDemo(
    camera: Camera,
    options: { key?: boolean; before?: (page: Page) => Promise<void> } = {},
  ): Promise<DemoPage> {
    const context = await (await browserWith(camera)).newContext({ viewport: { width: 1280, height: 720 } });
    contexts.push(context);
    // Counts camera requests and keeps the streams, to tell whether the page asked for the camera and released it.
    await context.addInitScript(`(() => {
      const media = navigator.mediaDevices;
      window.cameraRequests = 0;
      window.cameraStreams = [];
      if (!media || !media.getUserMedia) return;
      const open = media.getUserMedia.bind(media);
      media.getUserMedia = async (constraints) => {
        window.cameraRequests++;
        const stream = await open(constraints);
        window.cameraStreams.push(stream);
        return stream;
      };
    })()`);
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    await options.before?.(page); // e.g. WebSocket routes: they apply to sockets of pages loaded after them
    await page.goto(`${base}/`);
    if (options.key !== false) {
      await page.fill('#api-key', apiKey);
      await page.click('#save-key');
      await page.waitForSelector('#key-status.ok');
      // The events feed is live from its connection on: connected before the test acts.
      await page.waitForSelector('#events-status.ok');
    }
    return { page, problems };
  }

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
  }

  async function enrollByFile(page: Page, iin: string): Promise<void> {
    await page.fill('#iin', iin);
    await page.setInputFiles('#enroll-file', { name: 'reference.jpg', mimeType: 'image/jpeg', buffer: reference });
    await page.click('#enroll-upload');
    await page.waitForSelector('#enroll-status.ok, #enroll-status.bad');
    expect(await page.textContent('#enroll-status')).toContain(`Enrolled patient ${iin}`);
  }

  /** Records every guidance code the page shows (they change faster than a test polls). */
  async function recordGuidance(page: Page): Promise<void> {
    await page.evaluate(`(() => {
      const seen = (window.guidanceSeen = []);
      const el = document.getElementById('guidance');
      new MutationObserver(() => {
        const code = el.dataset.code;
        if (code && seen[seen.length - 1] !== code) seen.push(code);
      }).observe(el, { attributes: true, attributeFilter: ['data-code'] });
    })()`);
  }

  const guidanceSeen = (page: Page) => page.evaluate('window.guidanceSeen') as Promise<string[]>;

  /** Starts identification and waits for the verdict shown in the page. */
  async function identifyInPage(page: Page, screenshotPrefix?: string): Promise<{ result: string; text: string }> {
    await recordGuidance(page);
    await page.click('#start');
    if (screenshotPrefix) {
      await page.waitForSelector('#guidance[data-code]:not([data-code=""])', { timeout: 20_000 });
      await shot(page, `${screenshotPrefix}-guidance`);
    }
    await page.waitForSelector('#verdict[data-result]', { timeout: 45_000 });
    await page.waitForSelector('#start:not([disabled])'); // the run is over (stored verdict read)
    const result = (await page.getAttribute('#verdict', 'data-result'))!;
    const text = (await page.textContent('#verdict'))!;
    return { result, text };
  }

  async function expectCameraReleased(page: Page): Promise<void> {
    expect(await page.getAttribute('#preview', 'data-camera')).toBe('off');
    expect(await page.evaluate("document.getElementById('preview').srcObject")).toBeNull();
    // Every camera track the page ever opened is stopped (the camera light is off).
    const live = await page.evaluate('window.cameraStreams.flatMap((s) => s.getTracks()).filter((t) => t.readyState === "live").length');
    expect(live).toBe(0);
  }

  const cameraRequests = (page: Page) => page.evaluate('window.cameraRequests') as Promise<number>;

  /** The session id the page shows ("session <id> ..."). */
  async function shownSessionId(page: Page): Promise<string> {
    const m = /session ([0-9a-f-]{36})/.exec((await page.textContent('#session-info')) ?? '');
    expect(m).not.toBeNull();
    return m![1];
  }

  /** The six-digit code as the page shows it in its development SMS outbox panel, for that session. */
  async function codeFromOutboxPanel(page: Page, sessionId: string): Promise<string> {
    const text = (await (await page.waitForSelector(`#outbox li[data-session-id="${sessionId}"] .sms-text`)).textContent()) ?? '';
    const digits = text.match(/\b\d{6}\b/g) ?? [];
    expect(digits).toHaveLength(1);
    return digits[0]!;
  }

  /** Types the code into the page and confirms it (the button is enabled again, or the step ended, once answered). */
  async function enterCode(page: Page, code: string): Promise<void> {
    await page.fill('#code-input', code);
    await page.click('#code-submit');
    await page.waitForSelector('#code-submit:not([disabled]), #code-panel:not(.active)');
  }

  interface PanelEvent {
    id: string;
    type: string;
    result: string;
    method: string;
    text: string;
  }

  /** The events panel's entries of one session, in the order shown (newest first). */
  function panelEvents(page: Page, sessionId: string): Promise<PanelEvent[]> {
    // Browser-side code as a string (the tests compile without DOM types).
    return page.evaluate(`[...document.querySelectorAll('#events li[data-session-id="${sessionId}"]')].map((li) => ({
      id: li.dataset.eventId, type: li.dataset.type, result: li.dataset.result, method: li.dataset.method,
      text: li.textContent,
    }))`) as Promise<PanelEvent[]>;
  }

  /** The IIN as the events panel must show it: the last four digits only. */
  const maskedIin = (iin: string) => `${'•'.repeat(8)}${iin.slice(-4)}`;

  it('serves the page and the client module under a strict same-origin CSP', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
    expect(html).not.toMatch(/\sstyle=|<style|\son[a-z]+=/); // no inline style or handlers
    for (const [url, type] of [
      ['/client/faceid-client.js', /^text\/javascript/],
      ['/demo/demo.js', /^text\/javascript/],
      ['/demo/demo.css', /^text\/css/],
    ] as const) {
      const r = await fetch(base + url);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(type);
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    }
    for (const url of ['/demo/../package.json', '/demo/index.html.bak', '/client/other.js', '/demo/%2e%2e%2fpackage.json']) {
      expect((await fetch(base + url)).status).toBe(404);
    }

    const { page, problems } = await openDemo('same_blinking', { key: false });
    await shot(page, '00-start');
    expect(await page.textContent('#key-status')).toContain('No key yet');
    // A wrong key is refused by the gateway.
    await page.fill('#api-key', 'fid_ws_' + 'x'.repeat(43));
    await page.click('#save-key');
    await page.waitForSelector('#key-status.bad');
    expect(await page.evaluate("sessionStorage.getItem('faceid.demo.apiKey')")).toBeNull(); // not kept
    // Legible on a small laptop screen and in a narrow window (one column): nothing overflows sideways.
    for (const [width, height] of [[1366, 768], [1024, 600], [800, 600]]) {
      await page.setViewportSize({ width, height });
      expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
      await shot(page, `00-viewport-${width}x${height}`);
    }
    expect(problems.filter((p) => /Content Security Policy|Refused to/i.test(p))).toEqual([]);
  });

  it('builds frame headers the gateway decodes (protocol.md, 20 bytes little-endian)', async () => {
    const { page } = await openDemo('same_blinking', { key: false });
    // Browser-side code as a string: compiled by ts-jest, import() would turn into require().
    const bytes = (await page.evaluate(`(async () => {
      const m = await import('/client/faceid-client.js');
      const msg = m.encodeFrameMessage({ seq: 0xdeadbeef, captureTime: 1700000000123.5 }, new Uint8Array([0xff, 0xd8, 7]));
      return Array.from(msg);
    })()`)) as number[];
    const decoded = decodeFrameMessage(Buffer.from(bytes));
    expect(decoded.header).toEqual({ version: 1, format: 'jpeg', seq: 0xdeadbeef, captureTime: 1_700_000_000_123.5, width: 0, height: 0 });
    expect([...decoded.payload]).toEqual([0xff, 0xd8, 7]);
  });

  it('enrolls a reference photo, then identifies the patient: match shown in the page and in the MIS events', async () => {
    const { page, problems } = await openDemo('same_blinking');
    const iin = newIin();
    await enrollByFile(page, iin);
    await shot(page, '01-enrolled');
    const { result, text } = await identifyInPage(page, '02');
    expect(result).toBe('match');
    expect(text).toMatch(/^Match: identity confirmed\. \(score 0\.\d\d, blinked/);
    const seen = await guidanceSeen(page);
    expect(seen).toContain('blink_now');
    expect(seen[seen.length - 1]).toBe('done');
    await expectCameraReleased(page);
    // The page read back the stored verdict: method face.
    await page.waitForSelector('#verdict[data-method="face"]');
    expect(await page.textContent('#session-info')).toMatch(/stored: match \(face\)/);

    // The MIS events panel shows the verdict event the clinic's MIS receives, with the IIN masked.
    const sessionId = await shownSessionId(page);
    await page.waitForSelector(`#events li[data-session-id="${sessionId}"][data-type="identification.verdict"]`);
    const events = await panelEvents(page, sessionId);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'identification.verdict', result: 'match', method: 'face' });
    expect(events[0].text).toContain(maskedIin(iin));
    expect(await page.textContent('#events')).not.toContain(iin);
    await shot(page, '03-match');
    if (process.env.UPDATE_DEMO_PNG === '1') {
      // The README's picture: this screenshot, as a palette PNG (a fraction of the size).
      await sharp(path.join(SCREENSHOTS, '03-match.png')).png({ palette: true, compressionLevel: 9 }).toFile(DEMO_PNG);
    }
    expect(problems.filter((p) => /Content Security Policy|Refused to/i.test(p))).toEqual([]);
  });

  it('gives no_match to another person in front of the camera', async () => {
    const { page } = await openDemo('other_blinking');
    const iin = newIin();
    await enrollByFile(page, iin); // the enrolled patient's photo; somebody else sits at the desk
    const { result, text } = await identifyInPage(page);
    await shot(page, '04-no-match');
    expect(result).toBe('no_match');
    expect(text).toContain('No match');
    expect(text).toContain('blinked');
    await expectCameraReleased(page);
  });

  it('rejects a still photo that never blinks (spoof_suspected)', async () => {
    const { page } = await openDemo('same_still');
    const iin = newIin();
    await enrollByFile(page, iin);
    const { result, text } = await identifyInPage(page);
    await shot(page, '05-still-photo-rejected');
    expect(result).toBe('spoof_suspected');
    expect(text).toContain('no blink');
    expect(await guidanceSeen(page)).toContain('blink_now');
    await expectCameraReleased(page);
  });

  it('enrolls from a webcam still (a JPEG Blob upload), then identifies: match', async () => {
    const { page } = await openDemo('same_blinking');
    const iin = newIin();
    await page.fill('#iin', iin);
    await page.click('#enroll-camera');
    await page.waitForSelector('#enroll-capture:not([hidden])');
    await page.click('#enroll-capture');
    await page.waitForSelector('#enroll-status.ok, #enroll-status.bad');
    expect(await page.textContent('#enroll-status')).toContain(`Enrolled patient ${iin} from a webcam photo`);
    expect(await page.evaluate("document.getElementById('enroll-preview').srcObject")).toBeNull();
    const { result } = await identifyInPage(page);
    expect(result).toBe('match');
  });

  it('reconnects with a fresh session when the connection drops before the verdict', async () => {
    let connections = 0;
    let droppedSession: string | null = null;
    // The first connection is cut 1 s after the server said ready; later ones pass through untouched.
    const dropFirst = (ws: WebSocketRoute) => {
      const server = ws.connectToServer();
      if (++connections > 1) return;
      server.onMessage((m) => {
        ws.send(m);
        const msg = typeof m === 'string' ? (JSON.parse(m) as { type: string; sessionId?: string }) : null;
        if (msg?.type === 'ready') {
          droppedSession = msg.sessionId!;
          setTimeout(() => {
            void server.close({ code: 1000, reason: 'test' });
            void ws.close({ code: 1001, reason: 'network dropped (test)' });
          }, 1000);
        }
      });
    };
    const { page } = await openDemo('same_blinking', { before: (p) => p.routeWebSocket(/\/ws\/identify$/, dropFirst) });
    const iin = newIin();
    await enrollByFile(page, iin);
    const { result } = await identifyInPage(page);
    expect(result).toBe('match');
    expect(connections).toBe(2);
    expect(await guidanceSeen(page)).toContain('reconnecting');
    // The dropped session has no verdict; the page's last session (the new one) has the match.
    const res = await fetch(`${base}/sessions/${droppedSession}`, { headers: { authorization: `Bearer ${apiKey}` } });
    const first = (await res.json()) as { verdict: unknown };
    expect(first.verdict).toBeNull();
    expect(await page.textContent('#session-info')).not.toContain(droppedSession!);
  });

  it('pauses frames for retryAfterMs on busy, and releases the camera at the verdict', async () => {
    // A scripted server for the client module alone: ready, busy for 1.5 s after 3 frames, then a verdict.
    const frames: Array<{ at: number; seq: number; size: number; format: string; soi: boolean }> = [];
    let busyAt = 0;
    const scripted = (ws: WebSocketRoute) => {
      ws.onMessage((m) => {
        if (typeof m === 'string') {
          if ((JSON.parse(m) as { type: string }).type === 'hello') {
            ws.send(JSON.stringify({ type: 'ready', sessionId: 's1', maxPayload: 262144, fps: { min: 5, max: 15 } }));
          }
          return;
        }
        const f = decodeFrameMessage(m);
        frames.push({
          at: Date.now(),
          seq: f.header.seq,
          size: f.payload.length,
          format: f.header.format,
          soi: f.payload[0] === 0xff && f.payload[1] === 0xd8,
        });
        if (frames.length === 3) {
          busyAt = Date.now();
          ws.send(JSON.stringify({ type: 'busy', retryAfterMs: 1500 }));
        }
        if (frames.length === 6) {
          ws.send(
            JSON.stringify({
              type: 'verdict',
              sessionId: 's1',
              result: 'no_template',
              score: null,
              liveness: { passive: null, blink: false },
              timings: { firstFrameToVerdictMs: null, framesReceived: 6, framesAnalysed: 0, framesDropped: 0 },
            }),
          );
          void ws.close({ code: 1000, reason: 'verdict' });
        }
      });
    };
    const { page } = await openDemo('same_blinking', { key: false, before: (p) => p.routeWebSocket(/\/ws\/scripted$/, scripted) });
    const wsUrl = base.replace('http', 'ws') + '/ws/scripted';
    // Browser-side code as a string: compiled by ts-jest, import() would turn into require().
    const outcome = (await page.evaluate(`(async () => {
      const m = await import('/client/faceid-client.js');
      const states = [];
      let busy = 0;
      let stream = null;
      const run = m.identify({
        session: { wsUrl: ${JSON.stringify(wsUrl)}, protocols: ['faceid.v1', 'token.test'] },
        fps: 10,
        onState: (s) => {
          states.push(s);
          if (s === 'streaming') stream = run.stream;
        },
        onBusy: () => busy++,
      });
      const verdict = await run.done;
      const tracks = stream.getTracks().map((t) => t.readyState);
      return { result: verdict.result, states, busy, tracks };
    })()`)) as { result: string; states: string[]; busy: number; tracks: string[] };
    expect(outcome).toMatchObject({ result: 'no_template', busy: 1, tracks: ['ended'] }); // the camera is released
    expect(outcome.states).toEqual(['camera', 'connecting', 'streaming', 'finished']);
    expect(frames.map((f) => f.seq)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(frames.every((f) => f.format === 'jpeg' && f.soi)).toBe(true);
    // At most one frame was already on its way when busy arrived; the next waits out retryAfterMs.
    const after = frames.slice(3).filter((f) => f.at > busyAt);
    expect(after.filter((f) => f.at - busyAt < 1300).length).toBeLessThanOrEqual(1);
    expect(frames[5].at - busyAt).toBeGreaterThanOrEqual(1300);
    // Frames are small JPEGs (320x240 at quality 0.8).
    for (const f of frames) expect(f.size).toBeLessThan(60_000);
  });

  it('cancels a running identification: the server ends the session, the camera is released', async () => {
    const { page } = await openDemo('same_still');
    await enrollByFile(page, newIin());
    await page.click('#start');
    await page.waitForSelector('#guidance[data-code="hold_still"], #guidance[data-code="blink_now"]', { timeout: 20_000 });
    const sessionId = (await page.textContent('#session-info'))!.replace(/^session /, '');
    await page.click('#cancel');
    await page.waitForSelector('#verdict[data-result="cancelled"]');
    await expectCameraReleased(page);
    const res = await fetch(`${base}/sessions/${sessionId}`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(((await res.json()) as { verdict: unknown }).verdict).toBeNull();
  });

  it('patient refuses the photo mid-identification: camera off, code from the outbox typed in, match by code; the MIS events panel resumes after a drop', async () => {
    // The events feed's first connection drops just as the code verdict comes: the page must reconnect with
    // ?after=<the last event it has> and get the verdict replayed; a repeated event is shown once.
    const feeds: Array<{ url: string; protocols: string[] }> = [];
    let lastForwarded: string | null = null;
    let refusedMessage: string | null = null;
    let droppedVerdict = false;
    const dropOnVerdict = (ws: WebSocketRoute) => {
      feeds.push({ url: ws.url(), protocols: ws.protocols() });
      const server = ws.connectToServer();
      const first = feeds.length === 1;
      let duplicated = false;
      server.onMessage((m) => {
        const msg = typeof m === 'string' ? (JSON.parse(m) as { type: string; event?: { id: string; type: string } }) : null;
        if (first) {
          if (msg?.event?.type === 'identification.verdict' && msg.event.id && !droppedVerdict) {
            droppedVerdict = true;
            void server.close({ code: 1000, reason: 'test' });
            void ws.close({ code: 1012, reason: 'connection dropped (test)' });
            return;
          }
          if (msg?.event?.type === 'identification.refused') refusedMessage = m as string;
          if (msg?.event) lastForwarded = msg.event.id;
        } else if (!duplicated && refusedMessage) {
          duplicated = true;
          ws.send(refusedMessage); // at least once: the same event again
        }
        ws.send(m);
      });
    };
    const { page, problems } = await openDemo('same_blinking', { before: (p) => p.routeWebSocket(/\/ws\/events/, dropOnVerdict) });
    const iin = newIin();
    await enrollByFile(page, iin);
    await page.click('#start');
    await page.waitForSelector('#guidance[data-code]:not([data-code=""])', { timeout: 20_000 });
    const streamed = await shownSessionId(page);
    expect(await page.getAttribute('#preview', 'data-camera')).toBe('on');

    await page.click('#refuse');
    await page.waitForSelector('#code-panel.active');
    await expectCameraReleased(page); // the refusal stops the camera at once
    const sessionId = (await page.getAttribute('#code-panel', 'data-session-id'))!;
    expect(sessionId).toBe(streamed); // the refusal is recorded on the session the patient was asked for
    expect(await page.isHidden('#verdict')).toBe(true); // no "Cancelled" over the code step
    expect(await page.textContent('#code-status')).toContain('six-digit code was sent');

    const code = await codeFromOutboxPanel(page, sessionId);
    await page.waitForSelector(`#events li[data-session-id="${sessionId}"][data-type="identification.refused"]`);
    await shot(page, '06-refused-code-pending');

    // A wrong code first: refused with the attempts left, the step goes on.
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    await enterCode(page, wrong);
    expect(await page.textContent('#code-status')).toMatch(/Wrong code: \d+ attempts? left/);
    expect(await page.isEnabled('#code-input')).toBe(true);

    await enterCode(page, code);
    await page.waitForSelector('#verdict[data-result]');
    expect(await page.getAttribute('#verdict', 'data-result')).toBe('match');
    expect(await page.getAttribute('#verdict', 'data-method')).toBe('code');
    expect(await page.textContent('#verdict')).toContain('Match: identity confirmed. (method: code)');
    expect(await page.isDisabled('#code-input')).toBe(true);

    // The MIS events panel: the refusal and the code verdict, once each, after the feed reconnected.
    await page.waitForSelector(`#events li[data-session-id="${sessionId}"][data-type="identification.verdict"]`, { timeout: 20_000 });
    const events = await panelEvents(page, sessionId);
    expect(events.map((e) => [e.type, e.result, e.method])).toEqual([
      ['identification.verdict', 'match', 'code'],
      ['identification.refused', 'refused', 'none'],
    ]);
    expect(events[1].text).toContain('patient_refused_photo');
    expect(await page.textContent('#events')).not.toContain(iin);
    expect(droppedVerdict).toBe(true);
    expect(feeds).toHaveLength(2);
    expect(feeds.map((f) => f.protocols)).toEqual([
      ['faceid.events.v1', `key.${apiKey}`],
      ['faceid.events.v1', `key.${apiKey}`],
    ]);
    expect(new URL(feeds[0].url).search).toBe('');
    expect(new URL(feeds[1].url).searchParams.get('after')).toBe(lastForwarded);
    expect(lastForwarded).not.toBeNull();
    await page.waitForSelector('#events-status.ok');
    await shot(page, '07-code-match');

    // As stored: the refusal's reason and the code verdict.
    const res = await fetch(`${base}/sessions/${sessionId}`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(await res.json()).toMatchObject({
      state: 'finished',
      refusalReason: 'patient_refused_photo',
      verdict: { result: 'match', method: 'code' },
    });
    expect(problems.filter((p) => /Content Security Policy|Refused to/i.test(p))).toEqual([]);
  });

  it('a remote appointment goes straight to the code: no camera, code sent again from the page, match by code', async () => {
    const { page } = await openDemo('same_blinking');
    const iin = newIin();
    await page.fill('#iin', iin);
    await page.selectOption('#channel', 'remote');
    expect(await page.textContent('#start')).toBe('Send the code');
    expect(await page.isHidden('#refuse')).toBe(true);
    await page.click('#start');
    await page.waitForSelector('#code-panel.active');
    const sessionId = (await page.getAttribute('#code-panel', 'data-session-id'))!;
    expect(await page.textContent('#code-status')).toContain('Remote appointment');
    await codeFromOutboxPanel(page, sessionId); // the first code is there
    await shot(page, '08-remote-code-pending');
    // "The SMS did not arrive": a new code replaces it, and the outbox panel lists it first.
    await page.click('#code-resend');
    await page.locator(`#outbox li[data-session-id="${sessionId}"]`).nth(1).waitFor();
    expect(await page.textContent('#code-status')).toContain('A new code was sent');
    const code = await codeFromOutboxPanel(page, sessionId);
    await enterCode(page, code);
    await page.waitForSelector('#verdict[data-result]');
    expect(await page.getAttribute('#verdict', 'data-result')).toBe('match');
    expect(await page.getAttribute('#verdict', 'data-method')).toBe('code');

    await page.waitForSelector(`#events li[data-session-id="${sessionId}"][data-type="identification.verdict"]`);
    const events = await panelEvents(page, sessionId);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ result: 'match', method: 'code' });
    expect(events[0].text).toContain('remote');
    expect(events[0].text).toContain(maskedIin(iin));
    await shot(page, '09-remote-code-match');

    // The camera was never asked for.
    expect(await cameraRequests(page)).toBe(0);
    expect(await page.isHidden('#preview')).toBe(true);
    const res = await fetch(`${base}/sessions/${sessionId}`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(await res.json()).toMatchObject({ channel: 'remote', state: 'finished', verdict: { result: 'match', method: 'code' } });
  });
});
