import * as fs from 'node:fs';
import * as path from 'node:path';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ConfigModule, loadConfig } from '../src/config';
import { CLIENT_DIR, DemoModule, demoCsp } from '../src/demo';

// The patient-facing capture view (client/demo/patient-view.js) in real Chromium, served by the real demo controller
// (its CSP, its file list) from a test harness page: driven with synthetic guidance and challenge messages, time
// from an injected clock, Chromium's fake camera for the preview. Screenshots go to test-results/screenshots/.

const CHROMIUM = process.env.FACEID_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOTS = path.join(__dirname, '..', 'test-results', 'screenshots');

function skipReason(): string | null {
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
if (skip && process.env.CI) throw new Error(`patient view tests cannot run in CI: ${skip}`);
if (skip) console.warn(`patient view tests skipped: ${skip}`);

type Lang = 'kk' | 'ru' | 'en';

/**
 * The view's own words, as merged into client/locales/{kk,ru,en}.json (the view owns no dictionary; the first test
 * checks the dictionaries have exactly these); the dictionaries' texts are used here (TEXTS below).
 */
const PROPOSED: Record<Lang, Record<string, string>> = {
  kk: {
    'patient_view.verdict.match': 'Жеке басыңыз расталды. Рақмет!',
    'patient_view.verdict.no_match': 'Расталмады. Тіркеушіге жүгініңіз.',
    'patient_view.verdict.spoof_suspected': 'Расталмады. Тіркеушіге жүгініңіз.',
    'patient_view.verdict.no_template': 'Жүйеде сіздің фотоңыз жоқ. Тіркеушіге жүгініңіз.',
    'patient_view.verdict.timeout': 'Уақыт бітті. Тіркеушіге жүгініңіз.',
    'patient_view.verdict.error': 'Қате орын алды. Тіркеушіге жүгініңіз.',
    'patient_view.verdict.expired': 'Тексеру уақыты өтіп кетті. Тіркеушіге жүгініңіз.',
    'patient_view.verdict.locked_out': 'Талпыныстар тым көп болды. Тіркеушіге жүгініңіз.',
    'patient_view.verdict.cancelled': 'Тексеру тоқтатылды.',
    'patient_view.verdict.failed': 'Тексеруді жүргізу мүмкін болмады. Тіркеушіге жүгініңіз.',
    'patient_view.title': 'Бет бойынша тексеру',
    'patient_view.starting': 'Дайындалуда… Камераға қараңыз.',
    'patient_view.countdown': '{seconds} с қалды',
    'patient_view.progress': 'Тексеру барысы',
    'patient_view.speak_on': 'Дыбыс: қосулы',
    'patient_view.speak_off': 'Дыбыс: өшірулі',
    'patient_view.fullscreen': 'Толық экран',
    'patient_view.fullscreen_exit': 'Толық экраннан шығу',
    'patient_view.close': 'Жабу',
    'patient_view.language': 'Тіл',
  },
  ru: {
    'patient_view.verdict.match': 'Личность подтверждена. Спасибо!',
    'patient_view.verdict.no_match': 'Не подтверждено. Обратитесь, пожалуйста, к регистратору.',
    'patient_view.verdict.spoof_suspected': 'Не подтверждено. Обратитесь, пожалуйста, к регистратору.',
    'patient_view.verdict.no_template': 'Вашего фото нет в системе. Обратитесь к регистратору.',
    'patient_view.verdict.timeout': 'Время вышло. Обратитесь к регистратору.',
    'patient_view.verdict.error': 'Произошла ошибка. Обратитесь к регистратору.',
    'patient_view.verdict.expired': 'Время проверки истекло. Обратитесь к регистратору.',
    'patient_view.verdict.locked_out': 'Слишком много попыток. Обратитесь к регистратору.',
    'patient_view.verdict.cancelled': 'Проверка остановлена.',
    'patient_view.verdict.failed': 'Проверку не удалось провести. Обратитесь к регистратору.',
    'patient_view.title': 'Проверка по лицу',
    'patient_view.starting': 'Подготовка… Смотрите в камеру.',
    'patient_view.countdown': 'Осталось {seconds} с',
    'patient_view.progress': 'Ход проверки',
    'patient_view.speak_on': 'Голос: вкл.',
    'patient_view.speak_off': 'Голос: выкл.',
    'patient_view.fullscreen': 'Во весь экран',
    'patient_view.fullscreen_exit': 'Выйти из полноэкранного режима',
    'patient_view.close': 'Закрыть',
    'patient_view.language': 'Язык',
  },
  en: {
    'patient_view.verdict.match': 'Identity confirmed. Thank you!',
    'patient_view.verdict.no_match': 'Not confirmed. Please speak to the receptionist.',
    'patient_view.verdict.spoof_suspected': 'Not confirmed. Please speak to the receptionist.',
    'patient_view.verdict.no_template': 'Your photo is not on file. Please speak to the receptionist.',
    'patient_view.verdict.timeout': 'Time is up. Please speak to the receptionist.',
    'patient_view.verdict.error': 'Something went wrong. Please speak to the receptionist.',
    'patient_view.verdict.expired': 'The check has expired. Please speak to the receptionist.',
    'patient_view.verdict.locked_out': 'Too many attempts. Please speak to the receptionist.',
    'patient_view.verdict.cancelled': 'The check was stopped.',
    'patient_view.verdict.failed': 'The check could not run. Please speak to the receptionist.',
    'patient_view.title': 'Face check',
    'patient_view.starting': 'Getting ready… Look at the camera.',
    'patient_view.countdown': '{seconds} s left',
    'patient_view.progress': 'Progress',
    'patient_view.speak_on': 'Voice: on',
    'patient_view.speak_off': 'Voice: off',
    'patient_view.fullscreen': 'Full screen',
    'patient_view.fullscreen_exit': 'Exit full screen',
    'patient_view.close': 'Close',
    'patient_view.language': 'Language',
  },
};

/** Short patient prompts, for a checkout without the dictionaries (they have their own `guidance.*` texts). */
const GUIDANCE_FALLBACK: Record<Lang, Record<string, string>> = {
  kk: {
    'guidance.no_face': 'Камераның алдына отырыңыз.',
    'guidance.multiple_faces': 'Камера алдында тек бір адам болуы керек.',
    'guidance.too_far': 'Камераға жақынырақ келіңіз.',
    'guidance.too_dark': 'Бетіңізге жарық жетпейді.',
    'guidance.blurry': 'Қозғалмай отырыңыз.',
    'guidance.look_at_camera': 'Камераға тура қараңыз.',
    'guidance.hold_still': 'Жақсы. Қозғалмаңыз.',
    'guidance.blink_now': 'Көзіңізді жұмып-ашыңыз.',
    'guidance.blink_again': 'Көзіңізді тағы бір рет жұмып-ашыңыз.',
    'guidance.turn_left': 'Басыңызды солға бұрып, камераға қайта қараңыз.',
    'guidance.turn_right': 'Басыңызды оңға бұрып, камераға қайта қараңыз.',
    'guidance.watch_screen': 'Экранға қараңыз: ол бір сәтке түсін өзгертеді.',
  },
  ru: {
    'guidance.no_face': 'Сядьте перед камерой.',
    'guidance.multiple_faces': 'Перед камерой должен быть только один человек.',
    'guidance.too_far': 'Придвиньтесь ближе к камере.',
    'guidance.too_dark': 'Лицу не хватает света.',
    'guidance.blurry': 'Пожалуйста, не двигайтесь.',
    'guidance.look_at_camera': 'Смотрите прямо в камеру.',
    'guidance.hold_still': 'Хорошо. Не двигайтесь.',
    'guidance.blink_now': 'Моргните.',
    'guidance.blink_again': 'Моргните ещё раз.',
    'guidance.turn_left': 'Поверните голову влево, затем снова посмотрите в камеру.',
    'guidance.turn_right': 'Поверните голову вправо, затем снова посмотрите в камеру.',
    'guidance.watch_screen': 'Смотрите на экран: он ненадолго сменит цвет.',
  },
  en: {
    'guidance.no_face': 'Sit in front of the camera.',
    'guidance.multiple_faces': 'Only one person in front of the camera, please.',
    'guidance.too_far': 'Come closer to the camera.',
    'guidance.too_dark': 'Not enough light on your face.',
    'guidance.blurry': 'Hold still, please.',
    'guidance.look_at_camera': 'Look straight at the camera.',
    'guidance.hold_still': 'Good. Hold still.',
    'guidance.blink_now': 'Blink now.',
    'guidance.blink_again': 'Blink once more.',
    'guidance.turn_left': 'Turn your head to your left, then back to the camera.',
    'guidance.turn_right': 'Turn your head to your right, then back to the camera.',
    'guidance.watch_screen': 'Look at the screen: it will change colour for a moment.',
  },
};

/** The dictionaries of the desk (client/locales/<lang>.json), when this checkout has them. */
function dictionary(lang: Lang): Record<string, string> {
  const file = path.join(CLIENT_DIR, 'locales', `${lang}.json`);
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, string>) : {};
}

