import { createHash } from 'node:crypto';
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
import {
  CLINICS,
  EVENTS,
  WORKSTATIONS,
  type ClinicRepository,
  type EventRepository,
  type WorkstationRepository,
} from '../src/storage/ports';
import { decodeFrameMessage } from '../src/transport/protocol';
import { missingFixturesReason, webcamJpeg } from './support/frames';
import { makeIin } from './support/iin';
import {
  standInFrames,
  STAND_IN_LABEL,
  useStandInCamera,
  type StandInBehaviour,
  type StandInConfig,
  type StandInFrames,
} from './support/stand-in-camera';

// The demo page and the browser client in real Chromium, against the real app (engine, storage, WebSockets, the
// development SMS outbox, the MIS events feed, the liveness challenges). Screenshots of the key steps go to
// test-results/screenshots/. With UPDATE_DEMO_PNG=1 the match screenshot also replaces docs/demo.png.
//
// The camera: a face must answer the light challenge (the screen's colours light it), which Chromium's fake camera
// (a fixed video) cannot. So the patient tests use a STAND-IN camera, a TEST DOUBLE of a real face lit by the screen
// (support/stand-in-camera.*): getUserMedia is replaced, in the test's browser context only, by a canvas stream of
// the sample photo's frames that brightens the face when the page's light overlay shows a colour, and closes the
// eyes when the page asks for a blink. Its behaviours play the attacks: a still photo, a photo with painted blinks,
// a virtual camera. Chromium's own fake device remains for the tests of the client module alone.

const CHROMIUM = process.env.FACEID_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOTS = path.join(__dirname, '..', 'test-results', 'screenshots');
const DEMO_PNG = path.join(__dirname, '..', 'docs', 'demo.png');
const LOCALES = path.join(__dirname, '..', 'client', 'locales');

/** The desk's languages, the browser language that picks each, and the README screenshot of each (UPDATE_DEMO_PNG=1). */
const DESK_LANGUAGES = [
  { lang: 'kk', locale: 'kk-KZ', png: path.join(__dirname, '..', 'docs', 'demo-kk.png') },
  { lang: 'ru', locale: 'ru-KZ', png: path.join(__dirname, '..', 'docs', 'demo-ru.png') },
  { lang: 'en', locale: 'en-US', png: null },
];

/** A language's dictionary (client/locales/<lang>.json): the texts the page must show. */
const dictionary = (lang: string) =>
  JSON.parse(fs.readFileSync(path.join(LOCALES, `${lang}.json`), 'utf8')) as Record<string, string>;

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

/**
 * The camera of a test's browser context. `chromium`: Chromium's own fake device (a test pattern, a real device
 * path). The rest are the stand-in: the enrolled patient (`patient`), somebody else (`other`), a still photo of the
 * patient, a photo of the patient with painted blinks, a replay that blinks on cue and takes the screen's colours
 * evenly over the whole picture (a colour filter, or a print filling the view), the patient through a virtual camera.
 */
type Camera = 'chromium' | 'patient' | 'other' | 'still_photo' | 'painted_blink' | 'tinted_replay' | 'virtual_camera';

const CAMERAS: Record<Exclude<Camera, 'chromium'>, { person: 'patient' | 'other' } & StandInBehaviour> = {
  patient: { person: 'patient', light: true, blink: true },
  other: { person: 'other', light: true, blink: true },
  still_photo: { person: 'patient', light: false, blink: false, still: true },
  painted_blink: { person: 'patient', light: false, blink: true },
  tinted_replay: { person: 'patient', light: true, blink: true, lightOn: 'frame' },
  virtual_camera: { person: 'patient', light: true, blink: true, label: 'OBS Virtual Camera' },
};

/** Reasons a liveness failure may give (the verdict's `reason`). */
const LIGHT_REASONS = [
  'light_not_shown',
  'light_out_of_order',
  'light_late',
  'light_no_response',
  'light_uniform',
  'light_flat',
];

