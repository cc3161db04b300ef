/**
 * patient-view.js: the patient-facing capture view. An ES module (no build step) with its own stylesheet,
 * patient-view.css beside it (linked by the view itself); it takes the light challenge's painting from the client
 * module (showLightOverlay, /client/faceid-client.js). Everything it shows is built with DOM calls and
 * CSSOM properties: no inline script or style, so it runs under the demo page's CSP (`style-src 'self'`).
 *
 *   import { PatientView } from '/demo/patient-view.js';
 *   import { loadLanguage, t } from '/demo/i18n.js';
 *   await Promise.all(['kk', 'ru', 'en'].map((l) => loadLanguage(l)));
 *   const view = new PatientView(document.body, {
 *     t: (key, vars, lang) => t(lang, key, vars),            // the patient's language, not the desk's
 *     lang: 'kk',
 *     onLanguage: (lang) => ...,                             // the patient switched on the view
 *     onClose: () => ...,
 *   });
 *   const stream = await openCamera();                       // the client module's; the stream stays the page's
 *   view.open(stream);
 *   const run = identify({
 *     stream, video: deskPreview, getSession,
 *     showLight: view.showLight,                             // the light challenge paints in this view
 *     onGuidance: (g) => view.guidance(g),                   // {code, progress, message, box?, windowMs?}
 *     onChallenge: (c) => view.challenge(c),                 // {kind, challengeId, direction?, colours?, windowMs?}
 *     onVerdict: (v, words) => view.verdict(v.result, words.message),
 *   });
 *   ...
 *   view.close();
 *
 * API
 * - `new PatientView(container, options)`: builds the view (hidden) inside `container` (any element, also one in
 *   another window's document, e.g. a window on a patient-facing monitor). Options:
 *   - `t(key, vars, lang)`: the translation function; `lang` is the patient's language (a `t` bound to one language
 *     may ignore it: the page then swaps it with `setLanguage(lang, t)` from `onLanguage`). Whatever `t` does not
 *     know (it returns nothing, or the key itself) falls back to the client's message, else to the key.
 *   - `lang`: the patient's language ('kk' by default); `languages`: the buttons offered (['kk', 'ru', 'en']).
 *   - `onLanguage(lang)`: the patient picked a language on the view (independent of the desk's language).
 *   - `onClose()`: the close button was pressed (the view has closed itself).
 *   - `overlay` (true): the view covers the window, on top of the page; false: it fills `container` only.
 *   - `now()`: the clock of the countdowns, ms (performance.now() of the container's window); tests pass their own.
 *   - `stylesheet` (true): link patient-view.css into the container's document; false when the page links it.
 * - `ready`: a promise that resolves once the stylesheet has loaded (or failed to).
 * - `open(stream?)`: shows the view with the camera preview (mirrored). The stream is the page's: the view only
 *   shows it in its own <video>, never reads a frame (no canvas, no copies), and never stops it.
 * - `guidance(msg)`: the client's onGuidance argument `{code, progress, message, box?, windowMs?}`: the instruction in
 *   big words, the progress, the face box (`box` as fractions of the frame, not mirrored; drawn mirrored like the
 *   preview, green for a prompt, amber for a fixable problem, red for no face or several) and the countdown.
 * - `challenge(msg)`: the client's onChallenge argument: the turn's arrow and prompt, or the light's prompt, and its
 *   countdown when `windowMs` is given.
 * - `verdict(result, text?)`: the outcome in big words (`patient_view.verdict.<result>`, else `text`).
 * - `showLight(colours, {challengeId, signal})`: for identify()'s `showLight` option, a bound function: the client's
 *   showLightOverlay (its contract and timing), painting each colour over the whole window (inside this view while
 *   it is open, so a full-screen view shows it; on the page otherwise) and resolves with the epoch times at which each
 *   colour reached the screen plus the end (requestAnimationFrame time + performance.timeOrigin: the clock of the
 *   frames' captureTime), colours.length + 1 entries.
 * - `fullscreen()`: toggles full screen (the Fullscreen API; call it from a click). Resolves true when full screen.
 * - `setLanguage(lang, t?)`, `setSpeech(on)`: what the view's own buttons do (without calling onLanguage).
 * - `close()`: hides the view, leaves full screen, stops its countdown, its light and its own speech, and detaches
 *   the stream from its <video> (the stream keeps running: it belongs to the client module or the page).
 * - `destroy()`: close() and remove the view's elements.
 *
 * Countdown: `windowMs` is the time left in the challenge's window when the message was sent; the view counts down
 * locally (requestAnimationFrame, on `now()`) and re-anchors on every message that carries it. A quality problem
 * (too_far, no_face, ...) during a window keeps the countdown running; `hold_still` or another challenge's prompt
 * without a window ends it; so do the verdict and the end of the window.
 *
 * Spoken prompts (off by default; the view's voice button): each new instruction is said once, with a voice of the
 * patient's language. Where the browser lists voices but none speaks that language, nothing is said (the text is on
 * the screen); where it lists none yet, the utterance's `lang` lets the browser choose. The same text is not said
 * again within 5 s (a patient moving in and out of the oval). Without window.speechSynthesis the button is hidden.
 *
 * Texts (keys asked of `t`; PATIENT_VIEW_KEYS lists them all): `guidance.<code>` (the desk's prompts),
 * `patient_view.verdict.<result>` (the outcome as the patient is told it: no reason, no detail for an attacker),
 * `patient_view.title`, `.starting`, `.countdown` ({seconds}), `.progress`, `.speak_on`, `.speak_off`, `.fullscreen`,
 * `.fullscreen_exit`, `.close`, `.language`. Language names on the buttons are each in its own language (Қазақша,
 * Русский, English), not translated.
 */