/**
 * The words this test gives the view, per language: the dictionaries' texts where they have the key (the prompts,
 * which are also the longest texts the layout must fit), else the proposals above.
 */
const TEXTS: Record<Lang, Record<string, string>> = Object.fromEntries(
  (['kk', 'ru', 'en'] as const).map((lang) => [
    lang,
    { ...GUIDANCE_FALLBACK[lang], ...PROPOSED[lang], ...dictionary(lang) },
  ]),
) as Record<Lang, Record<string, string>>;

/** The guidance codes of the protocol (GUIDANCE_CODES in src/transport/protocol.ts). */
const CODES = [
  'no_face',
  'multiple_faces',
  'too_far',
  'too_dark',
  'blurry',
  'look_at_camera',
  'hold_still',
  'blink_now',
  'blink_again',
  'turn_left',
  'turn_right',
  'watch_screen',
];

const HARNESS_PATH = '/patient-view-harness';
const HARNESS = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>patient view harness</title></head>
<body><main id="desk"><h1>Desk page</h1><p>The receptionist's page, under the patient view.</p></main></body></html>`;

/** What the page exposes to the test (globalThis in the browser). */
type Win = any;

(skip ? describe.skip : describe)('patient view in Chromium', () => {
  jest.setTimeout(60_000);

  let app: NestExpressApplication;
  let base: string;
  let browser: Browser | null = null;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    // The demo controller alone (its file list and CSP), not the whole gateway.
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
    @Module({ imports: [ConfigModule.forRoot(config), DemoModule] })
    class DemoOnlyModule {}
    app = await NestFactory.create<NestExpressApplication>(DemoOnlyModule, { logger: false, abortOnError: false });
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-dev-shm-usage',
      ],
    });
  });

  afterEach(async () => {
    // Each test's page closes with it (its camera stream too).
    for (const c of contexts.splice(0)) await c.close().catch(() => undefined);
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await app?.close();
  });

  interface Harness {
    page: Page;
    /** Console errors, page errors and CSP violations. */
    problems: string[];
  }

  /**
   * A page of the gateway's origin with the demo's CSP (served by the test), the view created over it with the
   * texts above, `t` that knows the language it is asked for, and a clock the test sets (`window.clock`).
   * `speech`: a recording stand-in for speechSynthesis (voices for Kazakh and Russian only), none at all, or the
   * browser's own.
   */
  async function harness(
    viewport: { width: number; height: number },
    options: { speech?: 'fake' | 'none' | 'browser'; lang?: Lang; texts?: boolean } = {},
  ): Promise<Harness> {
    const context = await browser!.newContext({ viewport, deviceScaleFactor: 1.5 });
    contexts.push(context);
    await context.route(`${base}${HARNESS_PATH}`, (route) =>
      route.fulfill({
        status: 200,
        headers: { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': demoCsp(null, '127.0.0.1') },
        body: HARNESS,
      }),
    );
    const speech = options.speech ?? 'fake';
    await context.addInitScript((mode: string) => {
      const g = globalThis as Win;
      g.cspViolations = [];
      g.document.addEventListener('securitypolicyviolation', (e: Win) =>
        g.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`),
      );
      if (mode === 'none') {
        Object.defineProperty(g, 'speechSynthesis', { configurable: true, value: undefined });
        Object.defineProperty(g, 'SpeechSynthesisUtterance', { configurable: true, value: undefined });
      } else if (mode === 'fake') {
        g.spoken = [];
        g.speechCancels = 0;
        const voices = [
          { name: 'Kazakh voice', lang: 'kk-KZ', localService: true },
          { name: 'Russian voice', lang: 'ru-RU', localService: true },
        ];
        Object.defineProperty(g, 'SpeechSynthesisUtterance', {
          configurable: true,
          value: class {
            text: string;
            lang = '';
            voice: unknown = null;
            constructor(text: string) {
              this.text = text;
            }
          },
        });
        Object.defineProperty(g, 'speechSynthesis', {
          configurable: true,
          value: {
            speak: (u: Win) => g.spoken.push({ text: u.text, lang: u.lang, voice: u.voice ? u.voice.name : null }),
            cancel: () => g.speechCancels++,
            getVoices: () => voices,
          },
        });
      }
    }, speech);
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`${base}${HARNESS_PATH}`);
    // A string, not a function: TypeScript would turn the dynamic import into require().
    const texts = JSON.stringify(options.texts === false ? null : TEXTS);
    await page.evaluate(`(async () => {
      const m = await import('/demo/patient-view.js');
      const texts = ${texts};
      window.clock = 0;
      window.languagesPicked = [];
      window.closedByButton = 0;
      window.PATIENT_VIEW_KEYS = m.PATIENT_VIEW_KEYS;
      window.view = new m.PatientView(document.body, {
        t: (key, vars, lang) => (texts && texts[lang] ? texts[lang][key] : undefined),
        lang: ${JSON.stringify(options.lang ?? 'ru')},
        onLanguage: (lang) => window.languagesPicked.push(lang),
        onClose: () => window.closedByButton++,
        now: () => window.clock,
      });
      await window.view.ready;
    })()`);
    return { page, problems };
  }

  /** The CSP stopped nothing, and nothing failed in the page. */
  async function expectClean(h: Harness): Promise<void> {
    expect(await h.page.evaluate(() => (globalThis as Win).cspViolations)).toEqual([]);
    expect(h.problems).toEqual([]);
  }

  /** Opens the view on Chromium's fake camera (a 640x480 stream the page owns) and waits for its picture. */
  async function openWithCamera(page: Page): Promise<void> {
    await page.evaluate(async () => {
      const g = globalThis as Win;
      g.stream = await g.navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
      g.view.open(g.stream);
    });
    await page.waitForFunction(() => {
      const v = (globalThis as Win).document.querySelector('.pv-video');
      return v.readyState >= 2 && v.videoWidth > 0;
    });
  }

  const guidance = (page: Page, msg: Record<string, unknown>) =>
    page.evaluate((m) => (globalThis as Win).view.guidance(m), msg);
  const setClock = (page: Page, ms: number) => page.evaluate((t) => ((globalThis as Win).clock = t), ms);
  const text = async (page: Page, selector: string) => ((await page.textContent(selector)) ?? '').trim();
  /** Waits until the countdown shows `seconds` (the view redraws it on its own animation frames). */
  const countdownShows = (page: Page, seconds: number) =>
    page.waitForFunction(
      (s) => (globalThis as Win).document.querySelector('.pv-countdown').dataset.seconds === String(s),
      seconds,
    );
  const countdownHidden = (page: Page) =>
    page.waitForFunction(() => (globalThis as Win).document.querySelector('.pv-countdown').hidden === true);

  it('asks for every key it shows, and the proposed Kazakh, Russian and English texts have them all', async () => {
    const h = await harness({ width: 1366, height: 650 });
    const keys = (await h.page.evaluate(() => (globalThis as Win).PATIENT_VIEW_KEYS)) as string[];
    for (const lang of ['kk', 'ru', 'en'] as const) {
      expect(Object.keys({ ...GUIDANCE_FALLBACK[lang], ...PROPOSED[lang] }).sort()).toEqual([...keys].sort());
      // The desk's dictionary, when present, has every prompt the view shows.
      const dict = dictionary(lang);
      if (Object.keys(dict).length) {
        expect(keys.filter((k) => k.startsWith('guidance.') && !dict[k])).toEqual([]);
        // The view's own words are in the dictionary as proposed.
        for (const [key, text] of Object.entries(PROPOSED[lang]))
          expect({ lang, key, text: dict[key] }).toEqual({ lang, key, text });
      }
    }
    for (const code of CODES) {
      expect(keys).toContain(`guidance.${code}`);
    }
    // The view never reads or copies a frame: no canvas, no data URL, no recording.
    const source = fs.readFileSync(path.join(CLIENT_DIR, 'demo', 'patient-view.js'), 'utf8');
    expect(source).not.toMatch(
      /getContext|OffscreenCanvas|toDataURL|toBlob|getImageData|drawImage|captureStream|MediaRecorder|ImageCapture|\.stop\(\)/,
    );
    await expectClean(h);
  });

  it('face box mirrored like the preview and coloured by the code; progress; countdown from windowMs on the injected clock', async () => {
    const h = await harness({ width: 1366, height: 650 });
    const { page } = h;
    await openWithCamera(page);
    // Over the whole window, on top of the desk page, the preview mirrored.
    const layout = await page.evaluate(() => {
      const g = globalThis as Win;
      const root = g.document.querySelector('.pv');
      const r = root.getBoundingClientRect();
      const video = g.document.querySelector('.pv-video');
      return {
        position: g.getComputedStyle(root).position,
        covers: r.left <= 0 && r.top <= 0 && r.right >= g.innerWidth && r.bottom >= g.innerHeight,
        onTop: root.contains(g.document.elementFromPoint(g.innerWidth / 2, g.innerHeight / 2)),
        transform: g.getComputedStyle(video).transform,
        stream: video.srcObject === g.stream,
        starting: g.document.querySelector('.pv-instruction').textContent,
      };
    });
    expect(layout).toEqual({
      position: 'fixed',
      covers: true,
      onTop: true,
      transform: 'matrix(-1, 0, 0, 1, 0, 0)',
      stream: true,
      starting: TEXTS.ru['patient_view.starting'],
    });

    // The box: x from the left of the camera image; on the mirrored preview it is as far from the right.
    const box = { x: 0.1, y: 0.2, width: 0.3, height: 0.4 };
    await guidance(page, { code: 'hold_still', progress: 0.3, message: 'Good. Hold still.', box });
    const placed = () =>
      page.evaluate(() => {
        const g = globalThis as Win;
        const f = g.document.querySelector('.pv-frame').getBoundingClientRect();
        const el = g.document.querySelector('.pv-box');
        const b = el.getBoundingClientRect();
        return {
          hidden: el.hidden,
          left: (b.left - f.left) / f.width,
          top: (b.top - f.top) / f.height,
          width: b.width / f.width,
          height: b.height / f.height,
          className: el.className,
          colour: g.getComputedStyle(el).borderTopColor,
        };
      });
    let p = await placed();
    expect(p.hidden).toBe(false);
    expect(p.left).toBeCloseTo(0.6, 2);
    expect(p.top).toBeCloseTo(0.2, 2);
    expect(p.width).toBeCloseTo(0.3, 2);
    expect(p.height).toBeCloseTo(0.4, 2);
    expect(p.className).toContain('pv-q-ok');
    expect(p.colour).toBe('rgb(47, 211, 107)');
    expect(await text(page, '.pv-instruction')).toBe(TEXTS.ru['guidance.hold_still']);
    expect(await page.getAttribute('.pv-progress', 'aria-valuenow')).toBe('30');
    await page.screenshot({ path: path.join(SCREENSHOTS, 'patient-view-hold-still.png') });

    await guidance(page, {
      code: 'too_far',
      progress: 0.3,
      message: '',
      box: { x: 0.45, y: 0.4, width: 0.1, height: 0.14 },
    });
    p = await placed();
    expect(p.left).toBeCloseTo(0.45, 2);
    expect(p.className).toContain('pv-q-fix');
    expect(p.colour).toBe('rgb(255, 176, 32)');
    await guidance(page, { code: 'multiple_faces', progress: 0.3, message: '', box });
    p = await placed();
    expect(p.className).toContain('pv-q-bad');
    expect(p.colour).toBe('rgb(255, 90, 79)');
    await guidance(page, { code: 'no_face', progress: 0.3, message: '' }); // no box: none drawn
    expect((await placed()).hidden).toBe(true);
    expect(await page.getAttribute('.pv', 'data-quality')).toBe('bad');

    // The blink window: 5 s, counted down on the test's clock between messages.
    await setClock(page, 10_000);
    await guidance(page, { code: 'blink_now', progress: 0.5, message: 'Blink now.', box, windowMs: 5000 });
    await countdownShows(page, 5);
    expect(await text(page, '.pv-count-text')).toBe(TEXTS.ru['patient_view.countdown'].replace('{seconds}', '5'));
    expect(await text(page, '.pv-instruction')).toBe(TEXTS.ru['guidance.blink_now']);
    await setClock(page, 11_200);
    await countdownShows(page, 4);
    expect(await text(page, '.pv-count-text')).toBe(TEXTS.ru['patient_view.countdown'].replace('{seconds}', '4'));
    await setClock(page, 12_600);
    await countdownShows(page, 3);
    // A quality problem during the window: the window goes on.
    await setClock(page, 13_000);
    await guidance(page, { code: 'too_far', progress: 0.5, message: '', box });
    await countdownShows(page, 2);
    // The server's own count re-anchors it (1.5 s left at 13.1 s).
    await setClock(page, 13_100);
    await guidance(page, { code: 'blink_now', progress: 0.5, message: '', box, windowMs: 1500 });
    await countdownShows(page, 2);
    await setClock(page, 13_700);
    await countdownShows(page, 1);
    await setClock(page, 14_600);
    await countdownHidden(page);

    // blink_again: its own, shorter window, from full.
    await setClock(page, 15_000);
    await guidance(page, { code: 'blink_again', progress: 0.6, message: '', box, windowMs: 3000 });
    await countdownShows(page, 3);
    expect(await text(page, '.pv-instruction')).toBe(TEXTS.ru['guidance.blink_again']);
    const fill = () =>
      page.evaluate(
        () =>
          (globalThis as Win).getComputedStyle((globalThis as Win).document.querySelector('.pv-count-fill')).transform,
      ) as Promise<string>;
    expect(await fill()).toBe('matrix(1, 0, 0, 1, 0, 0)');
    await setClock(page, 16_500);
    await countdownShows(page, 2);
    const half = await fill();
    expect(Number(/matrix\(([\d.]+)/.exec(half)![1])).toBeCloseTo(0.5, 1);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'patient-view-blink-again.png') });
    // hold_still ends it.
    await guidance(page, { code: 'hold_still', progress: 0.7, message: '', box });
    await countdownHidden(page);

    // A turn: the challenge brings the arrow and its window; the client's turn_left prompt keeps it.
    await setClock(page, 20_000);
    await page.evaluate(() =>
      (globalThis as Win).view.challenge({
        type: 'challenge',
        kind: 'turn',
        challengeId: 'c-turn',
        direction: 'left',
        windowMs: 4000,
      }),
    );
    await countdownShows(page, 4);
    await guidance(page, { code: 'turn_left', progress: 0.7, message: '' });
    expect(await page.isVisible('.pv-arrow')).toBe(true);
    expect(await text(page, '.pv-arrow')).toBe('\u2190');
    expect(await page.getAttribute('.pv-arrow', 'data-direction')).toBe('left');
    expect(await text(page, '.pv-instruction')).toBe(TEXTS.ru['guidance.turn_left']);
    await setClock(page, 22_500);
    await countdownShows(page, 2);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'patient-view-turn.png') });

    // The verdict, in big words; countdown, box and arrow gone; later guidance does not replace it.
    await page.evaluate(() => (globalThis as Win).view.verdict('match', 'Match: identity confirmed.'));
    await countdownHidden(page);
    await guidance(page, { code: 'no_face', progress: 0.9, message: '' });
    const verdict = await page.evaluate(() => {
      const g = globalThis as Win;
      const el = g.document.querySelector('.pv-verdict');
      return {
        hidden: el.hidden,
        text: el.textContent,
        tone: el.dataset.tone,
        result: el.dataset.result,
        font: parseFloat(g.getComputedStyle(el).fontSize),
        box: g.document.querySelector('.pv-box').hidden,
        arrow: g.document.querySelector('.pv-arrow').hidden,
        instruction: g.document.querySelector('.pv-instruction').hidden,
        progress: g.document.querySelector('.pv-progress').getAttribute('aria-valuenow'),
      };
    });
    expect(verdict).toEqual({
      hidden: false,
      text: TEXTS.ru['patient_view.verdict.match'],
      tone: 'ok',
      result: 'match',
      font: expect.any(Number),
      box: true,
      arrow: true,
      instruction: true,
      progress: '100',
    });
    expect(verdict.font).toBeGreaterThanOrEqual(40);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'patient-view-verdict.png') });

    // Closing releases nothing of the page's: the stream stays live, only detached from the view's video.
    await page.evaluate(() => (globalThis as Win).view.close());
    const after = await page.evaluate(() => {
      const g = globalThis as Win;
      return {
        hidden: g.document.querySelector('.pv').hidden,
        srcObject: g.document.querySelector('.pv-video').srcObject,
        tracks: g.stream.getTracks().map((t: Win) => t.readyState),
      };
    });
    expect(after).toEqual({ hidden: true, srcObject: null, tracks: ['live'] });
    await expectClean(h);
  });

  // 1366x768 at 150% zoom: 910x512 CSS px full screen, about 910x430 in a browser window (tabs, address bar and the
  // taskbar take some 120 device px); the same screen at 100%; a portrait tablet.
  const VIEWPORTS = [
    { name: '1366x768 at 150% in full screen', width: 910, height: 512, minFont: 28 },
    { name: '1366x768 at 150% in a browser window', width: 910, height: 430, minFont: 28 },
    { name: '1366x768 at 100% in a browser window', width: 1366, height: 650, minFont: 40 },
    { name: 'a portrait tablet', width: 768, height: 1024, minFont: 36 },
  ];

  it.each(VIEWPORTS)(
    'fits without scrolling, text readable from a metre: $name',
    async ({ name, width, height, minFont }) => {
      const h = await harness({ width, height });
      const { page } = h;
      await openWithCamera(page);
      const box = { x: 0.3, y: 0.15, width: 0.38, height: 0.6 };
      const problems: string[] = [];
      let smallest = Infinity;
      const measure = async (what: string) => {
        const m = await page.evaluate(() => {
          const g = globalThis as Win;
          const d = g.document;
          const inside = (el: Win) => {
            const r = el.getBoundingClientRect();
            return r.left >= -0.5 && r.top >= -0.5 && r.right <= g.innerWidth + 0.5 && r.bottom <= g.innerHeight + 0.5;
          };
          const parts = [
            '.pv-title',
            '.pv-lang',
            '.pv-tool',
            '.pv-frame',
            '.pv-arrow',
            '.pv-instruction',
            '.pv-countdown',
          ];
          const shown = [...parts, '.pv-progress', '.pv-verdict']
            .flatMap((s) => Array.from(d.querySelectorAll(s)) as Win[])
            .filter((el) => !el.hidden && !el.closest('[hidden]') && el.getBoundingClientRect().height > 0);
          const text = ['.pv-instruction', '.pv-verdict'].map((s) => d.querySelector(s)).find((el) => !el.hidden);
          const panel = d.querySelector('.pv-panel');
          const root = d.querySelector('.pv');
          return {
            outside: shown.filter((el) => !inside(el)).map((el) => el.className),
            clipped: text.scrollHeight > text.clientHeight + 1 || text.scrollWidth > text.clientWidth + 1,
            panelClipped: panel.scrollHeight > panel.clientHeight + 1,
            rootScrolls: root.scrollHeight > root.clientHeight + 1 || root.scrollWidth > root.clientWidth + 1,
            pageScrolls:
              d.documentElement.scrollHeight > g.innerHeight + 1 && g.getComputedStyle(root).position !== 'fixed',
            font: parseFloat(g.getComputedStyle(text).fontSize),
            frame: d.querySelector('.pv-frame').getBoundingClientRect().height,
            langFont: parseFloat(g.getComputedStyle(d.querySelector('.pv-lang')).fontSize),
            // The title, the language buttons and the tools on one line (the height of one button row).
            barRows:
              d.querySelector('.pv-bar').clientHeight / d.querySelector('.pv-lang').getBoundingClientRect().height,
          };
        });
        smallest = Math.min(smallest, m.font);
        if (m.outside.length || m.clipped || m.panelClipped || m.rootScrolls || m.pageScrolls || m.font < minFont) {
          problems.push(`${what}: ${JSON.stringify(m)}`);
        }
        // The preview stays large: at least half the window's height (side by side) or a third (stacked).
        if (m.frame < height * (width > height ? 0.5 : 0.3)) problems.push(`${what}: preview only ${m.frame}px high`);
        if (m.langFont < 18) problems.push(`${what}: language buttons at ${m.langFont}px`);
        if (width > height && m.barRows > 1.8) problems.push(`${what}: the bar takes ${m.barRows.toFixed(1)} rows`);
      };

      for (const lang of ['kk', 'ru', 'en'] as const) {
        await page.evaluate((l) => (globalThis as Win).view.setLanguage(l), lang);
        for (const code of CODES) {
          // The worst case: every element at once (the arrow of a turn, a countdown, the box, the progress).
          await page.evaluate(
            ({ c, b }) => {
              const g = globalThis as Win;
              g.clock = 0;
              if (c === 'turn_left' || c === 'turn_right')
                g.view.challenge({ kind: 'turn', direction: c.slice(5), windowMs: 4000 });
              g.view.guidance({ code: c, progress: 0.5, message: '', box: b, windowMs: 4000 });
            },
            { c: code, b: box },
          );
          await measure(`${lang} ${code}`);
          if (lang === 'kk' && code === 'turn_left') {
            await page.screenshot({ path: path.join(SCREENSHOTS, `patient-view-${width}x${height}-kk-turn.png`) });
          }
        }
        for (const result of ['match', 'no_match', 'no_template', 'expired', 'locked_out', 'failed']) {
          await page.evaluate((r) => (globalThis as Win).view.verdict(r), result);
          await measure(`${lang} verdict ${result}`);
          await page.evaluate(() => (globalThis as Win).view.open((globalThis as Win).stream));
        }
      }
      expect({ name, problems }).toEqual({ name, problems: [] });
      expect(smallest).toBeGreaterThanOrEqual(minFont);
      await expectClean(h);
    },
  );

  it('the patient picks the language on the view; spoken prompts are off until asked, then each new one is said once', async () => {
    const h = await harness({ width: 1366, height: 650 }, { speech: 'fake', lang: 'ru' });
    const { page } = h;
    await openWithCamera(page);
    type Spoken = Array<{ text: string; lang: string; voice: string | null }>;
    const spoken = () => page.evaluate(() => (globalThis as Win).spoken) as Promise<Spoken>;
    expect(await page.getAttribute('.pv', 'lang')).toBe('ru');
    expect(await page.getAttribute('.pv-lang[data-lang="ru"]', 'aria-pressed')).toBe('true');
    expect(await text(page, '.pv-lang[data-lang="kk"]')).toBe('Қазақша');
    expect(await text(page, '.pv-lang[data-lang="ru"]')).toBe('Русский');
    expect(await text(page, '.pv-title')).toBe(TEXTS.ru['patient_view.title']);

    await guidance(page, { code: 'blink_now', progress: 0.4, message: 'Blink now.', windowMs: 4000 });
    expect(await spoken()).toEqual([]); // off by default
    expect(await page.getAttribute('.pv-speak', 'aria-pressed')).toBe('false');
    expect(await page.getAttribute('.pv-speak', 'title')).toBe(TEXTS.ru['patient_view.speak_off']);

    await page.click('.pv-speak');
    expect(await page.getAttribute('.pv-speak', 'aria-pressed')).toBe('true');
    expect(await page.getAttribute('.pv-speak', 'title')).toBe(TEXTS.ru['patient_view.speak_on']);
    // The instruction on screen is said at once, with the Russian voice.
    expect(await spoken()).toEqual([{ text: TEXTS.ru['guidance.blink_now'], lang: 'ru-RU', voice: 'Russian voice' }]);
    // The server repeats the prompt with each frame: said once.
    for (let i = 0; i < 3; i++)
      await guidance(page, { code: 'blink_now', progress: 0.4, message: 'Blink now.', windowMs: 3000 - i * 100 });
    expect(await spoken()).toHaveLength(1);
    await guidance(page, { code: 'too_far', progress: 0.4, message: '' });
    expect((await spoken())[1]).toEqual({ text: TEXTS.ru['guidance.too_far'], lang: 'ru-RU', voice: 'Russian voice' });

    // The patient switches to Kazakh on the view: texts and speech in Kazakh, the page told.
    await page.click('.pv-lang[data-lang="kk"]');
    expect(await page.evaluate(() => (globalThis as Win).languagesPicked)).toEqual(['kk']);
    expect(await page.getAttribute('.pv', 'lang')).toBe('kk');
    expect(await page.getAttribute('.pv-lang[data-lang="kk"]', 'aria-pressed')).toBe('true');
    expect(await page.getAttribute('.pv-lang[data-lang="ru"]', 'aria-pressed')).toBe('false');
    expect(await text(page, '.pv-instruction')).toBe(TEXTS.kk['guidance.too_far']);
    expect(await text(page, '.pv-title')).toBe(TEXTS.kk['patient_view.title']);
    expect(await page.getAttribute('.pv-speak', 'title')).toBe(TEXTS.kk['patient_view.speak_on']);
    expect((await spoken())[2]).toEqual({ text: TEXTS.kk['guidance.too_far'], lang: 'kk-KZ', voice: 'Kazakh voice' });
    await guidance(page, { code: 'hold_still', progress: 0.6, message: '' });
    expect((await spoken())[3]).toEqual({
      text: TEXTS.kk['guidance.hold_still'],
      lang: 'kk-KZ',
      voice: 'Kazakh voice',
    });

    // English: no English voice here, so nothing is said (never Kazakh or Russian words in an English voice or
    // the other way round); the text is on the screen.
    await page.click('.pv-lang[data-lang="en"]');
    await guidance(page, { code: 'look_at_camera', progress: 0.6, message: '' });
    expect(await text(page, '.pv-instruction')).toBe(TEXTS.en['guidance.look_at_camera']);
    expect(await spoken()).toHaveLength(4);

    // The verdict is said too; turning the voice off stops ours.
    await page.click('.pv-lang[data-lang="ru"]');
    await page.evaluate(() => (globalThis as Win).view.verdict('no_match', 'No match'));
    expect((await spoken()).at(-1)).toEqual({
      text: TEXTS.ru['patient_view.verdict.no_match'],
      lang: 'ru-RU',
      voice: 'Russian voice',
    });
    const cancels = (await page.evaluate(() => (globalThis as Win).speechCancels)) as number;
    await page.click('.pv-speak');
    expect(await page.evaluate(() => (globalThis as Win).speechCancels)).toBe(cancels + 1);
    expect(await page.evaluate(() => (globalThis as Win).languagesPicked)).toEqual(['kk', 'en', 'ru']);
    await expectClean(h);
  });

  it('without speechSynthesis: no voice button, no failure; without texts: the client message, else the key', async () => {
    const h = await harness({ width: 1366, height: 650 }, { speech: 'none', texts: false });
    const { page } = h;
    await openWithCamera(page);
    expect(await page.isHidden('.pv-speak')).toBe(true);
    await page.evaluate(() => (globalThis as Win).view.setSpeech(true));
    expect(await page.getAttribute('.pv-speak', 'aria-pressed')).toBe('false');
    await guidance(page, { code: 'blink_now', progress: 0.4, message: 'Blink now.', windowMs: 2000 });
    expect(await text(page, '.pv-instruction')).toBe('Blink now.');
    await guidance(page, { code: 'hold_still', progress: 0.4 });
    expect(await text(page, '.pv-instruction')).toBe('guidance.hold_still');
    expect(await text(page, '.pv-title')).toBe('patient_view.title');
    await page.evaluate(() => (globalThis as Win).view.verdict('spoof_suspected', 'Rejected.'));
    expect(await text(page, '.pv-verdict')).toBe('Rejected.');
    await page.evaluate(() => (globalThis as Win).view.verdict('error'));
    expect(await text(page, '.pv-verdict')).toBe('patient_view.verdict.error');
    await expectClean(h);
  });

  it('showLight paints the colours over the whole window inside the view, stamped with animation frames on the captureTime clock', async () => {
    const h = await harness({ width: 1366, height: 650 });
    const { page } = h;
    await openWithCamera(page);
    const colours = [
      { rgb: [255, 255, 255], ms: 150 },
      { rgb: [0, 0, 255], ms: 150 },
      { rgb: [255, 0, 0], ms: 150 },
    ];
    const result = (await page.evaluate(async (cs) => {
      const g = globalThis as Win;
      const d = g.document;
      const root = d.querySelector('.pv');
      // Every animation frame's time, on the epoch clock the client stamps frames with (epochNow).
      const frames: number[] = [];
      let looping = true;
      const loop = (ts: number) => {
        frames.push(Math.round((g.performance.timeOrigin + ts) * 10) / 10);
        if (looping) g.requestAnimationFrame(loop);
      };
      g.requestAnimationFrame(loop);
      const seen: string[] = [];
      let covered = true;
      let inView = true;
      const note = () => {
        const el = d.querySelector('[data-faceid-light]');
        if (!el) return;
        const colour = el.style.backgroundColor;
        if (!colour || seen[seen.length - 1] === colour) return;
        seen.push(colour);
        const r = el.getBoundingClientRect();
        covered =
          covered &&
          g.getComputedStyle(el).position === 'fixed' &&
          r.left <= 0 &&
          r.top <= 0 &&
          r.right >= g.innerWidth &&
          r.bottom >= g.innerHeight &&
          d.elementFromPoint(g.innerWidth / 2, g.innerHeight / 2) === el;
        inView = inView && root.contains(el);
      };
      const observer = new g.MutationObserver(note);
      observer.observe(d.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['style'] });
      const before = g.performance.timeOrigin + g.performance.now();
      const shownAt = await g.view.showLight(cs, { challengeId: 'c-light', signal: new g.AbortController().signal });
      const after = g.performance.timeOrigin + g.performance.now();
      looping = false;
      observer.disconnect();
      return {
        shownAt,
        before,
        after,
        frames,
        seen,
        covered,
        inView,
        left: d.querySelectorAll('[data-faceid-light]').length,
      };
    }, colours)) as {
      shownAt: number[];
      before: number;
      after: number;
      frames: number[];
      seen: string[];
      covered: boolean;
      inView: boolean;
      left: number;
    };
    expect(result.seen).toEqual(['rgb(255, 255, 255)', 'rgb(0, 0, 255)', 'rgb(255, 0, 0)']);
    expect(result.covered).toBe(true);
    expect(result.inView).toBe(true); // so a full-screen view shows it
    expect(result.left).toBe(0);
    expect(result.shownAt).toHaveLength(colours.length + 1);
    for (const t of result.shownAt) {
      expect(result.frames).toContain(t); // an animation frame's own time
      expect(t).toBeGreaterThanOrEqual(result.before - 1);
      expect(t).toBeLessThanOrEqual(result.after + 1);
    }
    // In order, each colour on screen as long as asked within the frames of this run: a colour is switched about a
    // frame and a half (of the measured frame time) ahead of its end, so it lasts at least its ms less 1.5 of the
    // longest frame seen (on a loaded machine the frames are longer, and so is the allowance).
    const during = result.frames.filter((t) => t >= result.shownAt[0] && t <= result.shownAt[colours.length]);
    // (The view starts from a 60 Hz frame time before it has measured one.)
    const longestFrame = Math.max(1000 / 60, ...during.slice(1).map((t, i) => t - during[i]));
    for (let i = 0; i < colours.length; i++) {
      const lasted = result.shownAt[i + 1] - result.shownAt[i];
      expect(lasted).toBeGreaterThan(0);
      expect(lasted).toBeGreaterThanOrEqual(colours[i].ms - 1.5 * longestFrame - 1);
    }

    // Aborted (a newer challenge, the verdict): the colour goes, the promise rejects with an AbortError.
    const aborted = await page.evaluate(async () => {
      const g = globalThis as Win;
      const c = new g.AbortController();
      const run = g.view.showLight([{ rgb: [0, 255, 0], ms: 10_000 }], { challengeId: 'c2', signal: c.signal }).then(
        () => 'resolved',
        (e: Win) => e.name,
      );
      await new Promise<void>((resolve) => {
        const wait = () =>
          g.document.querySelector('[data-faceid-light]') ? resolve() : g.requestAnimationFrame(wait);
        wait();
      });
      c.abort();
      return { outcome: await run, left: g.document.querySelectorAll('[data-faceid-light]').length };
    });
    expect(aborted).toEqual({ outcome: 'AbortError', left: 0 });

    // Malformed colours are refused as the client's own overlay refuses them.
    const refused = await page.evaluate(() =>
      (globalThis as Win).view.showLight([{ rgb: [300, 0, 0], ms: 100 }], {}).catch((e: Win) => e.name),
    );
    expect(refused).toBe('TypeError');

    // With the view closed, the light still covers the window (on the page).
    const closed = await page.evaluate(async () => {
      const g = globalThis as Win;
      g.view.close();
      let parent = '';
      const observer = new g.MutationObserver(() => {
        const el = g.document.querySelector('[data-faceid-light]');
        if (el && !parent) parent = el.parentElement.tagName;
      });
      observer.observe(g.document.body, { subtree: true, childList: true });
      const shownAt = await g.view.showLight([{ rgb: [0, 0, 0], ms: 50 }], {});
      observer.disconnect();
      return { parent, entries: shownAt.length };
    });
    expect(closed).toEqual({ parent: 'BODY', entries: 2 });
    await expectClean(h);
  });

  it('goes full screen from its button and back; closing leaves full screen and keeps the stream running', async () => {
    const h = await harness({ width: 1366, height: 650 });
    const { page } = h;
    await openWithCamera(page);
    const fullscreenEnabled = await page.evaluate(() => (globalThis as Win).document.fullscreenEnabled);
    expect(fullscreenEnabled).toBe(true);
    expect(await page.getAttribute('.pv-fullscreen', 'title')).toBe(TEXTS.ru['patient_view.fullscreen']);
    await page.click('.pv-fullscreen');
    await page.waitForFunction(
      () => (globalThis as Win).document.fullscreenElement === (globalThis as Win).document.querySelector('.pv'),
    );
    await page.waitForSelector('.pv[data-fullscreen="true"]');
    expect(await page.getAttribute('.pv-fullscreen', 'title')).toBe(TEXTS.ru['patient_view.fullscreen_exit']);
    await guidance(page, { code: 'watch_screen', progress: 0.2, message: '' });
    // The light, in full screen: inside the full-screen element, so the patient sees it.
    const light = await page.evaluate(async () => {
      const g = globalThis as Win;
      let inside = false;
      const observer = new g.MutationObserver(() => {
        const el = g.document.querySelector('[data-faceid-light]');
        if (el) inside = g.document.fullscreenElement.contains(el);
      });
      observer.observe(g.document.body, { subtree: true, childList: true });
      const shownAt = await g.view.showLight([{ rgb: [255, 255, 255], ms: 60 }], {});
      observer.disconnect();
      return { inside, entries: shownAt.length };
    });
    expect(light).toEqual({ inside: true, entries: 2 });
    // The button again: back to the overlay.
    await page.click('.pv-fullscreen');
    await page.waitForFunction(() => (globalThis as Win).document.fullscreenElement === null);
    await page.waitForSelector('.pv[data-fullscreen="false"]');
    expect(await page.isVisible('.pv')).toBe(true);
    // Full screen again, then the close button: out of full screen, view hidden, the page's stream still live.
    await page.click('.pv-fullscreen');
    await page.waitForFunction(() => (globalThis as Win).document.fullscreenElement !== null);
    await page.click('.pv-close');
    await page.waitForFunction(() => (globalThis as Win).document.fullscreenElement === null);
    const after = await page.evaluate(() => {
      const g = globalThis as Win;
      return {
        closedByButton: g.closedByButton,
        hidden: g.document.querySelector('.pv').hidden,
        tracks: g.stream.getTracks().map((t: Win) => t.readyState),
      };
    });
    expect(after).toEqual({ closedByButton: 1, hidden: true, tracks: ['live'] });
    await expectClean(h);
  });
});