(skip ? describe.skip : describe)('demo page and browser client in Chromium (stand-in and fake cameras)', () => {
  jest.setTimeout(120_000);

  let app: NestExpressApplication;
  let base: string;
  let dataDir: string;
  let apiKey: string;
  let faceAttemptsMax: number;
  let reference: Buffer; // the enrolled patient's reference photo (a 640x480 JPEG)
  let otherReference: Buffer; // somebody else's photo: the patient in front of the camera does not match it
  const people = new Map<'patient' | 'other', StandInFrames>();
  let browser: Browser | null = null;
  const contexts: BrowserContext[] = [];
  let serial = 3000;
  const newIin = () => makeIin('1987-03-14', serial++ * 7);

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-browser-'));
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      PORT: '0',
      FACEID_DATA_DIR: dataDir,
      FACEID_BOOTSTRAP: 'false',
      RATE_LIMIT_PER_MINUTE: '0',
      ENGINE_WORKERS: '2',
      BLINK_WINDOW_MS: '4000',
      SESSION_TIMEOUT_MS: '30000', // the light challenge takes a few seconds before the blink
      LIVENESS_CHALLENGES: 'light,blink', // the default, stated: the tests are about it
      SMS_ADAPTER: 'dev', // GET /dev/outbox: the page shows the code the patient would get by SMS
      LOG_LEVEL: 'warn',
    };
    delete env.DATABASE_URL;
    delete env.WS_TRANSPORT;
    const config = loadConfig(env);
    faceAttemptsMax = config.FACE_ATTEMPTS_MAX;
    app = await createApp({ config });
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;

    const clinic = await app.get<ClinicRepository>(CLINICS).create('Browser test clinic');
    // The desk enrolls its patients, as on the demo clinic of a first start (`faceid clinic desk-enrollment ID on`).
    await app.get<ClinicRepository>(CLINICS).setDeskEnrollment(clinic.id, true);
    apiKey = (await createWorkstation(app.get<WorkstationRepository>(WORKSTATIONS), clinic.id, 'Desk 1')).apiKey;

    // The stand-in camera's people: the enrolled patient (sample photo 2) and somebody else (photo 3), as
    // webcam-like frames with painted blinks, and where the face is in each.
    const engine = app.get(EngineService).get();
    people.set('patient', await standInFrames(engine, 2));
    people.set('other', await standInFrames(engine, 3));
    reference = await webcamJpeg(2, { width: 640, height: 480 });
    otherReference = await webcamJpeg(4, { width: 640, height: 480 });
  });

  // Each test's browser contexts close with it: their pages' event feeds hold connections on the one workstation key,
  // which the gateway caps per key.
  afterEach(async () => {
    for (const c of contexts.splice(0)) await c.close().catch(() => undefined);
  });

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await app?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  /** One Chromium for all tests: the stand-in camera lives in each test's browser context. */
  async function chromium(): Promise<Browser> {
    if (browser) return browser;
    const { chromium: launcher } = await import('playwright-core');
    browser = await launcher.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox', // Chromium as root
        '--use-fake-device-for-media-stream', // Chromium's own fake camera, for the `chromium` camera
        '--use-fake-ui-for-media-stream',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-dev-shm-usage',
      ],
    });
    return browser;
  }

  interface DemoPage {
    page: Page;
    /** Console errors and page errors. */
    problems: string[];
    /** The stand-in camera's configuration (none with Chromium's own fake camera). */
    camera?: StandInConfig;
  }

  async function openDemo(
    camera: Camera,
    options: { key?: boolean; before?: (page: Page) => Promise<void>; locale?: string } = {},
  ): Promise<DemoPage> {
    // The browser's language (navigator.languages): the page's default language. English unless a test says.
    const context = await (
      await chromium()
    ).newContext({ viewport: { width: 1280, height: 720 }, locale: options.locale ?? 'en-US' });
    contexts.push(context);
    let standIn: StandInConfig | undefined;
    if (camera !== 'chromium') {
      const { person, ...behaviour } = CAMERAS[camera];
      standIn = await useStandInCamera(context, people.get(person)!, behaviour); // before the wrapper below: it wraps this
    }
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
    await page.waitForSelector('body[data-ready="true"]'); // the dictionary is loaded and the texts are in
    if (options.key !== false) {
      await page.fill('#api-key', apiKey);
      await page.click('#save-key');
      await page.waitForSelector('#key-status.ok');
      // The events feed is live from its connection on: connected before the test acts.
      await page.waitForSelector('#events-status.ok');
    }
    return { page, problems, camera: standIn };
  }

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
  }

  async function enrollByFile(page: Page, iin: string, photo: Buffer = reference): Promise<void> {
    await page.fill('#iin', iin);
    await page.setInputFiles('#enroll-file', { name: 'reference.jpg', mimeType: 'image/jpeg', buffer: photo });
    await page.click('#enroll-upload');
    await page.waitForSelector('#enroll-status.ok, #enroll-status.bad');
    const text = (await page.textContent('#enroll-status'))!;
    expect({ ok: await page.isVisible('#enroll-status.ok'), text }).toEqual({
      ok: true,
      text: expect.stringContaining(iin),
    });
    if ((await page.getAttribute('html', 'lang')) === 'en') expect(text).toContain(`Enrolled patient ${iin}`);
  }

  const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  /** Where the page loads axe-core from: a same-origin URL the test answers, so the page's CSP stays as it is. */
  const AXE_URL = '/__test__/axe.min.js';

  /** axe-core over the whole page as it is now: no serious or critical violation. */
  async function expectAccessible(page: Page, label: string): Promise<void> {
    if ((await page.evaluate('typeof window.axe')) !== 'object') {
      await page.route(`**${AXE_URL}`, (route) =>
        route.fulfill({ body: AXE_SOURCE, contentType: 'text/javascript; charset=utf-8' }),
      );
      await page.addScriptTag({ url: AXE_URL });
    }
    const violations = (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) =>
      r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) })))`)) as Array<{
      id: string;
      impact: string | null;
      nodes: string[];
    }>;
    const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    expect({ label, serious }).toEqual({ label, serious: [] });
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

  /**
   * Records the light overlay as the page shows it: each colour in order, and whether it covered the whole window
   * on top of everything (the stand-in camera sees the same colours; this is the test's own record).
   */
  async function recordLight(page: Page, screenshot?: string): Promise<void> {
    if (screenshot) {
      // The first colour on screen, as the patient sees it.
      void page
        .waitForSelector('[data-faceid-light]', { timeout: 30_000 })
        .then(() => shot(page, screenshot))
        .catch(() => undefined);
    }
    await page.evaluate(`(() => {
      const seen = (window.lightSeen = { colours: [], covered: true });
      const note = () => {
        const el = document.querySelector('[data-faceid-light]');
        if (!el) return;
        const colour = el.style.backgroundColor;
        if (colour && seen.colours[seen.colours.length - 1] !== colour) {
          seen.colours.push(colour);
          const r = el.getBoundingClientRect();
          const top = document.elementFromPoint(window.innerWidth / 2, window.innerHeight / 2);
          const cs = getComputedStyle(el);
          seen.covered = seen.covered && cs.position === 'fixed' && r.left <= 0 && r.top <= 0 &&
            r.right >= window.innerWidth && r.bottom >= window.innerHeight && top === el;
        }
      };
      new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['style'] });
    })()`);
  }

  /** The JSON text messages the page sends on its identification sockets, from now on. */
  function recordSent(page: Page): Array<{ type: string } & Record<string, unknown>> {
    const sent: Array<{ type: string } & Record<string, unknown>> = [];
    page.on('websocket', (ws) => {
      if (!/\/ws\/identify$/.test(ws.url())) return;
      ws.on('framesent', (f) => {
        if (typeof f.payload === 'string') sent.push(JSON.parse(f.payload) as { type: string });
      });
    });
    return sent;
  }

  /** The client's words for a verdict reason (REASON_MESSAGES). */
  const reasonText = (page: Page, reason: string) =>
    page.evaluate(
      `import('/client/faceid-client.js').then((m) => m.REASON_MESSAGES[${JSON.stringify(reason)}])`,
    ) as Promise<string>;

  const lightSeen = (page: Page) =>
    page.evaluate('window.lightSeen') as Promise<{ colours: string[]; covered: boolean }>;

  /** Starts identification and waits for the verdict shown in the page. */
  async function identifyInPage(
    page: Page,
    screenshotPrefix?: string,
  ): Promise<{ result: string; text: string; reason: string | null }> {
    await recordGuidance(page);
    await page.click('#start');
    if (screenshotPrefix) {
      await page.waitForSelector('#guidance[data-code]:not([data-code=""])', { timeout: 20_000 });
      await shot(page, `${screenshotPrefix}-guidance`);
    }
    await page.waitForSelector('#verdict[data-result]', { timeout: 60_000 });
    await page.waitForSelector('#start:not([disabled])'); // the run is over (stored verdict read)
    const result = (await page.getAttribute('#verdict', 'data-result'))!;
    const text = (await page.textContent('#verdict'))!;
    const reason = await page.getAttribute('#verdict', 'data-reason');
    return { result, text, reason };
  }

  async function expectCameraReleased(page: Page): Promise<void> {
    expect(await page.getAttribute('#preview', 'data-camera')).toBe('off');
    expect(await page.evaluate("document.getElementById('preview').srcObject")).toBeNull();
    // Every camera track the page ever opened is stopped (the camera light is off).
    const live = await page.evaluate(
      'window.cameraStreams.flatMap((s) => s.getTracks()).filter((t) => t.readyState === "live").length',
    );
    expect(live).toBe(0);
  }

  const cameraRequests = (page: Page) => page.evaluate('window.cameraRequests') as Promise<number>;

  /** The session id the page shows ("session <id> ...", in the page's language; also its data-session-id). */
  async function shownSessionId(page: Page): Promise<string> {
    const id = (await page.getAttribute('#session-info', 'data-session-id')) ?? '';
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await page.textContent('#session-info')).toContain(id);
    return id;
  }

  /** The six-digit code as the page shows it in its development SMS outbox panel, for that session. */
  async function codeFromOutboxPanel(page: Page, sessionId: string): Promise<string> {
    const text =
      (await (await page.waitForSelector(`#outbox li[data-session-id="${sessionId}"] .sms-text`)).textContent()) ?? '';
    const digits = text.match(/\b\d{6}\b/g) ?? [];
    expect(new Set(digits).size).toBe(1); // one code, in Kazakh and in Russian
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
    /** Why the visit went to the code (identification.refused). */
    reason?: string;
    text: string;
  }

  /** The events panel's entries of one session, in the order shown (newest first). */
  function panelEvents(page: Page, sessionId: string): Promise<PanelEvent[]> {
    // Browser-side code as a string (the tests compile without DOM types).
    return page.evaluate(`[...document.querySelectorAll('#events li[data-session-id="${sessionId}"]')].map((li) => ({
      id: li.dataset.eventId, type: li.dataset.type, result: li.dataset.result, method: li.dataset.method,
      reason: li.dataset.reason, text: li.textContent,
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
      ['/demo/i18n.js', /^text\/javascript/],
      ['/demo/patient-view.js', /^text\/javascript/],
      ['/demo/patient-view.css', /^text\/css/],
      ['/demo/patient-screen.js', /^text\/javascript/],
      ['/client/locales/kk.json', /^application\/json/],
      ['/client/locales/ru.json', /^application\/json/],
      ['/client/locales/en.json', /^application\/json/],
    ] as const) {
      const r = await fetch(base + url);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(type);
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    }
    for (const url of [
      '/demo/../package.json',
      '/demo/index.html.bak',
      '/client/other.js',
      '/demo/%2e%2e%2fpackage.json',
      '/client/locales/xx.json', // a language without a dictionary
      '/client/locales/%2e%2e%2fpackage.json',
      '/client/locales/..%2f..%2fpackage.json',
      '/client/locales/en.js',
    ]) {
      expect((await fetch(base + url)).status).toBe(404);
    }

    const { page, problems } = await openDemo('chromium', { key: false });
    await shot(page, '00-start');
    expect(await page.textContent('#key-status')).toContain('No key yet');
    // A wrong key is refused by the gateway.
    await page.fill('#api-key', 'fid_ws_' + 'x'.repeat(43));
    await page.click('#save-key');
    await page.waitForSelector('#key-status.bad');
    expect(await page.evaluate("sessionStorage.getItem('faceid.demo.apiKey')")).toBeNull(); // not kept
    // Legible on a small laptop screen and in a narrow window (one column): nothing overflows sideways.
    for (const [width, height] of [
      [1366, 768],
      [1024, 600],
      [800, 600],
    ]) {
      await page.setViewportSize({ width, height });
      expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
      await shot(page, `00-viewport-${width}x${height}`);
    }
    expect(problems.filter((p) => /Content Security Policy|Refused to/i.test(p))).toEqual([]);
  });

  it('builds frame headers the gateway decodes (protocol.md, 20 bytes little-endian)', async () => {
    const { page } = await openDemo('chromium', { key: false });
    // Browser-side code as a string: compiled by ts-jest, import() would turn into require().
    const bytes = (await page.evaluate(`(async () => {
      const m = await import('/client/faceid-client.js');
      const msg = m.encodeFrameMessage({ seq: 0xdeadbeef, captureTime: 1700000000123.5 }, new Uint8Array([0xff, 0xd8, 7]));
      return Array.from(msg);
    })()`)) as number[];
    const decoded = decodeFrameMessage(Buffer.from(bytes));
    expect(decoded.header).toEqual({
      version: 1,
      format: 'jpeg',
      seq: 0xdeadbeef,
      captureTime: 1_700_000_000_123.5,
      width: 0,
      height: 0,
    });
    expect([...decoded.payload]).toEqual([0xff, 0xd8, 7]);
  });

  it('enrolls a reference photo, then identifies the patient (light and blink challenges): match shown in the page and in the MIS events', async () => {
    const { page, problems } = await openDemo('patient');
    const iin = newIin();
    await enrollByFile(page, iin);
    await shot(page, '01-enrolled');
    await recordLight(page);
    const sent = recordSent(page);
    const { result, text, reason } = await identifyInPage(page, '02');
    expect({ result, reason }).toEqual({ result: 'match', reason: null });
    expect(text).toMatch(/^Match: identity confirmed\. \(blinked, lit by the screen/);
    expect(text).not.toMatch(/score/); // the similarity score is the MIS's, not the desk's
    const seen = await guidanceSeen(page);
    expect(seen).toContain('watch_screen');
    expect(seen).toContain('blink_now');
    expect(seen[seen.length - 1]).toBe('done');
    // The colours filled the whole window, on top of the page, and went away.
    const light = await lightSeen(page);
    expect(light.colours.length).toBeGreaterThanOrEqual(2);
    expect(light.covered).toBe(true);
    expect(await page.locator('[data-faceid-light]').count()).toBe(0);
    // hello offered the light (the page has the overlay) and named the camera.
    expect(sent.find((m) => m.type === 'hello')).toMatchObject({
      capabilities: ['blink', 'light', 'turn'],
      camera: { label: STAND_IN_LABEL, deviceIdHash: expect.stringMatching(/^[0-9a-f]{64}$/) },
    });
    expect(sent.filter((m) => m.type === 'light_shown').length).toBeGreaterThanOrEqual(1);
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
    const { page } = await openDemo('other');
    const iin = newIin();
    await enrollByFile(page, iin); // the enrolled patient's photo; somebody else sits at the desk
    const { result, text, reason } = await identifyInPage(page);
    await shot(page, '04-no-match');
    expect({ result, reason }).toEqual({ result: 'no_match', reason: null });
    expect(text).toContain('No match');
    expect(text).toContain('blinked');
    await expectCameraReleased(page);
  });

  it('rejects a still photo: no answer to the screen colours, no blink (spoof_suspected, with the reason shown)', async () => {
    const { page } = await openDemo('still_photo');
    const iin = newIin();
    await enrollByFile(page, iin);
    const { result, text, reason } = await identifyInPage(page);
    await shot(page, '05-still-photo-rejected');
    expect(result).toBe('spoof_suspected');
    expect([...LIGHT_REASONS, 'no_blink']).toContain(reason);
    expect(text).toContain('Rejected: the liveness check failed');
    expect(text).toContain(await reasonText(page, reason!)); // the reason in words
    expect(text).not.toMatch(/\bblinked\b/);
    await expectCameraReleased(page);
  });

  it('rejects a photo with painted blinks: it blinks when asked, but the screen colours do not light it (light_*)', async () => {
    const { page } = await openDemo('painted_blink');
    const iin = newIin();
    await enrollByFile(page, iin);
    await recordLight(page);
    const { result, text, reason } = await identifyInPage(page);
    await shot(page, '05b-painted-blink-rejected');
    expect(result).toBe('spoof_suspected');
    expect(LIGHT_REASONS).toContain(reason);
    expect(text).toContain(await reasonText(page, reason!));
    expect(text).toContain('not lit by the screen');
    // The colours were shown (the client did its part): the face did not answer them.
    expect((await lightSeen(page)).colours.length).toBeGreaterThanOrEqual(2);
    await expectCameraReleased(page);
  });

  it('rejects a replay tinted evenly by the screen colours: the face answers no more than the wall (light_uniform)', async () => {
    const { page } = await openDemo('tinted_replay');
    await enrollByFile(page, newIin());
    const { result, text, reason } = await identifyInPage(page);
    await shot(page, '05d-tinted-replay-rejected');
    expect({ result, reason }).toEqual({ result: 'spoof_suspected', reason: 'light_uniform' });
    expect(text).toContain(await reasonText(page, 'light_uniform'));
    await expectCameraReleased(page);
  });

  it('rejects a virtual camera by its name (virtual_camera), and never sends the raw device id', async () => {
    const { page, camera } = await openDemo('virtual_camera');
    const sent = recordSent(page);
    const iin = newIin();
    await enrollByFile(page, iin);
    const { result, text, reason } = await identifyInPage(page);
    await shot(page, '05c-virtual-camera-rejected');
    expect({ result, reason }).toEqual({ result: 'spoof_suspected', reason: 'virtual_camera' });
    expect(text).toContain(await reasonText(page, 'virtual_camera'));
    const hello = sent.find((m) => m.type === 'hello') as
      | { camera?: { label: string; deviceIdHash: string } }
      | undefined;
    expect(hello?.camera?.label).toBe('OBS Virtual Camera');
    // Only a SHA-256 of the device id travels.
    expect(hello?.camera?.deviceIdHash).toBe(createHash('sha256').update(camera!.deviceId).digest('hex'));
    expect(JSON.stringify(sent)).not.toContain(camera!.deviceId);
    await expectCameraReleased(page);
  });

  it('enrolls from a webcam still (a JPEG Blob upload), then identifies: match', async () => {
    const { page } = await openDemo('patient');
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

  it('replacing a patient’s reference photo from the desk waits for the patient’s code, and the MIS gets template.replaced', async () => {
    const { page, problems } = await openDemo('patient');
    const iin = newIin();
    await enrollByFile(page, iin);
    // The same patient again: the page asks for the code the patient got, and nothing is replaced meanwhile.
    await page.setInputFiles('#enroll-file', { name: 'other.jpg', mimeType: 'image/jpeg', buffer: reference });
    await page.click('#enroll-upload');
    await page.waitForSelector('#enroll-confirm-form:not([hidden])');
    expect(await page.textContent('#enroll-status')).toContain('needs the patient’s consent');
    const sms =
      (await (await page.waitForSelector('#outbox li[data-purpose="enrollment"] .sms-text')).textContent()) ?? '';
    const code = /\b\d{6}\b/.exec(sms)![0];
    await page.fill('#enroll-code', code === '000000' ? '000001' : '000000');
    await page.click('#enroll-confirm');
    await page.waitForSelector('#enroll-status.bad');
    expect(await page.textContent('#enroll-status')).toContain('Wrong code. Attempts left: 4.');
    await page.fill('#enroll-code', code);
    await page.click('#enroll-confirm');
    await page.waitForSelector('#enroll-status.ok');
    expect(await page.textContent('#enroll-status')).toContain(
      `Enrolled patient ${iin}: the patient confirmed the new photo`,
    );
    expect(await page.isHidden('#enroll-confirm-form')).toBe(true);
    await shot(page, '01b-template-replaced');
    // The clinic's MIS is told (a desk's own events feed shows its sessions' outcomes only).
    const clinic = (await app.get<ClinicRepository>(CLINICS).list()).find((c) => c.name === 'Browser test clinic')!;
    const events = (await app.get<EventRepository>(EVENTS).after(clinic.id, 0, 1000)).map((e) => e.payload);
    expect(events.filter((e) => e.type === 'template.replaced' && e.iin === iin)).toEqual([
      expect.objectContaining({
        actor: expect.objectContaining({ kind: 'workstation' }),
        confirmation: 'patient_code',
      }),
    ]);
    expect(problems.filter((p) => /Content Security Policy|Refused to|Uncaught/i.test(p))).toEqual([]);
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
    const { page } = await openDemo('patient', { before: (p) => p.routeWebSocket(/\/ws\/identify$/, dropFirst) });
    const iin = newIin();
    await enrollByFile(page, iin);
    const { result } = await identifyInPage(page);
    expect(result).toBe('match');
    expect(connections).toBe(2);
    expect(await guidanceSeen(page)).toContain('reconnecting');
    // The dropped session ended without a face verdict (expired as its connection closed); the page's last session
    // (the new one) has the match.
    const res = await fetch(`${base}/sessions/${droppedSession}`, { headers: { authorization: `Bearer ${apiKey}` } });
    const first = (await res.json()) as { state: string; verdict: { result: string; method: string } | null };
    expect(first.verdict?.method ?? 'none').toBe('none');
    expect(first.verdict?.result ?? 'expired').toBe('expired');
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
              liveness: { passive: null, blink: false },
              timings: { firstFrameToVerdictMs: null, framesReceived: 6, framesAnalysed: 0, framesDropped: 0 },
            }),
          );
          void ws.close({ code: 1000, reason: 'verdict' });
        }
      });
    };
    const { page } = await openDemo('chromium', {
      key: false,
      before: (p) => p.routeWebSocket(/\/ws\/scripted$/, scripted),
    });
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

  it('client module: hello first (capabilities, camera label, hashed device id), the light challenge full-screen with its paint times, a head-turn prompt, the reason in words', async () => {
    // A scripted server: ready after hello; a light challenge after 3 frames; a turn challenge once light_shown
    // arrived; the verdict when the test says. Chromium's own fake camera: a real device path (label, deviceId).
    const colours = [
      { rgb: [255, 255, 255], ms: 400 },
      { rgb: [0, 0, 255], ms: 300 },
      { rgb: [255, 0, 0], ms: 350 },
    ];
    const texts: Array<{ type: string; framesBefore: number } & Record<string, unknown>> = [];
    const frames: Array<{ seq: number; captureTime: number }> = [];
    let server: WebSocketRoute | null = null;
    const scripted = (ws: WebSocketRoute) => {
      server = ws;
      ws.onMessage((m) => {
        if (typeof m === 'string') {
          const msg = JSON.parse(m) as { type: string };
          texts.push({ ...msg, framesBefore: frames.length });
          if (msg.type === 'hello')
            ws.send(JSON.stringify({ type: 'ready', sessionId: 's2', maxPayload: 262144, fps: { min: 5, max: 15 } }));
          if (msg.type === 'light_shown')
            ws.send(JSON.stringify({ type: 'challenge', kind: 'turn', challengeId: 'c-turn-1', direction: 'left' }));
          return;
        }
        const f = decodeFrameMessage(m);
        frames.push({ seq: f.header.seq, captureTime: f.header.captureTime });
        if (frames.length === 3)
          ws.send(JSON.stringify({ type: 'challenge', kind: 'light', challengeId: 'c-light-1', colours }));
      });
    };
    const { page } = await openDemo('chromium', {
      key: false,
      before: (p) => p.routeWebSocket(/\/ws\/scripted$/, scripted),
    });
    await recordLight(page, '10-light-challenge');
    const wsUrl = base.replace('http', 'ws') + '/ws/scripted';
    await page.evaluate(`(async () => {
      const m = await import('/client/faceid-client.js');
      const log = (window.log = { guidance: [], challenges: [], verdict: null, texts: null, label: null, deviceId: null });
      const run = m.identify({
        session: { wsUrl: ${JSON.stringify(wsUrl)}, protocols: ['faceid.v1', 'token.test'] },
        fps: 10,
        onState: (s) => {
          if (s !== 'streaming') return;
          const track = run.stream.getVideoTracks()[0];
          log.label = track.label;
          log.deviceId = track.getSettings().deviceId;
        },
        onGuidance: (g) => log.guidance.push(g),
        onChallenge: (c) => log.challenges.push(c.kind),
        onVerdict: (v, words) => { log.verdict = v.result; log.texts = words; },
      });
      window.runDone = run.done.then((v) => v && v.result);
    })()`);
    // A function, not a string: the page's CSP forbids eval, which a string predicate needs.
    type Logged = { log: { guidance: Array<{ code: string }> } };
    await page.waitForFunction(
      () => (globalThis as unknown as Logged).log.guidance.some((g) => g.code === 'turn_left'),
      undefined,
      {
        timeout: 20_000,
      },
    );
    server!.send(
      JSON.stringify({
        type: 'verdict',
        sessionId: 's2',
        result: 'spoof_suspected',
        liveness: { passive: null, blink: false, light: true, turn: false },
        reason: 'turn_missing',
        timings: {
          firstFrameToVerdictMs: 4000,
          framesReceived: frames.length,
          framesAnalysed: frames.length,
          framesDropped: 0,
        },
      }),
    );
    void server!.close({ code: 1000, reason: 'verdict' });
    expect(await page.evaluate('window.runDone')).toBe('spoof_suspected');
    const log = (await page.evaluate('window.log')) as {
      guidance: Array<{ code: string; message: string }>;
      challenges: string[];
      texts: { message: string; reason: string };
      label: string;
      deviceId: string;
    };
    const client = (await page.evaluate(`import('/client/faceid-client.js').then((m) => ({
      guidance: m.GUIDANCE_MESSAGES, verdicts: m.VERDICT_MESSAGES, reasons: m.REASON_MESSAGES,
    }))`)) as { guidance: Record<string, string>; verdicts: Record<string, string>; reasons: Record<string, string> };

    // hello came first, before any frame, with what this page can run and the camera: its label and only a hash
    // of its device id.
    expect(texts[0]).toMatchObject({ type: 'hello', framesBefore: 0, capabilities: ['blink', 'light', 'turn'] });
    const hello = texts[0] as unknown as { client: string; camera: { label: string; deviceIdHash: string } };
    expect(hello.client).toMatch(/^faceid-client\.js\//);
    expect(log.label).toBeTruthy();
    expect(hello.camera.label).toBe(log.label);
    expect(hello.camera.deviceIdHash).toBe(createHash('sha256').update(log.deviceId).digest('hex'));
    if (log.deviceId) expect(JSON.stringify(texts)).not.toContain(log.deviceId);

    // The light: the colours in the order asked, over the whole window, then gone; light_shown with one time per
    // colour and the end, increasing, each colour on screen about as long as asked (at least, within a frame).
    const light = await lightSeen(page);
    expect(light.colours).toEqual(['rgb(255, 255, 255)', 'rgb(0, 0, 255)', 'rgb(255, 0, 0)']);
    expect(light.covered).toBe(true);
    expect(await page.locator('[data-faceid-light]').count()).toBe(0);
    const shown = texts.find((t) => t.type === 'light_shown') as unknown as { challengeId: string; shownAt: number[] };
    expect(shown.challengeId).toBe('c-light-1');
    expect(shown.shownAt).toHaveLength(colours.length + 1);
    colours.forEach((c, i) => expect(shown.shownAt[i + 1] - shown.shownAt[i]).toBeGreaterThanOrEqual(c.ms - 20));
    // Frames kept flowing while the colours were on, stamped on the same clock as the colours.
    const during = frames.filter(
      (f) => f.captureTime > shown.shownAt[0] && f.captureTime < shown.shownAt[colours.length],
    );
    expect(during.length).toBeGreaterThanOrEqual(1);
    expect(frames.map((f) => f.seq)).toEqual(frames.map((_, i) => i));

    // The prompts and the verdict's words come from the module's tables.
    expect(log.challenges).toEqual(['light', 'turn']);
    expect(log.guidance).toContainEqual(
      expect.objectContaining({ code: 'watch_screen', message: client.guidance.watch_screen }),
    );
    expect(log.guidance).toContainEqual(
      expect.objectContaining({ code: 'turn_left', message: client.guidance.turn_left }),
    );
    expect(log.texts).toEqual({ message: client.verdicts.spoof_suspected, reason: client.reasons.turn_missing });
    expect(client.verdicts.spoof_suspected).not.toContain('no blink');
    for (const code of [
      'no_blink',
      ...LIGHT_REASONS,
      'turn_missing',
      'turn_early',
      'turn_flat',
      'virtual_camera',
      'client_unsupported',
    ]) {
      expect(client.reasons[code]).toEqual(expect.any(String));
    }

    // A page without a screen facing the patient offers no light; cameraInfo replaces the camera report.
    const other = (await page.evaluate(`import('/client/faceid-client.js').then(async (m) => {
      const noScreen = new m.Identification({ session: {}, showLight: false });
      const given = new m.Identification({ session: {}, cameraInfo: { label: 'Desk camera', deviceId: 'abc' } });
      return { capabilities: noScreen.capabilities(), camera: await given.cameraReport() };
    })`)) as { capabilities: string[]; camera: { label: string; deviceIdHash: string } };
    expect(other.capabilities).toEqual(['blink', 'turn']);
    expect(other.camera).toEqual({
      label: 'Desk camera',
      deviceIdHash: createHash('sha256').update('abc').digest('hex'),
    });
  });

  it('demo: shows the head-turn prompt big with an arrow, and the verdict with its reason in words', async () => {
    // The page's own session (POST /sessions), but its socket goes to a scripted server.
    let server: WebSocketRoute | null = null;
    let frames = 0;
    const scripted = (ws: WebSocketRoute) => {
      server = ws;
      ws.onMessage((m) => {
        if (typeof m === 'string') {
          if ((JSON.parse(m) as { type: string }).type === 'hello') {
            ws.send(JSON.stringify({ type: 'ready', sessionId: 's3', maxPayload: 262144, fps: { min: 5, max: 15 } }));
          }
          return;
        }
        if (++frames === 2)
          ws.send(JSON.stringify({ type: 'challenge', kind: 'turn', challengeId: 'c-turn-2', direction: 'right' }));
      });
    };
    const { page, problems } = await openDemo('patient', {
      before: (p) => p.routeWebSocket(/\/ws\/identify$/, scripted),
    });
    await enrollByFile(page, newIin());
    await page.click('#start');
    await page.waitForSelector('#turn-hint:not([hidden])', { timeout: 20_000 });
    const words = (await page.evaluate(
      `import('/client/faceid-client.js').then((m) => [m.GUIDANCE_MESSAGES.turn_right, m.REASON_MESSAGES.turn_missing])`,
    )) as [string, string];
    expect(await page.getAttribute('#turn-hint', 'data-direction')).toBe('right');
    expect(await page.textContent('#turn-hint')).toBe('\u2192');
    expect(await page.getAttribute('#guidance', 'data-code')).toBe('turn_right');
    expect(await page.textContent('#guidance')).toBe(words[0]);
    await shot(page, '11-turn-prompt');
    server!.send(
      JSON.stringify({
        type: 'verdict',
        sessionId: 's3',
        result: 'spoof_suspected',
        liveness: { passive: null, blink: false, light: null, turn: false },
        reason: 'turn_missing',
        timings: { firstFrameToVerdictMs: 3000, framesReceived: frames, framesAnalysed: frames, framesDropped: 0 },
      }),
    );
    void server!.close({ code: 1000, reason: 'verdict' });
    await page.waitForSelector('#verdict[data-result="spoof_suspected"]');
    expect(await page.getAttribute('#verdict', 'data-reason')).toBe('turn_missing');
    const text = (await page.textContent('#verdict'))!;
    expect(text).toContain(words[1]);
    expect(text).toContain('no turn');
    expect(await page.isHidden('#turn-hint')).toBe(true);
    await shot(page, '12-turn-reason');
    await expectCameraReleased(page);
    expect(problems.filter((p) => /Content Security Policy|Refused to/i.test(p))).toEqual([]);
  });

  it('cancels a running identification: the server ends the session, the camera is released', async () => {
    // Chromium's own fake camera: a test pattern, no face, so the session runs (no_face) until it is cancelled.
    const { page } = await openDemo('chromium');
    await enrollByFile(page, newIin());
    await page.click('#start');
    await page.waitForSelector('#guidance[data-code="no_face"]', { timeout: 20_000 });
    const sessionId = await shownSessionId(page);
    await page.click('#cancel');
    await page.waitForSelector('#verdict[data-result="cancelled"]');
    await expectCameraReleased(page);
    // Closed without a verdict: the server ends the session at once as `expired` (no face verdict), with its event.
    const deadline = Date.now() + 20_000;
    let stored: { state: string; verdict: unknown } | null = null;
    while (stored?.state !== 'expired' && Date.now() < deadline) {
      if (stored) await new Promise((r) => setTimeout(r, 50));
      const res = await fetch(`${base}/sessions/${sessionId}`, { headers: { authorization: `Bearer ${apiKey}` } });
      stored = (await res.json()) as { state: string; verdict: unknown };
    }
    expect(stored).toMatchObject({ state: 'expired', verdict: { result: 'expired', method: 'none' } });
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
        const msg =
          typeof m === 'string' ? (JSON.parse(m) as { type: string; event?: { id: string; type: string } }) : null;
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
    const { page, problems } = await openDemo('patient', {
      before: (p) => p.routeWebSocket(/\/ws\/events/, dropOnVerdict),
    });
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
    // No "Cancelled" over the code step: the verdict stays in the page (a live region), empty.
    expect(await page.textContent('#verdict')).toBe('');
    expect(await page.getAttribute('#verdict', 'data-result')).toBeNull();
    expect(await page.getAttribute('#verdict', 'hidden')).toBeNull();
    expect(await page.textContent('#code-status')).toContain('six-digit code was sent');

    const code = await codeFromOutboxPanel(page, sessionId);
    await page.waitForSelector(`#events li[data-session-id="${sessionId}"][data-type="identification.refused"]`);
    await shot(page, '06-refused-code-pending');

    // A wrong code first: refused with the attempts left, the step goes on.
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    await enterCode(page, wrong);
    expect(await page.textContent('#code-status')).toMatch(/Wrong code\. Attempts left: \d+\./);
    expect(await page.isEnabled('#code-input')).toBe(true);

    await enterCode(page, code);
    await page.waitForSelector('#verdict[data-result]');
    expect(await page.getAttribute('#verdict', 'data-result')).toBe('match');
    expect(await page.getAttribute('#verdict', 'data-method')).toBe('code');
    expect(await page.textContent('#verdict')).toContain('Match: identity confirmed. (method: SMS code)');
    expect(await page.isDisabled('#code-input')).toBe(true);

    // The MIS events panel: the refusal and the code verdict, once each, after the feed reconnected.
    await page.waitForSelector(`#events li[data-session-id="${sessionId}"][data-type="identification.verdict"]`, {
      timeout: 20_000,
    });
    const events = await panelEvents(page, sessionId);
    expect(events.map((e) => [e.type, e.result, e.method])).toEqual([
      ['identification.verdict', 'match', 'code'],
      ['identification.refused', 'refused', 'none'],
    ]);
    expect(events[1].reason).toBe('patient_refused_photo');
    expect(events[1].text).toContain('the patient refused the photo');
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
    const { page } = await openDemo('patient');
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
    // "The SMS did not arrive": a new code replaces it, and the outbox panel lists it first. What was typed of the
    // old code is cleared.
    await page.fill('#code-input', '123');
    await page.click('#code-resend');
    await page.locator(`#outbox li[data-session-id="${sessionId}"]`).nth(1).waitFor();
    expect(await page.textContent('#code-status')).toContain('A new code was sent: the previous code no longer works.');
    expect(await page.inputValue('#code-input')).toBe('');
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
    expect(await res.json()).toMatchObject({
      channel: 'remote',
      state: 'finished',
      verdict: { result: 'match', method: 'code' },
    });
  });

  it('a code locked out leaves no stale state: the failure shown, the code field closed, a next step (Enter in the IIN field starts)', async () => {
    const { page } = await openDemo('patient');
    await page.selectOption('#channel', 'remote');
    await page.fill('#iin', newIin());
    await page.press('#iin', 'Enter'); // Enter in the IIN field starts (the appointment is prefilled)
    await page.waitForSelector('#code-panel.active');
    const sessionId = (await page.getAttribute('#code-panel', 'data-session-id'))!;
    expect(await page.getAttribute('#guidance', 'data-code')).toBe('code_pending');
    const code = await codeFromOutboxPanel(page, sessionId);
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    // CODE_ATTEMPTS_MAX (5) wrong entries: the last one locks the session out.
    for (let i = 0; i < 5 && (await page.isVisible('#code-panel.active')); i++) await enterCode(page, wrong);
    await page.waitForSelector('#verdict[data-result="locked_out"]');
    expect(await page.textContent('#verdict')).toBe('Locked out: too many wrong codes.');
    // Nothing left of the code step: not "Waiting for the six-digit code.", the field closed and empty, the
    // progress bar in its failure state, and what to do next.
    expect(await page.getAttribute('#guidance', 'data-code')).toBe('failed');
    expect(await page.textContent('#guidance')).toBe('Not identified.');
    expect(await page.textContent('body')).not.toContain('Waiting for the six-digit code.');
    expect(await page.isDisabled('#code-input')).toBe(true);
    expect(await page.inputValue('#code-input')).toBe('');
    expect(await page.getAttribute('#progress', 'data-state')).toBe('failed');
    expect(await page.evaluate("document.getElementById('progress').value")).toBeLessThan(1);
    expect(await page.textContent('#code-status')).toContain('Too many wrong codes');
    expect(await page.textContent('#next-step')).toBe('Press “Send the code” to send a new code.');
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('verdict');
    const res = await fetch(`${base}/sessions/${sessionId}`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(await res.json()).toMatchObject({ state: 'finished', verdict: { result: 'locked_out' } });
    await shot(page, '13-code-locked-out');
  });

  it('client module: asks for the session before the camera (a refused session never starts it); passes windowMs and box through; blink_again', async () => {
    const box = { x: 0.31, y: 0.22, width: 0.36, height: 0.48 };
    const scripted = (ws: WebSocketRoute) => {
      let frames = 0;
      ws.onMessage((m) => {
        if (typeof m === 'string') {
          if ((JSON.parse(m) as { type: string }).type === 'hello') {
            ws.send(JSON.stringify({ type: 'ready', sessionId: 's4', maxPayload: 262144, fps: { min: 5, max: 15 } }));
          }
          return;
        }
        frames++;
        if (frames === 1) ws.send(JSON.stringify({ type: 'guidance', code: 'hold_still', progress: 0.4 }));
        if (frames === 2)
          ws.send(JSON.stringify({ type: 'guidance', code: 'blink_now', progress: 0.6, windowMs: 4000, box }));
        if (frames === 3)
          ws.send(JSON.stringify({ type: 'guidance', code: 'blink_again', progress: 0.7, windowMs: 2000, box }));
        if (frames === 4) {
          ws.send(
            JSON.stringify({
              type: 'verdict',
              sessionId: 's4',
              result: 'spoof_suspected',
              liveness: { passive: null, blink: false, light: null, turn: null },
              reason: 'no_blink',
              timings: { firstFrameToVerdictMs: 1000, framesReceived: 4, framesAnalysed: 4, framesDropped: 0 },
            }),
          );
          void ws.close({ code: 1000, reason: 'verdict' });
        }
      });
    };
    const { page } = await openDemo('chromium', {
      key: false,
      before: (p) => p.routeWebSocket(/\/ws\/scripted$/, scripted),
    });

    // POST /sessions refuses (429 attempts_exceeded, as a page's getSession throws it): the camera never starts.
    const refused = await page.evaluate(`import('/client/faceid-client.js').then(async (m) => {
      const states = [];
      const run = m.identify({
        getSession: async () => {
          const err = new Error('Too many failed face identifications for this patient.');
          err.code = 'attempts_exceeded';
          err.body = { codeAvailable: true };
          throw err;
        },
        onState: (s) => states.push(s),
      });
      try {
        await run.done;
        return { resolved: true };
      } catch (err) {
        return { code: err.code, body: err.cause && err.cause.body, states, cameraRequests: window.cameraRequests };
      }
    })`);
    expect(refused).toEqual({
      code: 'attempts_exceeded',
      body: { codeAvailable: true },
      states: ['session', 'failed'],
      cameraRequests: 0,
    });

    // The session first, then the camera; guidance with windowMs and box passes them on unchanged.
    const wsUrl = base.replace('http', 'ws') + '/ws/scripted';
    const run = (await page.evaluate(`import('/client/faceid-client.js').then(async (m) => {
      const states = [];
      const guidance = [];
      let camerasAtSession = null;
      const r = m.identify({
        getSession: async () => {
          camerasAtSession = window.cameraRequests;
          return { wsUrl: ${JSON.stringify(wsUrl)}, protocols: ['faceid.v1', 'token.test'] };
        },
        onState: (s) => states.push(s),
        onGuidance: (g) => guidance.push(g),
      });
      const verdict = await r.done;
      return { states, guidance, camerasAtSession, cameraRequests: window.cameraRequests, result: verdict.result };
    })`)) as {
      states: string[];
      guidance: Array<Record<string, unknown>>;
      camerasAtSession: number;
      cameraRequests: number;
      result: string;
    };
    expect(run.states).toEqual(['session', 'camera', 'connecting', 'streaming', 'finished']);
    expect(run.camerasAtSession).toBe(0);
    expect(run.cameraRequests).toBe(1);
    expect(run.result).toBe('spoof_suspected');
    expect(run.guidance).toEqual([
      { code: 'hold_still', progress: 0.4, message: 'Good. Hold still.' },
      { code: 'blink_now', progress: 0.6, message: 'Blink now.', windowMs: 4000, box },
      { code: 'blink_again', progress: 0.7, message: 'Blink once more, please.', windowMs: 2000, box },
    ]);
    expect(Object.keys(run.guidance[0]).sort()).toEqual(['code', 'message', 'progress']); // nothing made up

    // The module's English tables are the English dictionary's texts.
    const en = dictionary('en');
    const tables = (await page.evaluate(`import('/client/faceid-client.js').then((m) => ({
      guidance: m.GUIDANCE_MESSAGES, verdict: m.VERDICT_MESSAGES, reason: m.REASON_MESSAGES,
    }))`)) as Record<string, Record<string, string>>;
    for (const [prefix, table] of Object.entries(tables)) {
      for (const [code, text] of Object.entries(table))
        expect({ key: `${prefix}.${code}`, text }).toEqual({ key: `${prefix}.${code}`, text: en[`${prefix}.${code}`] });
    }
  });

  it('demo: a blank view that ends in a timeout gets a next step and the code at once (a scripted server)', async () => {
    let server: WebSocketRoute | null = null;
    let frames = 0;
    const scripted = (ws: WebSocketRoute) => {
      server = ws;
      ws.onMessage((m) => {
        if (typeof m === 'string') {
          if ((JSON.parse(m) as { type: string }).type === 'hello') {
            ws.send(JSON.stringify({ type: 'ready', sessionId: 's5', maxPayload: 262144, fps: { min: 5, max: 15 } }));
          }
          return;
        }
        if (++frames === 2) ws.send(JSON.stringify({ type: 'guidance', code: 'no_face', progress: 0.1 }));
      });
    };
    const { page } = await openDemo('patient', { before: (p) => p.routeWebSocket(/\/ws\/identify$/, scripted) });
    await enrollByFile(page, newIin());
    await page.click('#start');
    await page.waitForSelector('#guidance[data-code="no_face"]', { timeout: 20_000 });
    server!.send(
      JSON.stringify({
        type: 'verdict',
        sessionId: 's5',
        result: 'timeout',
        liveness: { passive: null, blink: false, light: null, turn: null },
        reason: null,
        timings: { firstFrameToVerdictMs: null, framesReceived: frames, framesAnalysed: frames, framesDropped: 0 },
      }),
    );
    void server!.close({ code: 1000, reason: 'verdict' });
    await page.waitForSelector('#verdict[data-result="timeout"]');
    const en = dictionary('en');
    expect(await page.textContent('#next-step')).toBe(en['next.timeout_no_face']);
    expect(await page.isVisible('#by-code')).toBe(true);
    expect(await page.getAttribute('#guidance', 'data-code')).toBe('failed');
    expect(await page.getAttribute('#progress', 'data-state')).toBe('failed');
    expect(await page.evaluate("document.getElementById('progress').value")).toBeLessThan(1);
    await expectCameraReleased(page);
  });

  it('a camera that is denied: the session was asked for first, then "Identify by SMS code" records camera_unavailable on it, match by code', async () => {
    // getUserMedia refuses, as when the desk's browser blocks the camera for this page.
    const denyCamera = async (p: Page): Promise<void> => {
      await p.addInitScript(`(() => {
        const media = navigator.mediaDevices;
        media.getUserMedia = async () => {
          window.cameraRequests++;
          throw new DOMException('Permission denied', 'NotAllowedError');
        };
      })()`);
    };
    const { page, problems } = await openDemo('chromium', { before: denyCamera });
    const iin = newIin();
    await enrollByFile(page, iin);
    await page.click('#start');
    await page.waitForSelector('#verdict[data-result="failed"]');
    expect(await cameraRequests(page)).toBe(1);
    const en = dictionary('en');
    expect(await page.textContent('#verdict')).toContain(en['error.camera_denied']);
    expect(await page.textContent('#verdict .support-code')).toBe('camera_denied');
    expect(await page.isVisible('#by-code')).toBe(true);
    await page.click('#by-code');
    await page.waitForSelector('#code-panel.active');
    const sessionId = (await page.getAttribute('#code-panel', 'data-session-id'))!;
    await enterCode(page, await codeFromOutboxPanel(page, sessionId));
    await page.waitForSelector('#verdict[data-result="match"][data-method="code"]');
    const res = await fetch(`${base}/sessions/${sessionId}`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(await res.json()).toMatchObject({
      channel: 'in_person',
      refusalReason: 'camera_unavailable',
      verdict: { result: 'match', method: 'code' },
    });
    expect(problems.filter((p) => /Content Security Policy|Refused to|Uncaught/i.test(p))).toEqual([]);
  });

  /**
   * Records what the patient view (.pv) shows, from now on: each instruction with the view's language, whether the
   * face box was drawn (its quality colour), and each colour of the light with where it was painted.
   */
  async function recordPatientView(page: Page): Promise<void> {
    await page.evaluate(`(() => {
      const root = document.querySelector('.pv');
      const seen = (window.patientViewSeen = { instructions: [], boxes: [], light: [] });
      const note = () => {
        const ins = root.querySelector('.pv-instruction');
        if (!root.hidden && !ins.hidden && ins.dataset.code) {
          const entry = { lang: root.lang, code: ins.dataset.code, text: ins.textContent };
          const last = seen.instructions[seen.instructions.length - 1];
          if (!last || last.code !== entry.code || last.text !== entry.text || last.lang !== entry.lang) seen.instructions.push(entry);
        }
        const box = root.querySelector('.pv-box');
        const r = box.getBoundingClientRect();
        if (!root.hidden && !box.hidden && r.width > 0 && r.height > 0 && !seen.boxes.includes(box.dataset.quality)) {
          seen.boxes.push(box.dataset.quality);
        }
        const light = document.querySelector('[data-faceid-light]');
        const colour = light && light.style.backgroundColor;
        if (colour && (seen.light.length === 0 || seen.light[seen.light.length - 1].colour !== colour)) {
          const top = document.elementFromPoint(window.innerWidth / 2, window.innerHeight / 2);
          seen.light.push({ colour, inView: root.contains(light), onTop: top === light });
        }
      };
      new MutationObserver(note).observe(document.body, {
        subtree: true, childList: true, characterData: true, attributes: true,
        attributeFilter: ['style', 'hidden', 'data-code', 'data-quality', 'lang'],
      });
    })()`);
  }

  interface PatientViewSeen {
    instructions: Array<{ lang: string; code: string; text: string }>;
    boxes: string[];
    light: Array<{ colour: string; inView: boolean; onTop: boolean }>;
  }

  it('demo: "Show to the patient" opens the patient view over the desk: prompts in the patient’s own language, the face box, the light inside the view, the verdict in big words; closing it keeps the identification and the desk working', async () => {
    const { page, problems } = await openDemo('patient'); // the desk in English
    const en = dictionary('en');
    const kk = dictionary('kk');
    await enrollByFile(page, newIin());
    expect(await page.textContent('#show-patient')).toBe(en['identify.show_patient']);

    // Shown before the identification: over the whole page, in the desk's language, waiting for the camera.
    await page.click('#show-patient');
    await page.waitForSelector('.pv[data-state="open"]');
    expect(await page.getAttribute('.pv', 'lang')).toBe('en');
    expect((await page.textContent('.pv-instruction'))?.trim()).toBe(en['patient_view.starting']);
    expect(
      await page.evaluate(
        "document.querySelector('.pv').contains(document.elementFromPoint(innerWidth / 2, innerHeight / 2))",
      ),
    ).toBe(true);
    // The patient picks Kazakh on the view; the desk stays in English.
    await page.click('.pv-lang[data-lang="kk"]');
    expect(await page.getAttribute('.pv', 'lang')).toBe('kk');
    expect((await page.textContent('.pv-title'))?.trim()).toBe(kk['patient_view.title']);
    expect((await page.textContent('.pv-instruction'))?.trim()).toBe(kk['patient_view.starting']);
    expect(await page.getAttribute('html', 'lang')).toBe('en');
    await expectAccessible(page, 'patient view shown, waiting');

    // The desk starts from the keyboard (Enter in the IIN field: the view covers its buttons).
    await recordPatientView(page);
    await recordLight(page);
    await recordGuidance(page);
    const sent = recordSent(page);
    // The view during the run, with the face box drawn.
    void page
      .waitForSelector('.pv-box:not([hidden])', { timeout: 30_000 })
      .then(() => shot(page, '17-patient-view-guidance'))
      .catch(() => undefined);
    await page.focus('#iin');
    await page.keyboard.press('Enter');
    await page.waitForSelector('.pv[data-state="verdict"]', { timeout: 60_000 });
    await page.waitForSelector('#start:not([disabled])');
    const result = (await page.getAttribute('#verdict', 'data-result'))!;
    // The stand-in patient: a match (a failed liveness on a loaded machine is told to the patient as plainly).
    expect(['match', 'no_match', 'spoof_suspected']).toContain(result);
    await shot(page, '18-patient-view-verdict');

    const seen = (await page.evaluate('window.patientViewSeen')) as PatientViewSeen;
    // Every prompt in Kazakh, the dictionary's words for its code, and the challenges' prompts among them.
    expect(seen.instructions.length).toBeGreaterThan(0);
    for (const i of seen.instructions) expect(i).toEqual({ lang: 'kk', code: i.code, text: kk[`guidance.${i.code}`] });
    // Every guidance code the desk showed (but its own end states), the view showed too.
    const codes = seen.instructions.map((i) => i.code);
    const deskCodes = (await guidanceSeen(page)).filter((c) => !['done', 'failed', 'reconnecting'].includes(c));
    expect(deskCodes).toContain('watch_screen');
    expect(codes).toEqual(expect.arrayContaining(deskCodes));
    // The face box was drawn over the preview (from the server's guidance `box`).
    expect(seen.boxes.length).toBeGreaterThan(0);
    for (const q of seen.boxes) expect(['ok', 'fix', 'bad']).toContain(q);
    // The light: painted inside the view (so a full-screen view shows it), over the whole window, and answered.
    expect(seen.light.length).toBeGreaterThanOrEqual(2);
    expect(seen.light.every((l) => l.inView && l.onTop)).toBe(true);
    expect((await lightSeen(page)).covered).toBe(true);
    expect(sent.filter((m) => m.type === 'light_shown').length).toBeGreaterThanOrEqual(1);
    // The verdict in big words, in Kazakh; the desk's own verdict under it, in English.
    const verdict = (await page.evaluate(`(() => {
      const el = document.querySelector('.pv-verdict');
      return {
        hidden: el.hidden,
        result: el.dataset.result,
        text: el.textContent,
        font: parseFloat(getComputedStyle(el).fontSize),
        deskFont: parseFloat(getComputedStyle(document.getElementById('verdict')).fontSize),
      };
    })()`)) as { hidden: boolean; result: string; text: string; font: number; deskFont: number };
    expect(verdict).toMatchObject({ hidden: false, result, text: kk[`patient_view.verdict.${result}`] });
    expect(verdict.font).toBeGreaterThanOrEqual(40);
    expect(verdict.font).toBeGreaterThan(2 * verdict.deskFont);
    expect((await page.textContent('#verdict'))!.startsWith(en[`verdict.${result}`])).toBe(true);
    await expectAccessible(page, 'patient view: the verdict');
    // The client released the camera at the verdict; the view stopped nothing of its own.
    await expectCameraReleased(page);

    // Closed: the desk again, the focus back on the button, the view's video detached.
    await page.click('.pv-close');
    await page.waitForSelector('.pv', { state: 'hidden' });
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('show-patient');
    expect(await page.evaluate("document.querySelector('.pv-video').srcObject")).toBeNull();
    expect(await page.getAttribute('#verdict', 'data-result')).toBe(result);

    // The next identification from the desk's button, the view shown on it and closed at once: the identification
    // goes on to its face verdict (closing the view cancels nothing), the light on the page meanwhile.
    await page.click('#start');
    await page.click('#show-patient');
    await page.waitForSelector('.pv[data-state="open"]');
    expect(await page.getAttribute('.pv', 'lang')).toBe('en'); // each showing starts in the desk's language
    await page.click('.pv-close');
    await page.waitForSelector('.pv', { state: 'hidden' });
    await page.waitForSelector('#start:not([disabled])', { timeout: 60_000 });
    expect(['match', 'no_match', 'spoof_suspected']).toContain(await page.getAttribute('#verdict', 'data-result'));
    expect((await lightSeen(page)).covered).toBe(true);
    await expectCameraReleased(page);
    expect(problems.filter((p) => /Content Security Policy|Refused to|Uncaught|patient view/i.test(p))).toEqual([]);
  });

  it.each(DESK_LANGUAGES)(
    'the desk in $lang: texts in the language, a face verdict, the lock-out path to a code verdict in person, accessible (axe), switched in place',
    async ({ lang, locale, png }) => {
      const t = dictionary(lang);
      // The browser's language picks the page's.
      const { page, problems } = await openDemo('patient', { locale });
      expect(await page.getAttribute('html', 'lang')).toBe(lang);
      expect(await page.getAttribute(`#languages button[data-lang="${lang}"]`, 'aria-pressed')).toBe('true');
      expect(await page.textContent('#start')).toBe(t['identify.start']);
      expect(await page.textContent('#identify-title')).toBe(t['identify.title']);
      expect(await page.textContent('label[for="iin"]')).toBe(t['patient.iin']);
      expect(await page.textContent('#refuse')).toBe(t['identify.refuse']);
      expect(await page.textContent('#key-status')).toBe(t['key.accepted']);
      expect(await page.getAttribute('#progress', 'aria-label')).toBe(t['identify.progress_label']);
      expect(await page.getAttribute('#enroll-file', 'aria-label')).toBe(t['enroll.file_label']);
      expect(await page.getAttribute('#preview', 'aria-label')).toBe(t['identify.preview_label']);
      // The verdict is in the page from the start, empty: a live region that announces the verdict when it comes.
      expect(await page.getAttribute('#verdict', 'aria-live')).toBe('assertive');
      expect(await page.getAttribute('#verdict', 'hidden')).toBeNull();
      expect(await page.textContent('#verdict')).toBe('');
      await expectAccessible(page, `${lang}: at the start`);

      // A face verdict: the enrolled patient, a match, in the page's language; the verdict takes the focus.
      const iin = newIin();
      await enrollByFile(page, iin);
      const face = await identifyInPage(page);
      expect(face.result).toBe('match');
      expect(face.text.startsWith(t['verdict.match'])).toBe(true);
      expect(face.text).toContain(t['liveness.blinked']);
      expect(await page.textContent('#guidance')).toBe(t['identify.done']);
      expect(await page.getAttribute('#progress', 'data-state')).toBe('done');
      expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('verdict');
      expect(await page.isHidden('#by-code')).toBe(true);
      const faceSession = await shownSessionId(page);
      await page.waitForSelector(`#events li[data-session-id="${faceSession}"][data-type="identification.verdict"]`);
      expect(await page.textContent(`#events li[data-session-id="${faceSession}"]`)).toContain(t['result.match']);
      await page.evaluate('window.scrollTo(0, 0)'); // the top of the page, as the desk sees it
      await shot(page, `14-desk-${lang}-match`);
      if (png && process.env.UPDATE_DEMO_PNG === '1') {
        await sharp(path.join(SCREENSHOTS, `14-desk-${lang}-match.png`))
          .png({ palette: true, compressionLevel: 9 })
          .toFile(png);
      }

      // The lock-out path: a patient whose reference photo is somebody else's. Each failure offers the code at once.
      const other = newIin();
      await enrollByFile(page, other, otherReference);
      for (let i = 0; i < faceAttemptsMax; i++) {
        const failed = await identifyInPage(page);
        // Somebody else's face: no_match (spoof_suspected too counts as a failed attempt, should the stand-in's
        // blink be missed on a loaded machine).
        expect(['no_match', 'spoof_suspected']).toContain(failed.result);
        expect(failed.text.startsWith(t[`verdict.${failed.result}`])).toBe(true);
        expect(await page.isVisible('#by-code')).toBe(true);
        expect(await page.textContent('#by-code')).toBe(t['identify.by_code']);
        expect(await page.textContent('#next-step')).toBe(t[`next.${failed.result}`]);
        // A failure state, never a full bar with "Done.".
        expect(await page.getAttribute('#progress', 'data-state')).toBe('failed');
        expect(await page.textContent('#guidance')).toBe(t['identify.not_identified']);
      }
      await shot(page, `15-desk-${lang}-no-match`);
      // One more start: the gateway refuses the session (attempts_exceeded) before the camera is asked for.
      const cameras = await cameraRequests(page);
      await page.click('#start');
      await page.waitForSelector('#verdict[data-result="failed"]');
      await page.waitForSelector('#start:not([disabled])');
      expect(await cameraRequests(page)).toBe(cameras);
      const refused = (await page.textContent('#verdict'))!;
      expect(refused).toContain(t['error.attempts_exceeded']);
      expect(await page.textContent('#verdict .support-code')).toBe('attempts_exceeded'); // small, for support
      expect(refused).not.toMatch(/Too many failed face identifications/); // never the gateway's developer message
      expect(await page.isVisible('#by-code')).toBe(true);
      await expectAccessible(page, `${lang}: locked out of face attempts`);

      // "Identify by SMS code": straight to the code path in person, the code from the outbox, a match by code.
      await page.click('#by-code');
      await page.waitForSelector('#code-panel.active');
      const sessionId = (await page.getAttribute('#code-panel', 'data-session-id'))!;
      expect(await page.textContent('#code-status')).toContain(t['code.sent_fallback']);
      expect(await page.textContent('#guidance')).toBe(t['code.waiting']);
      expect(await page.isHidden('#by-code')).toBe(true);
      const code = await codeFromOutboxPanel(page, sessionId);
      await enterCode(page, code);
      await page.waitForSelector('#verdict[data-result="match"][data-method="code"]');
      const byCode = (await page.textContent('#verdict'))!;
      expect(byCode).toContain(t['verdict.match']);
      expect(byCode).toContain(t['method.code']);
      expect(await page.textContent('#guidance')).toBe(t['identify.done']);
      const res = await fetch(`${base}/sessions/${sessionId}`, { headers: { authorization: `Bearer ${apiKey}` } });
      expect(await res.json()).toMatchObject({
        channel: 'in_person',
        state: 'finished',
        refusalReason: 'face_failed',
        verdict: { result: 'match', method: 'code' },
      });
      await page.waitForSelector(`#events li[data-session-id="${sessionId}"][data-type="identification.verdict"]`);
      const events = await panelEvents(page, sessionId);
      expect(events.map((e) => [e.type, e.result, e.method, e.reason])).toEqual([
        ['identification.verdict', 'match', 'code', undefined],
        ['identification.refused', 'refused', 'none', 'face_failed'],
      ]);
      expect(events[1].text).toContain(t['refusal.face_failed']);
      expect(events[1].text).toContain(t['event.identification.refused']);
      await shot(page, `16-desk-${lang}-code-match`);
      await expectAccessible(page, `${lang}: a match by code`);

      // Another language: the page re-renders in place (the verdict too), and remembers the choice.
      const next = lang === 'en' ? 'ru' : 'en';
      const u = dictionary(next);
      await page.click(`#languages button[data-lang="${next}"]`);
      await page.waitForSelector(`html[lang="${next}"]`);
      expect(await page.textContent('#start')).toBe(u['identify.start']);
      expect(await page.textContent('#verdict')).toContain(u['verdict.match']);
      expect(await page.textContent('#guidance')).toBe(u['identify.done']);
      expect(
        await page.textContent(`#events li[data-session-id="${sessionId}"][data-type="identification.verdict"]`),
      ).toContain(u['result.match']);
      expect(await page.evaluate("localStorage.getItem('faceid.demo.lang')")).toBe(next);
      await page.reload();
      await page.waitForSelector('body[data-ready="true"]');
      expect(await page.getAttribute('html', 'lang')).toBe(next); // remembered over the browser's preference
      expect(await page.textContent('#start')).toBe(u['identify.start']);
      expect(problems.filter((p) => /Content Security Policy|Refused to|Uncaught/i.test(p))).toEqual([]);
    },
  );
});