import { showLightOverlay } from '/client/faceid-client.js';

/** Guidance codes, by what the face box's colour says. */
const OK_CODES = new Set(['hold_still', 'blink_now', 'blink_again', 'turn_left', 'turn_right', 'watch_screen']);
const FIX_CODES = new Set(['too_far', 'too_dark', 'blurry', 'look_at_camera']);
const BAD_CODES = new Set(['no_face', 'multiple_faces']);
/** The prompts of a liveness challenge: each has its own window. */
const CHALLENGE_CODES = new Set(['blink_now', 'blink_again', 'turn_left', 'turn_right', 'watch_screen']);

export const GUIDANCE_CODES = Object.freeze([
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
]);

/** The verdict results the view has words for (the server's, and the desk's own `cancelled` and `failed`). */
export const VERDICT_RESULTS = Object.freeze([
  'match',
  'no_match',
  'spoof_suspected',
  'no_template',
  'timeout',
  'error',
  'expired',
  'locked_out',
  'cancelled',
  'failed',
]);

const OWN_KEYS = [
  'patient_view.title',
  'patient_view.starting',
  'patient_view.countdown',
  'patient_view.progress',
  'patient_view.speak_on',
  'patient_view.speak_off',
  'patient_view.fullscreen',
  'patient_view.fullscreen_exit',
  'patient_view.close',
  'patient_view.language',
];

/** Every key the view asks `t` for (for the dictionaries, and a test that they are all there). */
export const PATIENT_VIEW_KEYS = Object.freeze([
  ...GUIDANCE_CODES.map((c) => `guidance.${c}`),
  ...VERDICT_RESULTS.map((r) => `patient_view.verdict.${r}`),
  ...OWN_KEYS,
]);

/** The language buttons: each name in its own language; BCP 47 tags for speech. */
const LANGUAGE_NAMES = { kk: 'Қазақша', ru: 'Русский', en: 'English' };
const SPEECH_TAGS = { kk: 'kk-KZ', ru: 'ru-RU', en: 'en-GB' };

/** The turn's arrow: facing the screen, the patient's own left is the screen's left (the preview is mirrored). */
const TURN_ARROWS = { turn_left: '\u2190', turn_right: '\u2192' };

/** The smallest font the instruction and the verdict shrink to when a long text does not fit (CSS px). */
const MIN_TEXT_PX = 22;
/** The same text is not spoken again within this time. */
const SPEAK_AGAIN_MS = 5000;

const SVG_NS = 'http://www.w3.org/2000/svg';
const ICONS = {
  speak: 'M4 9h4l5-4v14l-5-4H4z M16 8.5a5 5 0 0 1 0 7 M18.5 6a8.5 8.5 0 0 1 0 12',
  fullscreen: 'M4 9V4h5 M15 4h5v5 M20 15v5h-5 M9 20H4v-5',
  close: 'M6 6l12 12 M18 6L6 18',
};

export class PatientView {
  constructor(container, options = {}) {
    if (!container || !container.ownerDocument) throw new TypeError('PatientView needs a container element.');
    this.container = container;
    this.doc = container.ownerDocument;
    this.win = this.doc.defaultView;
    this.t = typeof options.t === 'function' ? options.t : null;
    this.languages =
      Array.isArray(options.languages) && options.languages.length ? [...options.languages] : ['kk', 'ru', 'en'];
    this.lang = typeof options.lang === 'string' && options.lang ? options.lang : this.languages[0];
    this.onLanguage = typeof options.onLanguage === 'function' ? options.onLanguage : null;
    this.onClose = typeof options.onClose === 'function' ? options.onClose : null;
    this.now = typeof options.now === 'function' ? options.now : () => this.win.performance.now();
    this.overlay = options.overlay !== false;

    this.isOpen = false;
    /** The stream shown (the page's; never stopped here). */
    this.stream = null;
    /** The current instruction: {code, message} or null. */
    this.instruction = null;
    /** The verdict shown: {result, text} or null. */
    this.outcome = null;
    /** The running countdown: {code, deadline, total} (ms on `now()`), or null. */
    this.window = null;
    this.shownSeconds = null;
    this.frameRequest = 0;
    /** The light being shown: its finish function (aborts it). */
    this.stopLightNow = null;
    this.speechOn = false;
    this.lastSpoken = null; // {text, at}
    this.utterance = null; // ours, while it may be speaking

    this.showLight = (colours, opts) => this.paintLight(colours, opts);
    this.ready = options.stylesheet === false ? Promise.resolve() : this.linkStylesheet();
    this.build();
    this.onFullscreenChange = () => this.renderFullscreen();
    this.doc.addEventListener('fullscreenchange', this.onFullscreenChange);
    this.resizeObserver =
      typeof this.win.ResizeObserver === 'function' ? new this.win.ResizeObserver(() => this.fitTexts()) : null;
    this.renderTexts();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Public
  // -------------------------------------------------------------------------------------------------------------

  open(stream = null) {
    this.stopLight();
    this.instruction = null;
    this.outcome = null;
    this.window = null;
    this.lastSpoken = null;
    this.setProgress(0);
    this.setBox(null, null);
    this.attach(stream);
    this.isOpen = true;
    this.root.hidden = false;
    this.root.dataset.state = 'open';
    if (this.resizeObserver) this.resizeObserver.observe(this.ui.panel);
    this.renderAll();
  }

  guidance(msg) {
    if (!msg || typeof msg.code !== 'string' || !msg.code || this.outcome) return; // the verdict stays until open()
    if (typeof msg.progress === 'number') this.setProgress(msg.progress);
    this.setBox(msg.box, msg.code);
    this.instruct(msg.code, typeof msg.message === 'string' ? msg.message : null, msg.windowMs);
  }

  challenge(msg) {
    if (!msg || typeof msg !== 'object' || this.outcome) return;
    let code = null;
    if (msg.kind === 'turn')
      code = msg.direction === 'left' ? 'turn_left' : msg.direction === 'right' ? 'turn_right' : null;
    else if (msg.kind === 'light') code = 'watch_screen';
    if (!code) return;
    this.instruct(code, null, msg.windowMs);
  }

  verdict(result, text = null) {
    const r = typeof result === 'string' && result ? result : 'error';
    this.outcome = { result: r, text: typeof text === 'string' && text ? text : null };
    this.window = null;
    this.setBox(null, null);
    this.setProgress(1);
    this.root.dataset.state = 'verdict';
    this.renderAll();
    this.speak(this.verdictText());
  }

  setLanguage(lang, t) {
    if (typeof t === 'function') this.t = t;
    if (typeof lang !== 'string' || !lang) return;
    this.lang = lang;
    this.lastSpoken = null;
    this.renderAll();
    this.speak(this.outcome ? this.verdictText() : this.instruction ? this.instructionText() : '');
  }

  setSpeech(on) {
    this.speechOn = Boolean(on) && this.canSpeak();
    this.ui.speak.setAttribute('aria-pressed', String(this.speechOn));
    this.renderTexts();
    if (this.speechOn) {
      this.lastSpoken = null;
      this.speak(this.outcome ? this.verdictText() : this.instruction ? this.instructionText() : '');
    } else {
      this.silence();
    }
  }

  async fullscreen() {
    const el = this.root;
    try {
      if (this.doc.fullscreenElement === el) {
        await this.doc.exitFullscreen();
        return false;
      }
      if (typeof el.requestFullscreen !== 'function') return false;
      await el.requestFullscreen({ navigationUI: 'hide' });
      return true;
    } catch {
      return this.doc.fullscreenElement === el;
    }
  }

  close() {
    this.stopLight();
    this.stopFrames();
    this.silence();
    this.window = null;
    if (this.doc.fullscreenElement === this.root && typeof this.doc.exitFullscreen === 'function') {
      this.doc.exitFullscreen().catch(() => undefined);
    }
    this.attach(null);
    if (this.resizeObserver) this.resizeObserver.disconnect();
    this.isOpen = false;
    this.root.hidden = true;
    this.root.dataset.state = 'closed';
  }

  destroy() {
    this.close();
    this.doc.removeEventListener('fullscreenchange', this.onFullscreenChange);
    this.root.remove();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Building
  // -------------------------------------------------------------------------------------------------------------

  linkStylesheet() {
    const href = new URL('./patient-view.css', import.meta.url).href;
    let link = Array.from(this.doc.querySelectorAll('link[rel="stylesheet"]')).find((l) => l.href === href);
    if (link && link.sheet) return Promise.resolve();
    if (!link) {
      link = this.doc.createElement('link');
      link.rel = 'stylesheet';
      link.href = href;
      (this.doc.head || this.doc.documentElement).append(link);
    }
    return new Promise((resolve) => {
      link.addEventListener('load', () => resolve(), { once: true });
      link.addEventListener('error', () => resolve(), { once: true });
    });
  }

  el(tag, className, parent) {
    const e = this.doc.createElement(tag);
    if (className) e.className = className;
    if (parent) parent.append(e);
    return e;
  }

  icon(name, parent) {
    const svg = this.doc.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('class', 'pv-icon');
    const path = this.doc.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', ICONS[name]);
    svg.append(path);
    parent.append(svg);
    return svg;
  }

  toolButton(name, parent, onClick) {
    const b = this.el('button', `pv-tool pv-${name}`, parent);
    b.type = 'button';
    this.icon(name, b);
    const label = this.el('span', 'pv-tool-label', b);
    b.addEventListener('click', onClick);
    return { button: b, label };
  }

  build() {
    const root = this.el('section', `pv ${this.overlay ? 'pv-overlay' : 'pv-inline'}`);
    root.hidden = true;
    root.dataset.state = 'closed';
    root.setAttribute('role', 'dialog');
    root.setAttribute('aria-modal', this.overlay ? 'true' : 'false');
    const shell = this.el('div', 'pv-shell', root);

    const bar = this.el('header', 'pv-bar', shell);
    const title = this.el('h1', 'pv-title', bar);
    title.id = `pv-title-${Math.random().toString(36).slice(2, 10)}`;
    root.setAttribute('aria-labelledby', title.id);
    const langs = this.el('div', 'pv-langs', bar);
    langs.setAttribute('role', 'group');
    const langButtons = new Map();
    for (const lang of this.languages) {
      const b = this.el('button', 'pv-lang', langs);
      b.type = 'button';
      b.lang = lang;
      b.dataset.lang = lang;
      b.textContent = LANGUAGE_NAMES[lang] || lang;
      b.addEventListener('click', () => {
        if (lang === this.lang) return;
        this.setLanguage(lang);
        if (this.onLanguage) {
          try {
            this.onLanguage(lang);
          } catch (err) {
            console.error('patient-view: onLanguage threw', err);
          }
        }
      });
      langButtons.set(lang, b);
    }
    const tools = this.el('div', 'pv-tools', bar);
    const speak = this.toolButton('speak', tools, () => this.setSpeech(!this.speechOn));
    speak.button.setAttribute('aria-pressed', 'false');
    speak.button.hidden = !this.canSpeak();
    const full = this.toolButton('fullscreen', tools, () => void this.fullscreen());
    full.button.hidden = !(this.doc.fullscreenEnabled && typeof root.requestFullscreen === 'function');
    const close = this.toolButton('close', tools, () => {
      this.close();
      if (this.onClose) {
        try {
          this.onClose();
        } catch (err) {
          console.error('patient-view: onClose threw', err);
        }
      }
    });

    const main = this.el('div', 'pv-main', shell);
    const stage = this.el('div', 'pv-stage', main);
    const frame = this.el('div', 'pv-frame', stage);
    const video = this.el('video', 'pv-video', frame);
    video.muted = true;
    video.playsInline = true;
    video.autoplay = true;
    video.disablePictureInPicture = true;
    video.setAttribute('aria-hidden', 'true');
    const setRatio = () => {
      if (video.videoWidth && video.videoHeight)
        frame.style.setProperty('--pv-ratio', String(video.videoWidth / video.videoHeight));
    };
    video.addEventListener('loadedmetadata', setRatio);
    video.addEventListener('resize', setRatio);
    this.el('div', 'pv-oval', frame).setAttribute('aria-hidden', 'true');
    const box = this.el('div', 'pv-box', frame);
    box.hidden = true;
    box.setAttribute('aria-hidden', 'true');

    const panel = this.el('div', 'pv-panel', main);
    const arrow = this.el('p', 'pv-arrow', panel);
    arrow.hidden = true;
    arrow.setAttribute('aria-hidden', 'true');
    const instruction = this.el('p', 'pv-instruction', panel);
    instruction.setAttribute('aria-live', 'polite');
    const verdict = this.el('p', 'pv-verdict', panel);
    verdict.hidden = true;
    verdict.setAttribute('aria-live', 'assertive');
    const countdown = this.el('div', 'pv-countdown', panel);
    countdown.hidden = true;
    const count = this.el('span', 'pv-count', countdown);
    count.setAttribute('aria-hidden', 'true');
    const countSide = this.el('span', 'pv-count-side', countdown);
    const countText = this.el('span', 'pv-count-text', countSide);
    const countBar = this.el('span', 'pv-count-bar', countSide);
    const countFill = this.el('span', 'pv-count-fill', countBar);
    const progress = this.el('div', 'pv-progress', panel);
    progress.setAttribute('role', 'progressbar');
    progress.setAttribute('aria-valuemin', '0');
    progress.setAttribute('aria-valuemax', '100');
    const progressFill = this.el('span', 'pv-progress-fill', progress);

    this.root = root;
    this.ui = {
      title,
      langs,
      langButtons,
      speak: speak.button,
      speakLabel: speak.label,
      full: full.button,
      fullLabel: full.label,
      close: close.button,
      closeLabel: close.label,
      frame,
      video,
      box,
      panel,
      arrow,
      instruction,
      countdown,
      count,
      countText,
      countFill,
      progress,
      progressFill,
      verdict,
    };
    this.container.append(root);
  }

  // -------------------------------------------------------------------------------------------------------------
  // State
  // -------------------------------------------------------------------------------------------------------------

  attach(stream) {
    const v = this.ui.video;
    if (this.stream && v.srcObject === this.stream) v.srcObject = null;
    this.stream = stream || null;
    this.ui.frame.style.removeProperty('--pv-ratio');
    if (!this.stream) return;
    v.srcObject = this.stream;
    const playing = v.play();
    if (playing && typeof playing.catch === 'function') playing.catch(() => undefined);
  }

  instruct(code, message, windowMs) {
    const changed = !this.instruction || this.instruction.code !== code;
    if (changed || message)
      this.instruction = { code, message: message || (changed ? null : this.instruction.message) };
    this.updateWindow(code, windowMs);
    if (this.isOpen && this.root.dataset.state !== 'open') this.root.dataset.state = 'open';
    this.renderInstruction();
    this.renderCountdown();
    if (changed) this.speak(this.instructionText());
  }

  updateWindow(code, windowMs) {
    const now = this.now();
    if (typeof windowMs === 'number' && Number.isFinite(windowMs) && windowMs >= 0) {
      const fresh = !this.window || (CHALLENGE_CODES.has(code) && code !== this.window.code);
      if (fresh)
        this.window = {
          code: CHALLENGE_CODES.has(code) ? code : null,
          deadline: now + windowMs,
          total: Math.max(1, windowMs),
        };
      else {
        this.window.deadline = now + windowMs;
        this.window.total = Math.max(this.window.total, windowMs);
        if (CHALLENGE_CODES.has(code)) this.window.code = code;
      }
      this.shownSeconds = null;
    } else if (this.window && !FIX_CODES.has(code) && !BAD_CODES.has(code) && code !== this.window.code) {
      this.window = null;
    }
  }

  setProgress(p) {
    const v = typeof p === 'number' && Number.isFinite(p) ? Math.min(1, Math.max(0, p)) : 0;
    this.ui.progressFill.style.transform = `scaleX(${v})`;
    this.ui.progress.setAttribute('aria-valuenow', String(Math.round(v * 100)));
    this.ui.progress.dataset.value = String(v);
  }

  /** The face box: `box` in fractions of the frame, not mirrored; shown mirrored like the preview. */
  setBox(box, code) {
    const el = this.ui.box;
    const quality = code ? qualityOf(code) : null;
    if (quality) this.root.dataset.quality = quality;
    else delete this.root.dataset.quality;
    const b = checkBox(box);
    if (!b) {
      el.hidden = true;
      return;
    }
    const left = 1 - b.x - b.width;
    el.style.left = `${(left * 100).toFixed(3)}%`;
    el.style.top = `${(b.y * 100).toFixed(3)}%`;
    el.style.width = `${(b.width * 100).toFixed(3)}%`;
    el.style.height = `${(b.height * 100).toFixed(3)}%`;
    el.classList.remove('pv-q-ok', 'pv-q-fix', 'pv-q-bad');
    if (quality) el.classList.add(`pv-q-${quality}`);
    el.dataset.quality = quality || '';
    el.hidden = false;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Texts
  // -------------------------------------------------------------------------------------------------------------

  /** `t(key)` in the patient's language; `fallback` (else the key) when t has nothing for it. */
  text(key, vars = {}, fallback = null) {
    let s;
    try {
      s = this.t ? this.t(key, vars, this.lang) : undefined;
    } catch {
      s = undefined;
    }
    if (typeof s !== 'string' || !s || s === key) s = fallback || key;
    return s.replace(/\{(\w+)\}/g, (m, name) =>
      Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : m,
    );
  }

  instructionText() {
    const i = this.instruction;
    return i ? this.text(`guidance.${i.code}`, {}, i.message) : this.text('patient_view.starting');
  }

  verdictText() {
    const o = this.outcome;
    return o ? this.text(`patient_view.verdict.${o.result}`, {}, o.text) : '';
  }

  renderAll() {
    this.renderTexts();
    this.renderInstruction();
    this.renderCountdown();
  }

  /** The view's own words and the language buttons. */
  renderTexts() {
    const ui = this.ui;
    this.root.lang = this.lang;
    this.root.dataset.lang = this.lang;
    ui.title.textContent = this.text('patient_view.title');
    ui.langs.setAttribute('aria-label', this.text('patient_view.language'));
    for (const [lang, b] of ui.langButtons) b.setAttribute('aria-pressed', String(lang === this.lang));
    const speakLabel = this.text(this.speechOn ? 'patient_view.speak_on' : 'patient_view.speak_off');
    ui.speakLabel.textContent = speakLabel;
    ui.speak.title = speakLabel;
    ui.closeLabel.textContent = this.text('patient_view.close');
    ui.close.title = ui.closeLabel.textContent;
    ui.progress.setAttribute('aria-label', this.text('patient_view.progress'));
    this.renderFullscreen();
  }

  renderFullscreen() {
    const on = this.doc.fullscreenElement === this.root;
    this.root.dataset.fullscreen = String(on);
    this.ui.fullLabel.textContent = this.text(on ? 'patient_view.fullscreen_exit' : 'patient_view.fullscreen');
    this.ui.full.title = this.ui.fullLabel.textContent;
    this.ui.full.setAttribute('aria-pressed', String(on));
  }

  renderInstruction() {
    const ui = this.ui;
    if (this.outcome) {
      ui.instruction.hidden = true;
      ui.arrow.hidden = true;
      ui.verdict.hidden = false;
      ui.verdict.dataset.result = this.outcome.result;
      ui.verdict.dataset.tone = toneOf(this.outcome.result);
      ui.verdict.textContent = this.verdictText();
    } else {
      const code = this.instruction ? this.instruction.code : '';
      ui.verdict.hidden = true;
      ui.instruction.hidden = false;
      ui.instruction.dataset.code = code;
      ui.instruction.dataset.quality = (code && qualityOf(code)) || '';
      ui.instruction.textContent = this.instructionText();
      const arrow = TURN_ARROWS[code];
      ui.arrow.hidden = !arrow;
      ui.arrow.textContent = arrow || '';
      ui.arrow.dataset.direction = arrow ? code.slice('turn_'.length) : '';
    }
    this.fitTexts();
  }

  /** The countdown, from `now()`; keeps itself animated while a window runs. */
  renderCountdown() {
    const ui = this.ui;
    const w = this.window;
    const left = w ? w.deadline - this.now() : 0;
    if (!w || left <= 0 || this.outcome || !this.isOpen) {
      if (w && left <= 0) this.window = null;
      ui.countdown.hidden = true;
      delete ui.countdown.dataset.seconds;
      this.shownSeconds = null;
      this.stopFrames();
      return;
    }
    const seconds = Math.ceil(left / 1000);
    if (seconds !== this.shownSeconds || ui.countdown.hidden) {
      this.shownSeconds = seconds;
      ui.count.textContent = String(seconds);
      ui.countdown.dataset.seconds = String(seconds);
      ui.countText.textContent = this.text('patient_view.countdown', { seconds });
    }
    ui.countdown.hidden = false;
    ui.countFill.style.transform = `scaleX(${Math.min(1, left / w.total).toFixed(4)})`;
    if (!this.frameRequest) {
      this.frameRequest = this.win.requestAnimationFrame(() => {
        this.frameRequest = 0;
        this.renderCountdown();
      });
    }
  }

  stopFrames() {
    if (this.frameRequest) this.win.cancelAnimationFrame(this.frameRequest);
    this.frameRequest = 0;
  }

  /** Shrinks the instruction or the verdict until it fits its space (the CSS size is the largest). */
  fitTexts() {
    if (!this.isOpen) return;
    for (const el of [this.ui.instruction, this.ui.verdict]) {
      if (el.hidden) continue;
      el.style.removeProperty('font-size');
      let size = parseFloat(this.win.getComputedStyle(el).fontSize) || 0;
      for (let i = 0; i < 24 && size > MIN_TEXT_PX && overflows(el); i++) {
        size = Math.max(MIN_TEXT_PX, Math.floor(size * 0.92));
        el.style.fontSize = `${size}px`;
      }
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Speech
  // -------------------------------------------------------------------------------------------------------------

  canSpeak() {
    const synth = this.win.speechSynthesis;
    return Boolean(
      synth && typeof synth.speak === 'function' && typeof this.win.SpeechSynthesisUtterance === 'function',
    );
  }

  speak(text) {
    if (!this.speechOn || !text || !this.canSpeak()) return;
    const now = this.now();
    const key = `${this.lang}\u0000${text}`;
    if (this.lastSpoken && this.lastSpoken.key === key && now - this.lastSpoken.at < SPEAK_AGAIN_MS) return;
    try {
      const synth = this.win.speechSynthesis;
      const voices = typeof synth.getVoices === 'function' ? synth.getVoices() || [] : [];
      const voice = pickVoice(voices, this.lang);
      if (voices.length && !voice) return; // no voice speaks this language: the text is on the screen
      this.silence();
      const u = new this.win.SpeechSynthesisUtterance(text);
      u.lang = SPEECH_TAGS[this.lang] || this.lang;
      if (voice) u.voice = voice;
      u.rate = 0.95;
      const done = () => {
        if (this.utterance === u) this.utterance = null;
      };
      u.onend = done;
      u.onerror = done;
      this.utterance = u;
      this.lastSpoken = { key, at: now };
      synth.speak(u);
    } catch (err) {
      this.utterance = null;
      console.warn('patient-view: speech failed', err);
    }
  }

  /** Stops this view's utterance (only while one of ours may be speaking: the page's own speech is left alone). */
  silence() {
    if (!this.utterance) return;
    this.utterance = null;
    try {
      this.win.speechSynthesis.cancel();
    } catch {
      // nothing to stop
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Light challenge
  // -------------------------------------------------------------------------------------------------------------

  /**
   * The light challenge's surface (identify()'s `showLight`): the client's showLightOverlay, painted in this view
   * while it is open (so it shows in full screen too), on the page otherwise. Resolves with colours.length + 1 epoch
   * times; `signal` aborts (the layer goes, the promise rejects with an AbortError), and so do close(), open() and a
   * newer light.
   */
  paintLight(colours, { signal } = {}) {
    this.stopLight();
    const own = new AbortController();
    const onAbort = () => own.abort();
    if (signal && signal.aborted) own.abort();
    else if (signal) signal.addEventListener('abort', onAbort, { once: true });
    const stop = () => own.abort();
    this.stopLightNow = stop;
    const parent = this.isOpen ? this.root : null;
    return showLightOverlay(colours, { document: this.doc, parent, signal: own.signal }).finally(() => {
      if (signal) signal.removeEventListener('abort', onAbort);
      if (this.stopLightNow === stop) this.stopLightNow = null;
    });
  }

  stopLight() {
    if (this.stopLightNow) this.stopLightNow();
    this.stopLightNow = null;
  }
}

function qualityOf(code) {
  if (OK_CODES.has(code)) return 'ok';
  if (FIX_CODES.has(code)) return 'fix';
  if (BAD_CODES.has(code)) return 'bad';
  return null;
}

function toneOf(result) {
  if (result === 'match') return 'ok';
  if (result === 'cancelled' || result === 'expired' || result === 'timeout') return 'neutral';
  return 'bad';
}

/** A face box as fractions of the frame, clamped into it; null when absent or malformed. */
function checkBox(box) {
  if (!box || typeof box !== 'object') return null;
  const n = (v) => typeof v === 'number' && Number.isFinite(v);
  if (![box.x, box.y, box.width, box.height].every(n)) return null;
  const x = Math.min(1, Math.max(0, box.x));
  const y = Math.min(1, Math.max(0, box.y));
  const width = Math.min(1 - x, Math.max(0, box.width));
  const height = Math.min(1 - y, Math.max(0, box.height));
  return width > 0 && height > 0 ? { x, y, width, height } : null;
}

/** A voice for a language ('kk' matches kk-KZ): the local one first. */
function pickVoice(voices, lang) {
  const base = String(lang).toLowerCase().split(/[-_]/)[0];
  const fits = voices.filter((v) => v && typeof v.lang === 'string' && v.lang.toLowerCase().split(/[-_]/)[0] === base);
  return fits.find((v) => v.localService) || fits[0] || null;
}

function overflows(el) {
  return el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1;
}
