// The desk demo page (served at /): a workstation key, a patient, enrollment, identification with live guidance,
// the code path (refusal, remote appointments, the six-digit code) and the MIS events feed. Plain ES module, no
// build step, no inline script (the page's CSP forbids it).
//
// Languages: every text a person reads comes from the dictionaries (client/locales/<lang>.json, through
// ./i18n.js): Kazakh, Russian and English. The page starts in the language remembered in localStorage, else the
// browser's preference, and switching re-renders it in place: each text on screen is kept as a small function of
// the language (`put`), so nothing needs to be typed again.
import {
  attachVideo,
  captureStill,
  errorCode,
  identify,
  openCamera,
  releaseCamera,
  showLightOverlay,
} from '/client/faceid-client.js';
import { LANGUAGES, clientTexts, has, loadLanguage, preferredLanguage, rememberLanguage, t } from '/demo/i18n.js';
import { PatientScreen } from '/demo/patient-screen.js';

const ROUTES = {
  sessions: '/sessions',
  session: (sessionId) => `/sessions/${encodeURIComponent(sessionId)}`,
  refusal: (sessionId) => `/sessions/${encodeURIComponent(sessionId)}/refusal`,
  code: (sessionId) => `/sessions/${encodeURIComponent(sessionId)}/code`,
  resend: (sessionId) => `/sessions/${encodeURIComponent(sessionId)}/code/resend`,
  template: (iin) => `/patients/${encodeURIComponent(iin)}/template`,
  /** A new reference photo of a patient who had one: confirmed with the code the patient received. */
  templateConfirm: (iin) => `/patients/${encodeURIComponent(iin)}/template/confirm`,
  /** Only with SMS_ADAPTER=dev: the codes the gateway would have sent by SMS. */
  outbox: '/dev/outbox',
  eventsWs: '/ws/events',
};
/** The events feed's subprotocol; the key travels as a second one (`key.<key>`), never in the URL. */
const EVENTS_SUBPROTOCOL = 'faceid.events.v1';
/**
 * Why an in-person visit goes to the six-digit code (POST /sessions `method: 'code'`, or a refusal on the session
 * the patient was asked for).
 */
const CODE_REASONS = Object.freeze({
  refused: 'patient_refused_photo',
  faceFailed: 'face_failed',
  camera: 'camera_unavailable',
});
const KEY_STORAGE = 'faceid.demo.apiKey';
const OUTBOX_POLL_MS = 1500;
/** Events kept on screen, and event ids remembered to drop repeats (delivery is at least once). */
const EVENTS_SHOWN = 50;
const EVENT_IDS_KEPT = 500;
/** Refusals after which the events feed does not reconnect: the key (4001; 4003 revoked or expired) or the request (4400). */
const EVENTS_FINAL_CLOSES = new Set([4001, 4003, 4400]);
/** The resume cursor is not known to the gateway: start again live. */
const EVENTS_CURSOR_UNKNOWN = 4404;
/** Errors of the client module that mean the camera, not the patient: the code path is the way on. */
const CAMERA_ERRORS = new Set(['camera_denied', 'camera_not_found', 'camera_busy', 'camera_unavailable']);
/** Errors that the receptionist fixes in the form (the code path would fail the same way). */
const INPUT_ERRORS = new Set(['no_key', 'iin_invalid', 'invalid_request', 'unauthorized']);

const $ = (id) => document.getElementById(id);
const ui = {
  languages: $('languages'),
  keyForm: $('key-form'),
  apiKey: $('api-key'),
  forgetKey: $('forget-key'),
  keyStatus: $('key-status'),
  keyHint: $('key-hint'),
  patientForm: $('patient-form'),
  patientStatus: $('patient-status'),
  iin: $('iin'),
  appointment: $('appointment'),
  channel: $('channel'),
  enrollForm: $('enroll-form'),
  enrollFile: $('enroll-file'),
  enrollCamera: $('enroll-camera'),
  enrollCapture: $('enroll-capture'),
  enrollCameraOff: $('enroll-camera-off'),
  enrollPreview: $('enroll-preview'),
  enrollStatus: $('enroll-status'),
  enrollConfirmForm: $('enroll-confirm-form'),
  enrollCode: $('enroll-code'),
  enrollConfirmCancel: $('enroll-confirm-cancel'),
  start: $('start'),
  cancel: $('cancel'),
  refuse: $('refuse'),
  byCode: $('by-code'),
  showPatient: $('show-patient'),
  stage: $('stage'),
  preview: $('preview'),
  guidance: $('guidance'),
  turnHint: $('turn-hint'),
  progress: $('progress'),
  verdict: $('verdict'),
  nextStep: $('next-step'),
  sessionInfo: $('session-info'),
  codePanel: $('code-panel'),
  codeStatus: $('code-status'),
  codeForm: $('code-form'),
  codeInput: $('code-input'),
  codeSubmit: $('code-submit'),
  codeResend: $('code-resend'),
  outbox: $('outbox'),
  outboxStatus: $('outbox-status'),
  eventsStatus: $('events-status'),
  events: $('events'),
};

/** The identification in progress, if any. */
let run = null;
/** The last session started from this page: {id, iin, appointmentId, finished}. A refusal goes to it if unfinished. */
let lastSession = null;
/**
 * The session waiting for its six-digit code: {id, expiresAt (ms), key, vars, tone, channel, reason} (`key` and
 * `vars`: the status line above the field).
 */
let pendingCode = null;
let enrollStream = null;
/** A new reference photo waiting for the patient's code: {iin, expiresAt (ms)}. */
let pendingEnrollment = null;
let outboxTimer = null;
let codeTimer = null;
/** True while the page moves to the code path: the cancelled run must not show "Cancelled" over the code step. */
let toCode = false;
/** The last guidance code the server gave in this run (a timeout's next step depends on it). */
let lastGuidance = '';

// ---------------------------------------------------------------------------------------------------------------
// Languages: texts on screen as functions of the language, re-rendered in place on a switch
// ---------------------------------------------------------------------------------------------------------------

let lang = preferredLanguage();
/** The text of `key` in the page's language. */
const tr = (key, vars) => t(lang, key, vars);

/** Elements showing a text that depends on the language, and how to render it. */
const live = new Map();

/** Shows `render()` (a string, or an array of strings and nodes) in `el`, and again after a language switch. */
function put(el, render) {
  live.set(el, render);
  paint(el, render);
}

function paint(el, render) {
  const out = render();
  if (Array.isArray(out)) el.replaceChildren(...out.filter((x) => x !== null && x !== ''));
  else el.textContent = out;
}

/** Empties an element that showed a text. */
function blank(el) {
  live.delete(el);
  el.replaceChildren();
}

/** The static texts of the page (index.html's `data-i18n` and `data-i18n-attr`), then every live text. */
function renderPage() {
  document.documentElement.lang = lang;
  document.title = tr('page.title');
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = tr(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':').map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, tr(key));
    }
  }
  for (const button of ui.languages.querySelectorAll('button')) {
    button.setAttribute('aria-pressed', String(button.dataset.lang === lang));
  }
  showKeyPlaceholder();
  for (const [el, render] of live) {
    if (el.isConnected) paint(el, render);
    else live.delete(el);
  }
}

async function switchLanguage(code) {
  if (code === lang) return;
  await loadLanguage(code);
  lang = code;
  rememberLanguage(code);
  renderPage();
  callView('language', lang, tr); // the patient view follows the desk
}

/** The switch: one button per language, each labelled in its own language. */
function buildLanguageSwitch() {
  ui.languages.replaceChildren(
    ...LANGUAGES.map(({ code, name }) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'lang';
      b.dataset.lang = code;
      b.lang = code;
      b.textContent = name;
      b.addEventListener('click', () => void switchLanguage(code));
      return b;
    }),
  );
}

function codeEl(text, className = '') {
  const el = document.createElement('code');
  if (className) el.className = className;
  el.textContent = text;
  return el;
}

/**
 * A text with `{name}` placeholders filled by DOM nodes (e.g. a <code> element) or strings: the translation keeps
 * the placeholder where its language puts it.
 */
function withNodes(text, nodes) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(/\{([a-zA-Z0-9_]+)\}/g)) {
    if (!(m[1] in nodes)) continue;
    out.push(text.slice(last, m.index), nodes[m[1]]);
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP, status lines and errors
// ---------------------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message);
    this.status = status;
    this.code = code;
    /** The error object of the answer ({code, message, ...}), e.g. `attemptsLeft` of `code_invalid`. */
    this.body = body;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || '';
}

/** A JSON API call with the workstation key. `body`: an object (sent as JSON) or a Blob (sent as image/jpeg). */
async function api(method, url, body) {
  const key = apiKey();
  if (!key) throw new ApiError(0, 'no_key', 'No workstation API key.');
  const headers = { authorization: `Bearer ${key}` };
  let payload;
  if (body instanceof Blob) {
    headers['content-type'] = 'image/jpeg';
    payload = body; // the photo goes as binary, never as a string
  } else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, { method, headers, body: payload, cache: 'no-store', credentials: 'omit' });
  } catch (err) {
    throw new ApiError(0, 'network', `The gateway cannot be reached (${err.message}).`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const e = data && typeof data.error === 'object' && data.error ? data.error : {};
    throw new ApiError(res.status, e.code || `http_${res.status}`, e.message || res.statusText, { ...data, ...e });
  }
  return data;
}

/** A status line: `render` as for put(), `tone` ok, bad or na. */
function status(el, render, tone = '') {
  el.className = `status${tone ? ` ${tone}` : ''}`;
  put(el, render);
}

function say(el, key, vars = {}, tone = '') {
  status(el, () => tr(key, vars), tone);
}

/** The stable code of an error (an ApiError, a FaceIdError of the client module, or anything else). */
function codeOf(err) {
  return errorCode(err, 'unknown');
}

/**
 * What an error means to the receptionist, and what to do: the dictionary's `error.<code>`, or the nearest
 * general text. The gateway's own message is for developers and is never shown.
 */
function errorKey(err) {
  const code = codeOf(err);
  if (has(`error.${code}`)) return `error.${code}`;
  if (code.startsWith('frame_')) return 'error.frame';
  if (code.startsWith('protocol_')) return 'error.protocol_error';
  const s = err && err.status;
  if (s === 401) return 'error.unauthorized';
  if (s === 403) return 'error.forbidden';
  if (s === 429) return 'error.rate_limited';
  if (s === 503) return 'error.unavailable';
  if (s >= 500) return 'error.internal';
  return 'error.unknown';
}

/** The error's code, small, for support (not a sentence for the receptionist). */
function supportCode(err) {
  return codeEl(codeOf(err), 'support-code');
}

/** "What failed. What to do." and the code small: `leadKey` names what failed. */
function errorNodes(leadKey, err, vars = {}) {
  const lead = leadKey ? `${tr(leadKey, vars)} ` : '';
  return [`${lead}${tr(errorKey(err))} `, supportCode(err)];
}

function sayError(el, leadKey, err, vars = {}) {
  status(el, () => errorNodes(leadKey, err, vars), 'bad');
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Workstation key
// ---------------------------------------------------------------------------------------------------------------

async function checkKey() {
  if (!apiKey()) {
    say(ui.keyStatus, 'key.none');
    return false;
  }
  try {
    // Any authenticated read will do: an unknown session answers 404 with a valid key and 401 without one.
    await api('GET', '/sessions/00000000-0000-4000-8000-000000000000');
  } catch (err) {
    if (err.code === 'session_not_found') {
      say(ui.keyStatus, 'key.accepted', {}, 'ok');
      ui.keyHint.hidden = true; // room for the rest of the page
      return true;
    }
    if (err.status === 401) sessionStorage.removeItem(KEY_STORAGE); // a refused key is not kept
    sayError(ui.keyStatus, null, err);
    return false;
  }
  return true;
}

ui.keyForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const key = ui.apiKey.value.trim();
  if (!key) return;
  events.stop(); // another key may be another clinic: its feed starts afresh
  sessionStorage.setItem(KEY_STORAGE, key);
  ui.apiKey.value = '';
  showKeyPlaceholder();
  if (await checkKey()) {
    events.start(key);
    void pollOutbox();
  }
});

ui.forgetKey.addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORAGE);
  ui.apiKey.value = '';
  showKeyPlaceholder();
  events.stop();
  ui.keyHint.hidden = false;
  say(ui.keyStatus, 'key.forgotten');
});

/** The key field's placeholder: says a key is set (the key itself is never shown again). */
function showKeyPlaceholder() {
  ui.apiKey.placeholder = apiKey() ? tr('key.placeholder_set') : 'fid_ws_...';
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Patient
// ---------------------------------------------------------------------------------------------------------------

function newAppointmentId() {
  return `apt-${Date.now().toString(36)}`;
}

/** The patient fields, checked; null (with a message in `statusEl`) when something is missing. */
function patient(statusEl) {
  const iin = ui.iin.value.trim();
  const appointmentId = ui.appointment.value.trim();
  const channel = ui.channel.value === 'remote' ? 'remote' : 'in_person';
  if (!/^\d{12}$/.test(iin)) {
    say(statusEl, 'patient.iin_invalid', {}, 'bad');
    ui.iin.focus();
    return null;
  }
  if (!/^[\w.:-]{1,64}$/.test(appointmentId)) {
    say(statusEl, 'patient.appointment_invalid', {}, 'bad');
    ui.appointment.focus();
    return null;
  }
  blank(ui.patientStatus);
  return { iin, appointmentId, channel };
}

/** A remote appointment has no camera step: the start button sends the code instead. */
function showChannel() {
  const remote = ui.channel.value === 'remote';
  put(ui.start, () => tr(remote ? 'identify.send_code' : 'identify.start'));
  ui.refuse.hidden = remote;
  ui.preview.hidden = remote;
  ui.stage.classList.toggle('no-camera', remote);
  if (remote) withdrawCodeOffer();
  if (!run && !pendingCode) showGuidance({ key: remote ? 'identify.remote_hint' : 'identify.press_start' });
}

ui.appointment.value = newAppointmentId();
ui.channel.addEventListener('change', showChannel);

// Enter in a patient field: the IIN moves on to the start (the appointment is prefilled); the form never reloads
// the page.
ui.patientForm.addEventListener('submit', (ev) => ev.preventDefault());
for (const field of [ui.iin, ui.appointment]) {
  field.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter' || ev.isComposing) return;
    ev.preventDefault();
    if (field === ui.iin && !ui.appointment.value.trim()) {
      ui.appointment.focus();
      return;
    }
    void startIdentification();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Enrollment
// ---------------------------------------------------------------------------------------------------------------

/** `how`: the key of how the photo was taken (enroll.how_file, enroll.how_webcam). */
async function enroll(photo, how) {
  const p = patient(ui.enrollStatus);
  if (!p) return;
  endEnrollConfirm();
  status(ui.enrollStatus, () => tr('enroll.running', { how: tr(how) }));
  try {
    const r = await api('POST', ROUTES.template(p.iin), photo);
    if (r && r.confirmation === 'code_sent') {
      // The patient has (or had) a reference photo: a desk replaces it only with the patient's consent.
      pendingEnrollment = { iin: r.patientIin, expiresAt: Date.parse(r.codeExpiresAt) };
      ui.enrollConfirmForm.hidden = false;
      ui.enrollCode.value = '';
      ui.enrollCode.focus();
      say(ui.enrollStatus, 'enroll.code_sent', { iin: r.patientIin, time: timeOf(r.codeExpiresAt) });
      void pollOutbox(pendingEnrollment.expiresAt);
      return;
    }
    const vars = { iin: r.patientIin, template: r.templateId.slice(0, 8) };
    status(
      ui.enrollStatus,
      () => tr(r.replaced ? 'enroll.done_replaced' : 'enroll.done', { ...vars, how: tr(how) }),
      'ok',
    );
  } catch (err) {
    sayError(ui.enrollStatus, 'enroll.failed', err);
  }
}

function endEnrollConfirm() {
  pendingEnrollment = null;
  ui.enrollConfirmForm.hidden = true;
  ui.enrollCode.value = '';
}

ui.enrollConfirmForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!pendingEnrollment) return;
  const code = ui.enrollCode.value.trim();
  if (!/^\d{6}$/.test(code)) {
    say(ui.enrollStatus, 'enroll.code_format', {}, 'bad');
    return;
  }
  const { iin } = pendingEnrollment;
  try {
    const r = await api('POST', ROUTES.templateConfirm(iin), { code });
    endEnrollConfirm();
    say(ui.enrollStatus, 'enroll.confirmed', { iin: r.patientIin, template: r.templateId.slice(0, 8) }, 'ok');
  } catch (err) {
    if (err.code === 'code_invalid') {
      ui.enrollCode.value = '';
      ui.enrollCode.focus();
      const left = err.body && Number.isInteger(err.body.attemptsLeft) ? err.body.attemptsLeft : null;
      say(ui.enrollStatus, left === null ? 'code.wrong_unknown' : 'code.wrong', { left }, 'bad');
      return;
    }
    endEnrollConfirm();
    sayError(ui.enrollStatus, 'enroll.not_replaced', err);
  }
});

ui.enrollConfirmCancel.addEventListener('click', () => {
  endEnrollConfirm();
  say(ui.enrollStatus, 'enroll.kept');
});

ui.enrollForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const file = ui.enrollFile.files && ui.enrollFile.files[0];
  if (!file) {
    say(ui.enrollStatus, 'enroll.choose_file', {}, 'bad');
    return;
  }
  await enroll(file, 'enroll.how_file');
  ui.enrollFile.value = ''; // drop the page's reference to the file
});

function closeEnrollCamera() {
  releaseCamera(enrollStream);
  enrollStream = null;
  ui.enrollPreview.srcObject = null;
  ui.enrollPreview.hidden = true;
  ui.enrollCapture.hidden = true;
  ui.enrollCameraOff.hidden = true;
  ui.enrollCamera.hidden = false;
}

ui.enrollCamera.addEventListener('click', async () => {
  try {
    enrollStream = await openCamera({ width: 640, height: 480 });
    ui.enrollPreview.hidden = false;
    await attachVideo(enrollStream, ui.enrollPreview);
    ui.enrollCamera.hidden = true;
    ui.enrollCapture.hidden = false;
    ui.enrollCameraOff.hidden = false;
    say(ui.enrollStatus, 'enroll.look');
  } catch (err) {
    closeEnrollCamera();
    sayError(ui.enrollStatus, 'enroll.camera_failed', err);
  }
});

ui.enrollCapture.addEventListener('click', async () => {
  let still;
  try {
    still = await captureStill(ui.enrollPreview, { maxWidth: 640, maxHeight: 480, quality: 0.92 });
  } catch (err) {
    sayError(ui.enrollStatus, 'enroll.camera_failed', err);
    return;
  } finally {
    closeEnrollCamera();
  }
  await enroll(still, 'enroll.how_webcam');
});

ui.enrollCameraOff.addEventListener('click', closeEnrollCamera);

// ---------------------------------------------------------------------------------------------------------------
// The patient-facing view: INTEGRATION POINT
// ---------------------------------------------------------------------------------------------------------------

/**
 * A full-screen view for the patient (client/demo/patient-view.js: oval, face box, countdown, large text, spoken
 * prompt, the light challenge) plugs in here; the desk page works without one. A view is an object with any of:
 *
 *   open({ stream, lang, t, identification })  the camera is on: `stream` is the MediaStream being identified,
 *                                              `t(key, vars)` translates in the page's language (i18n.js)
 *   guidance(g)                                onGuidance's argument: {code, progress, message, windowMs?, box?}
 *   challenge(c)                               the server's challenge message (kind light or turn)
 *   verdict(v, words)                          the verdict and its words ({message, reason}) in the page's language
 *   close({ state, code })                     the run ended (verdict, failure, cancel or refusal): `state` finished,
 *                                              failed or cancelled, `code` the failure's (e.g. no_template); also for
 *                                              a run that ended before its camera opened (no open() before it)
 *   showLight(colours, {challengeId, signal})  optional: show the light challenge on the patient's screen instead of
 *                                              the client's built-in overlay (see client/README.md)
 *   language(lang, t)                          optional: the desk switched language
 *
 * Wire one in with setPatientView(view) (exported), or null to remove it; a view wired in during an identification
 * is opened on it at once. The desk's own: the "Show to the patient" button (PatientScreen, ./patient-screen.js, on
 * patient-view.js).
 */
let patientView = null;

export function setPatientView(view) {
  patientView = view || null;
  if (!patientView) return;
  callView('language', lang, tr);
  if (run && run.stream && ['connecting', 'streaming', 'reconnecting'].includes(run.state)) {
    callView('open', { stream: run.stream, lang, t: tr, identification: run });
  }
}

/** Calls a method of the patient view, if there is one; its failure never breaks the desk. */
function callView(method, ...args) {
  const fn = patientView && patientView[method];
  if (typeof fn !== 'function') return undefined;
  try {
    return fn.apply(patientView, args);
  } catch (err) {
    console.error(`patient view: ${method} failed`, err);
    return undefined;
  }
}

/**
 * The patient view's hooks for one identification: merged into identify()'s options. The light's surface is chosen
 * when the light comes (a view may be wired in mid-run): the view's, else the client's own overlay.
 */
function patientViewHooks() {
  return {
    showLight: (colours, opts) =>
      patientView && typeof patientView.showLight === 'function'
        ? patientView.showLight(colours, opts)
        : showLightOverlay(colours, { signal: opts && opts.signal }),
  };
}

/** The desk's patient view, made at the first press of "Show to the patient". */
let patientScreen = null;

async function showPatientView() {
  try {
    if (!patientScreen) {
      patientScreen = new PatientScreen(document.body, { lang, onClose: () => ui.showPatient.focus() });
      setPatientView(patientScreen);
    }
    await patientScreen.show();
  } catch (err) {
    console.error('patient view: could not be shown', err);
  }
}

ui.showPatient.addEventListener('click', () => void showPatientView());

// ---------------------------------------------------------------------------------------------------------------
// 4. Identification
// ---------------------------------------------------------------------------------------------------------------

/**
 * The head-turn prompt, big, with an arrow. The patient turns to their own left or right; facing this screen, their
 * left is this screen's left, so the arrow points the way they turn.
 */
const TURN_ARROWS = { turn_left: '\u2190', turn_right: '\u2192' };

/**
 * The guidance line. `code`: the server's guidance code, or the page's own state (done, failed, reconnecting,
 * code_pending; '' for transient states). The text: `key` with `vars`, else the dictionary's `guidance.<code>`.
 */
function showGuidance({ code = '', key = null, vars = {} } = {}) {
  put(ui.guidance, () => tr(key || `guidance.${code}`, vars));
  ui.guidance.dataset.code = code;
  ui.guidance.classList.toggle('blink', code === 'blink_now' || code === 'blink_again');
  ui.guidance.classList.toggle('failed', code === 'failed');
  const arrow = TURN_ARROWS[code];
  ui.guidance.classList.toggle('turn', Boolean(arrow));
  ui.turnHint.hidden = !arrow;
  ui.turnHint.dataset.direction = arrow ? code.slice('turn_'.length) : '';
  ui.turnHint.textContent = arrow || '';
}

/** The progress bar; `state` done (full, green) or failed (where it stopped, red); '' while running. */
function setProgress(value, state = '') {
  ui.progress.value = value;
  if (state) ui.progress.dataset.state = state;
  else delete ui.progress.dataset.state;
}

/** Empties the verdict and the next step (the verdict element stays in the page: an empty live region). */
function clearVerdict() {
  blank(ui.verdict);
  for (const a of ['data-result', 'data-method', 'data-reason']) ui.verdict.removeAttribute(a);
  blank(ui.nextStep);
  withdrawCodeOffer();
}

/**
 * The verdict line, announced (aria-live) and focused. `render()`: its text; a failed liveness check also says why
 * (`reason`, as the server gave it in data-reason, and in words).
 */
function showVerdict(result, render, { reason = null, method = null } = {}) {
  ui.verdict.dataset.result = result;
  if (method) ui.verdict.dataset.method = method;
  else delete ui.verdict.dataset.method;
  if (reason) ui.verdict.dataset.reason = reason;
  else delete ui.verdict.dataset.reason;
  put(ui.verdict, () => {
    const text = render();
    const out = Array.isArray(text) ? [...text] : [text];
    if (reason) {
      const why = document.createElement('span');
      why.className = 'reason';
      why.textContent = has(`reason.${reason}`) ? tr(`reason.${reason}`) : reason;
      out.push(why);
    }
    return out;
  });
  ui.verdict.focus({ preventScroll: true });
}

function verdictWords(result) {
  return has(`verdict.${result}`) ? tr(`verdict.${result}`) : result;
}

/** The face verdict in words, with what the liveness checks saw and how long it took. */
function describeFaceVerdict(v) {
  const extra = [];
  if (v.liveness) {
    extra.push(tr(v.liveness.blink ? 'liveness.blinked' : 'liveness.no_blink'));
    // null: the challenge was not asked.
    if (typeof v.liveness.light === 'boolean') extra.push(tr(v.liveness.light ? 'liveness.lit' : 'liveness.not_lit'));
    if (typeof v.liveness.turn === 'boolean') extra.push(tr(v.liveness.turn ? 'liveness.turned' : 'liveness.no_turn'));
  }
  if (v.timings && typeof v.timings.firstFrameToVerdictMs === 'number') {
    extra.push(tr('liveness.seconds', { s: (v.timings.firstFrameToVerdictMs / 1000).toFixed(1) }));
  }
  const words = verdictWords(v.result);
  return extra.length ? `${words} (${extra.join(', ')})` : words;
}

/** The support line under the verdict: the session id (mono), and what was stored. */
function showSessionInfo(sessionId, key = 'identify.session', vars = {}) {
  ui.sessionInfo.className = 'status mono';
  if (sessionId) ui.sessionInfo.dataset.sessionId = sessionId;
  else delete ui.sessionInfo.dataset.sessionId;
  put(ui.sessionInfo, () => tr(key, { id: sessionId, ...vars }));
}

function setRunning(running) {
  ui.start.disabled = running;
  ui.cancel.disabled = !running;
}

function cameraState(state) {
  ui.preview.dataset.camera = state;
}

/**
 * An in-person face attempt failed: say what to do next and offer the code at once ("Identify by SMS code"), so
 * the desk is never stuck. `reason`: why the visit goes to the code (CODE_REASONS).
 */
function offerCode(nextKey, reason, vars = {}) {
  ui.nextStep.className = 'next-step';
  if (nextKey) put(ui.nextStep, () => tr(nextKey, vars));
  else blank(ui.nextStep);
  if (ui.channel.value === 'remote') return;
  ui.byCode.dataset.reason = reason;
  ui.byCode.hidden = false;
}

function withdrawCodeOffer() {
  ui.byCode.hidden = true;
  delete ui.byCode.dataset.reason;
}

/** The next step after a face verdict that is not a match. */
function nextStepFor(v) {
  if (v.result === 'timeout') {
    // A blank or distant view: say what the camera saw last.
    const seen = {
      no_face: 'next.timeout_no_face',
      too_far: 'next.timeout_too_far',
      too_dark: 'next.timeout_too_dark',
    };
    return seen[lastGuidance] || 'next.timeout';
  }
  if (v.result === 'error' && v.reason === 'client_unsupported') return 'next.client_unsupported';
  return has(`next.${v.result}`) ? `next.${v.result}` : 'next.error';
}

async function startIdentification() {
  if (run) return;
  const p = patient(ui.patientStatus);
  if (!p) return;
  if (!apiKey()) {
    say(ui.patientStatus, 'error.no_key', {}, 'bad');
    ui.apiKey.focus();
    return;
  }
  if (p.channel === 'remote') {
    await startRemote(p);
    return;
  }
  endCodeStep();
  setRunning(true);
  clearVerdict();
  setProgress(0);
  lastGuidance = '';
  showGuidance({ key: 'identify.checking' });
  blank(ui.sessionInfo);
  delete ui.sessionInfo.dataset.sessionId;
  let frames = 0;
  let viewOpen = false;
  const texts = clientTexts(lang);
  const current = identify({
    video: ui.preview,
    fps: 10,
    jpegQuality: 0.8,
    ...texts,
    ...patientViewHooks(),
    // Called first (before the camera opens: an invalid IIN, a patient out of face attempts or without a
    // reference photo never starts it) and again for each reconnect: tokens are single use.
    getSession: async () => {
      const s = await api('POST', ROUTES.sessions, {
        iin: p.iin,
        appointmentId: p.appointmentId,
        channel: 'in_person',
      });
      lastSession = { id: s.sessionId, iin: p.iin, appointmentId: p.appointmentId, finished: false };
      return s;
    },
    onState: (state, detail) => {
      if (state === 'camera') {
        cameraState('starting');
        showGuidance({ key: 'identify.starting' });
      }
      if (state === 'connecting') {
        cameraState('on');
        showGuidance({ key: detail.attempt ? 'identify.reconnected' : 'identify.connecting' });
        if (!viewOpen && current.stream) {
          viewOpen = true;
          callView('open', { stream: current.stream, lang, t: tr, identification: current });
        }
      }
      if (state === 'streaming') showSessionInfo(detail.sessionId);
      if (state === 'reconnecting') {
        const vars = { closeCode: detail.closeCode, attempt: detail.attempt };
        showGuidance({ code: 'reconnecting', key: 'identify.reconnecting', vars });
      }
      if (state === 'finished' || state === 'failed' || state === 'cancelled') {
        cameraState('off');
        callView('close', { state, code: detail.code || null });
        viewOpen = false;
      }
      ui.preview.dataset.state = state;
    },
    onFrame: () => {
      frames++;
    },
    onGuidance: (g) => {
      lastGuidance = g.code;
      showGuidance({ code: g.code });
      setProgress(g.progress);
      callView('guidance', g);
    },
    onChallenge: (c) => callView('challenge', c),
    onBusy: (ms) => showSessionInfo(current.sessionId, 'identify.busy', { ms }),
    onServerError: (e) => {
      if (e.code === 'session_refused') return; // the visit went on to the code (a refusal): not a frame problem
      // A refused frame: the session goes on; the code is for support.
      ui.sessionInfo.className = 'status mono bad';
      put(ui.sessionInfo, () => [`${tr('identify.frame_refused')} `, codeEl(codeOf(e), 'support-code')]);
    },
    onVerdict: (v, words) => {
      cameraState('off'); // the client released the camera
      markFinished(v.sessionId);
      callView('verdict', v, words);
      if (v.result === 'match') {
        setProgress(1, 'done');
        showGuidance({ code: 'done', key: 'identify.done' });
      } else {
        setProgress(ui.progress.value, 'failed');
        showGuidance({ code: 'failed', key: 'identify.not_identified' });
      }
      showVerdict(v.result, () => describeFaceVerdict(v), { reason: v.reason || null });
      if (v.result !== 'match') offerCode(nextStepFor(v), CODE_REASONS.faceFailed);
    },
  });
  run = current;
  let matched = false;
  try {
    const verdict = await current.done;
    if (verdict === null) {
      // Cancelled, or the visit moved to the code (the code path takes over the verdict area).
      if (!pendingCode && !toCode) {
        showVerdict('cancelled', () => tr('verdict.cancelled'));
        showGuidance({ key: 'identify.cancelled' });
        setProgress(ui.progress.value, 'failed');
      }
    } else {
      matched = verdict.result === 'match';
      showSessionInfo(verdict.sessionId, 'identify.frames_sent', { frames });
      // The stored verdict, as the MIS would read it.
      const stored = await api('GET', ROUTES.session(verdict.sessionId)).catch(() => null);
      if (stored && stored.verdict) {
        ui.verdict.dataset.method = stored.verdict.method;
        const { result, method } = stored.verdict;
        showSessionInfo(verdict.sessionId, 'identify.stored', { frames, result, method });
      }
    }
  } catch (err) {
    // A run the server closed because the visit went on to the code (session_refused, 4010) is no failure.
    if (!toCode && !pendingCode) failedRun(err);
  } finally {
    cameraState('off');
    if (run === current) run = null;
    setRunning(false);
    if (matched) ui.appointment.value = newAppointmentId();
  }
}

/** A run that ended without a verdict: what went wrong, what to do, and the code at once where it helps. */
function failedRun(err) {
  const code = codeOf(err);
  setProgress(ui.progress.value, 'failed');
  showGuidance({ code: 'failed', key: 'identify.not_identified' });
  showVerdict('failed', () => errorNodes('identify.failed', err));
  if (INPUT_ERRORS.has(code)) return;
  // The error's own text says what to do; the code path is one press away (the camera's failure is its reason).
  offerCode(null, CAMERA_ERRORS.has(code) ? CODE_REASONS.camera : CODE_REASONS.faceFailed);
}

/** A remote appointment: no camera at all; the session starts on the code path (POST /sessions answers code_pending). */
async function startRemote(p) {
  endCodeStep();
  setRunning(true);
  ui.cancel.disabled = true;
  clearVerdict();
  setProgress(0);
  blank(ui.sessionInfo);
  showGuidance({ key: 'code.sending' });
  try {
    const s = await api('POST', ROUTES.sessions, { iin: p.iin, appointmentId: p.appointmentId, channel: 'remote' });
    lastSession = { id: s.sessionId, iin: p.iin, appointmentId: p.appointmentId, finished: false };
    beginCodeStep({ id: s.sessionId, expiresAt: s.codeExpiresAt, channel: 'remote' }, 'code.sent_remote');
  } catch (err) {
    showGuidance({ code: 'failed', key: 'identify.not_identified' });
    setProgress(0, 'failed');
    showVerdict('failed', () => errorNodes('code.start_failed', err));
  } finally {
    setRunning(false);
  }
}

ui.start.addEventListener('click', () => void startIdentification());
ui.cancel.addEventListener('click', () => run && run.cancel());

// ---------------------------------------------------------------------------------------------------------------
// Code path: refusal, the code after a failed face attempt, the six-digit code, development SMS outbox
// ---------------------------------------------------------------------------------------------------------------

/**
 * An in-person visit goes to the six-digit code, for `reason` (CODE_REASONS). The camera goes off first. The
 * reason is recorded on the session the patient was asked for when it has no verdict yet (streaming, or never
 * streamed: POST /sessions/:id/refusal, which also ends its face session); otherwise a new session starts on the
 * code path (POST /sessions with method 'code').
 */
async function goToCode(reason, sentKey) {
  const p = patient(ui.codeStatus);
  if (!p) return;
  if (!apiKey()) {
    say(ui.codeStatus, 'error.no_key', {}, 'bad');
    return;
  }
  toCode = true;
  // The camera goes off at once; a streaming run keeps its connection until the refusal is recorded (closing it
  // first would end the session before the refusal reaches it).
  const streaming = run && (run.state === 'connecting' || run.state === 'streaming');
  if (streaming) run.stopCamera();
  else if (run) run.cancel();
  closeEnrollCamera();
  cameraState('off');
  endCodeStep();
  withdrawCodeOffer();
  ui.refuse.disabled = true;
  ui.byCode.disabled = true;
  say(ui.codeStatus, reason === CODE_REASONS.refused ? 'code.recording' : 'code.sending');
  try {
    let sessionId = lastSession && !lastSession.finished && lastSession.iin === p.iin ? lastSession.id : null;
    let answer = null;
    if (sessionId) {
      try {
        answer = await api('POST', ROUTES.refusal(sessionId), { reason });
      } catch (err) {
        if (err.status !== 404 && err.status !== 409) throw err;
        sessionId = null; // gone or finished meanwhile
      }
    }
    if (!sessionId) {
      answer = await api('POST', ROUTES.sessions, {
        iin: p.iin,
        appointmentId: p.appointmentId,
        channel: 'in_person',
        method: 'code',
        reason,
      });
      sessionId = answer.sessionId;
      lastSession = { id: sessionId, iin: p.iin, appointmentId: p.appointmentId, finished: false };
    }
    if (run) run.cancel(); // the server has closed it already, or does now
    const step = { id: answer.sessionId || sessionId, expiresAt: answer.codeExpiresAt, channel: 'in_person', reason };
    beginCodeStep(step, sentKey);
  } catch (err) {
    if (run) run.cancel();
    sayError(ui.codeStatus, 'code.start_failed', err);
    setProgress(0, 'failed');
    showGuidance({ code: 'failed', key: 'identify.not_identified' });
    showVerdict('failed', () => errorNodes('code.start_failed', err));
    if (reason !== CODE_REASONS.refused && !INPUT_ERRORS.has(codeOf(err))) offerCode('next.code_retry', reason);
  } finally {
    toCode = false;
    ui.refuse.disabled = false;
    ui.byCode.disabled = false;
  }
}

ui.refuse.addEventListener('click', () => void goToCode(CODE_REASONS.refused, 'code.sent_refusal'));
ui.byCode.addEventListener('click', () => {
  void goToCode(ui.byCode.dataset.reason || CODE_REASONS.faceFailed, 'code.sent_fallback');
});

/** The session now waits for its code: enable the code field, count down to the expiry, watch the dev outbox. */
function beginCodeStep(step, key) {
  endCodeStep();
  const expiresAt = Date.parse(step.expiresAt);
  pendingCode = {
    id: step.id,
    channel: step.channel,
    reason: step.reason || null,
    expiresAt: Number.isFinite(expiresAt) ? expiresAt : Date.now() + 300_000,
    key,
    vars: {},
    tone: 'ok',
  };
  ui.codePanel.dataset.sessionId = step.id;
  ui.codePanel.classList.add('active');
  ui.codeInput.disabled = false;
  ui.codeSubmit.disabled = false;
  ui.codeResend.disabled = false;
  ui.codeInput.value = '';
  clearVerdict();
  setProgress(0);
  showGuidance({ code: 'code_pending', key: 'code.waiting' });
  showSessionInfo(step.id, 'identify.session_code');
  showCodeCountdown();
  codeTimer = setInterval(showCodeCountdown, 1000);
  ui.codeInput.focus();
  void pollOutbox(pendingCode.expiresAt);
}

function showCodeCountdown() {
  const step = pendingCode;
  if (!step) return;
  // 2 s of grace for clock differences; the gateway has the last word either way.
  if (Math.round((step.expiresAt - Date.now()) / 1000) < -2) {
    codeExpired(step);
    return;
  }
  status(
    ui.codeStatus,
    () => {
      const s = Math.max(0, Math.round((step.expiresAt - Date.now()) / 1000));
      const time = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
      const text = `${tr(step.key, step.vars)} ${tr('code.valid_for', { time })}`;
      return step.err ? [`${text} `, supportCode(step.err)] : [text];
    },
    step.tone,
  );
}

/** The status line of the code step (kept with the countdown); `err`: its code is shown small, for support. */
function codeMessage(step, key, vars = {}, tone = 'ok', err = null) {
  step.key = key;
  step.vars = vars;
  step.tone = tone;
  step.err = err;
  showCodeCountdown();
}

/** The code step failed for good (expired, locked out, no code any more): a failure state, and what to do next. */
function codeFailed(step, { result, statusKey, nextKey }) {
  markFinished(step.id);
  endCodeStep();
  say(ui.codeStatus, statusKey, {}, 'bad');
  setProgress(0, 'failed');
  showGuidance({ code: 'failed', key: 'identify.not_identified' });
  if (result) showVerdict(result, () => verdictWords(result));
  if (step.channel === 'remote') {
    ui.nextStep.className = 'next-step';
    put(ui.nextStep, () => tr('next.code_remote_again'));
  } else {
    // A new code for the same visit is one press away.
    offerCode(nextKey, step.reason || CODE_REASONS.faceFailed);
  }
}

function codeExpired(step) {
  codeFailed(step, { result: 'expired', statusKey: 'code.expired', nextKey: 'next.code_expired' });
}

/** A session that takes no refusal or code any more: the next refusal opens a new one. */
function markFinished(sessionId) {
  if (lastSession && lastSession.id === sessionId) lastSession.finished = true;
}

/** Leaves the code step (done, expired, or another run started). */
function endCodeStep() {
  clearInterval(codeTimer);
  codeTimer = null;
  pendingCode = null;
  ui.codePanel.classList.remove('active');
  delete ui.codePanel.dataset.sessionId;
  ui.codeInput.disabled = true;
  ui.codeSubmit.disabled = true;
  ui.codeResend.disabled = true;
  ui.codeInput.value = '';
}

/** The code step is over with a verdict: show it like a face verdict, with its method. */
function codeVerdict(sessionId, verdict) {
  endCodeStep();
  markFinished(sessionId);
  const result = verdict.result;
  const ok = result === 'match';
  setProgress(ok ? 1 : 0, ok ? 'done' : 'failed');
  showGuidance(ok ? { code: 'done', key: 'identify.done' } : { code: 'failed', key: 'identify.not_identified' });
  showVerdict(
    result,
    () => `${verdictWords(result)} ${tr('identify.by_method', { method: methodWords(verdict.method) })}`,
    {
      method: verdict.method,
    },
  );
  showSessionInfo(sessionId, 'identify.stored_code', { result, method: verdict.method });
  say(ui.codeStatus, ok ? 'code.checked_match' : 'code.checked_other', {}, ok ? 'ok' : 'bad');
  ui.appointment.value = newAppointmentId();
  void pollOutbox();
}

function methodWords(method) {
  return has(`method.${method}`) ? tr(`method.${method}`) : method;
}

ui.codeForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const step = pendingCode;
  if (!step) return;
  const code = ui.codeInput.value.trim();
  if (!/^\d{6}$/.test(code)) {
    codeMessage(step, 'code.format', {}, 'bad');
    ui.codeInput.focus();
    return;
  }
  ui.codeSubmit.disabled = true;
  try {
    const r = await api('POST', ROUTES.code(step.id), { code });
    if (!r || !r.verdict) throw new ApiError(0, 'bad_answer', 'The gateway answered without a verdict.');
    codeVerdict(step.id, r.verdict);
  } catch (err) {
    if (pendingCode !== step) return; // the step ended meanwhile
    ui.codeSubmit.disabled = false;
    ui.codeInput.value = '';
    ui.codeInput.focus();
    if (err.code === 'code_invalid') {
      const left = err.body && Number.isInteger(err.body.attemptsLeft) ? err.body.attemptsLeft : null;
      codeMessage(step, left === null ? 'code.wrong_unknown' : 'code.wrong', { left }, 'bad');
      return;
    }
    if (err.code === 'code_expired') {
      codeExpired(step);
      return;
    }
    if (err.code === 'code_locked_out') {
      // The code's attempts ran out: the gateway ended the session `locked_out`.
      codeFailed(step, { result: 'locked_out', statusKey: 'code.locked', nextKey: 'next.code_locked' });
      return;
    }
    if (err.code === 'code_attempts_exceeded') {
      codeMessage(step, 'error.code_attempts_exceeded', {}, 'bad', err);
      return;
    }
    if (err.status === 409) {
      // code_used, session_finished, code_not_requested: nothing left to confirm on this session.
      codeFailed(step, { result: null, statusKey: 'code.no_more', nextKey: 'next.code_no_more' });
      return;
    }
    codeMessage(step, 'code.check_failed', {}, 'bad', err);
  }
});

// The SMS did not arrive: a new code replaces the old one (wrong attempts still count).
ui.codeResend.addEventListener('click', async () => {
  const step = pendingCode;
  if (!step) return;
  ui.codeResend.disabled = true;
  try {
    const r = await api('POST', ROUTES.resend(step.id));
    if (pendingCode !== step) return;
    const expiresAt = Date.parse(r.codeExpiresAt);
    if (Number.isFinite(expiresAt)) step.expiresAt = expiresAt;
    codeMessage(step, 'code.resent', {}, 'ok');
    // Whatever was typed belongs to the old code, which no longer works.
    ui.codeInput.value = '';
    ui.codeInput.focus();
    ui.codeResend.disabled = !(r.resendsLeft > 0);
    void pollOutbox(step.expiresAt);
  } catch (err) {
    if (pendingCode !== step) return;
    const known = has(`error.${codeOf(err)}`);
    const key = err.code === 'code_resend_limit' ? 'code.resend_limit' : known ? errorKey(err) : 'code.resend_failed';
    codeMessage(step, key, {}, 'bad', err);
    ui.codeResend.disabled = err.code !== 'sms_unavailable';
  }
});

function timeOf(iso) {
  const t = new Date(iso);
  return Number.isNaN(t.getTime())
    ? ''
    : t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

function span(className, text) {
  const el = document.createElement('span');
  el.className = className;
  el.textContent = text;
  return el;
}

/** A span whose text follows the language. */
function liveSpan(className, render) {
  const el = document.createElement('span');
  el.className = className;
  put(el, render);
  return el;
}

/**
 * Reads the development SMS outbox (GET /dev/outbox, SMS_ADAPTER=dev only) once, and again every OUTBOX_POLL_MS
 * until `until` (a Date.now() value). A gateway that sends real SMS has no outbox (404).
 */
async function pollOutbox(until = 0) {
  clearTimeout(outboxTimer);
  outboxTimer = null;
  let r;
  try {
    r = await api('GET', ROUTES.outbox);
  } catch (err) {
    if (err.status === 404) {
      ui.outbox.replaceChildren();
      say(ui.outboxStatus, 'outbox.absent');
    } else if (err.code !== 'no_key') {
      sayError(ui.outboxStatus, 'outbox.failed', err);
      if (Date.now() < until) outboxTimer = setTimeout(() => void pollOutbox(until), OUTBOX_POLL_MS * 2);
    }
    return;
  }
  const messages = (r && Array.isArray(r.messages) ? r.messages : []).slice(-10).reverse(); // newest first
  const current = pendingCode && pendingCode.id;
  ui.outbox.replaceChildren(
    ...messages.map((m) => {
      const li = document.createElement('li');
      if (m.sessionId) li.dataset.sessionId = m.sessionId;
      const purpose = m.purpose || 'identification';
      li.dataset.purpose = purpose;
      if (m.sessionId && m.sessionId === current) li.className = 'current';
      li.append(
        span('when', timeOf(m.createdAt)),
        liveSpan('kind', () => (has(`outbox.purpose.${purpose}`) ? tr(`outbox.purpose.${purpose}`) : purpose)),
        liveSpan('to', () => tr('outbox.to', { to: m.to })),
        span('sms-text', m.text), // the SMS as the patient gets it (its own languages)
      );
      return li;
    }),
  );
  say(ui.outboxStatus, messages.length ? 'outbox.shown' : 'outbox.none');
  if (Date.now() < until && (pendingCode || pendingEnrollment)) {
    outboxTimer = setTimeout(() => void pollOutbox(until), OUTBOX_POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// MIS events: what the clinic's information system receives (GET /ws/events with the workstation key)
// ---------------------------------------------------------------------------------------------------------------

/** The IIN as shown on the doctor's screen in the feed: the last four digits only. */
function maskIin(iin) {
  return typeof iin === 'string' && iin.length > 4 ? `${'•'.repeat(iin.length - 4)}${iin.slice(-4)}` : '—';
}

/** A code in words when the dictionary has `<prefix>.<code>`, else the code itself. */
function words(prefix, code) {
  return code && has(`${prefix}.${code}`) ? tr(`${prefix}.${code}`) : String(code ?? '—');
}

/**
 * The clinic's event stream. Live from the moment it connects; when the socket drops it reconnects with
 * `?after=<last event id>`, so the gateway replays whatever happened meanwhile. Delivery is at least once: an
 * event already shown (same id) is dropped.
 */
class EventsFeed {
  constructor(list, statusEl) {
    this.list = list;
    this.status = statusEl;
    this.key = null;
    this.ws = null;
    this.timer = null;
    this.lastId = null;
    this.seen = new Set();
    this.failures = 0;
    this.stopped = true;
  }

  start(key) {
    this.stop();
    this.key = key;
    this.stopped = false;
    this.lastId = null;
    this.seen.clear();
    this.failures = 0;
    this.list.replaceChildren();
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
    say(this.status, 'events.not_connected');
  }

  connect() {
    if (this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const query = this.lastId ? `?after=${encodeURIComponent(this.lastId)}` : '';
    let ws;
    try {
      // The key as a subprotocol: never in the URL (URLs end up in logs).
      ws = new WebSocket(`${scheme}://${location.host}${ROUTES.eventsWs}${query}`, [
        EVENTS_SUBPROTOCOL,
        `key.${this.key}`,
      ]);
    } catch (err) {
      this.retry({ code: 'connect_failed' });
      return;
    }
    this.ws = ws;
    let refused = null;
    const resumed = Boolean(this.lastId);
    if (!this.failures) say(this.status, 'events.connecting');
    ws.onopen = () => {
      this.failures = 0;
      say(this.status, resumed ? 'events.resumed' : 'events.listening', {}, 'ok');
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws || typeof ev.data !== 'string') return;
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (m && m.type === 'ready') {
        // Where the stream starts: resume from here if the socket drops before the first event.
        if (!this.lastId && m.cursor) this.lastId = m.cursor;
      } else if (m && m.type === 'event') this.add(m.event);
      else if (m && m.type === 'error') refused = m;
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.ws = null;
      if (this.stopped) return;
      const why = { code: refused && refused.code ? refused.code : `close_${ev.code}` };
      if (EVENTS_FINAL_CLOSES.has(ev.code)) {
        status(this.status, () => [`${tr('events.refused')} `, supportCode(why)], 'bad');
        return;
      }
      if (ev.code === EVENTS_CURSOR_UNKNOWN) {
        this.lastId = null; // the gateway no longer knows where this page was: live from now on
      }
      this.retry(why);
    };
  }

  retry(why) {
    const delay = Math.min(15_000, 1000 * 2 ** this.failures);
    this.failures++;
    status(this.status, () => [`${tr('events.retry', { s: Math.round(delay / 1000) })} `, supportCode(why)], 'bad');
    this.timer = setTimeout(() => this.connect(), delay);
  }

  add(e) {
    if (!e || typeof e.id !== 'string' || this.seen.has(e.id)) return;
    this.seen.add(e.id);
    if (this.seen.size > EVENT_IDS_KEPT) this.seen.delete(this.seen.values().next().value);
    this.lastId = e.id;
    const li = document.createElement('li');
    li.dataset.eventId = e.id;
    li.dataset.type = e.type;
    if (e.result) li.dataset.result = e.result;
    if (e.method) li.dataset.method = e.method;
    if (e.reason) li.dataset.reason = e.reason;
    if (e.sessionId) li.dataset.sessionId = e.sessionId;
    li.append(
      span('when', timeOf(e.occurredAt)),
      span('seq', `#${e.seq}`),
      liveSpan('kind', () => words('event', e.type)),
    );
    if (e.type === 'workstation.camera_changed') {
      // A desk's camera changed: no patient, no session.
      li.append(
        span('outcome', `${e.previous?.label || '?'} → ${e.current?.label || '?'}`),
        liveSpan('who', () => tr('event.workstation', { id: e.workstationId })),
      );
    } else if (typeof e.type === 'string' && e.type.startsWith('template.')) {
      // A patient's reference template: who changed it, and whether the patient confirmed with their code.
      li.append(
        liveSpan('outcome', () => {
          const by = e.actor && has(`event.by.${e.actor.kind}`) ? tr(`event.by.${e.actor.kind}`) : '';
          return e.confirmation === 'patient_code' ? `${by} · ${tr('event.patient_code')}` : by;
        }),
        liveSpan('who', () => tr('event.iin', { iin: maskIin(e.iin) })),
      );
    } else {
      li.append(
        liveSpan('outcome', () =>
          e.type === 'identification.refused'
            ? tr('event.refused_because', { reason: words('refusal', e.reason || 'none') })
            : `${words('result', e.result)} · ${words('method', e.method)}`,
        ),
        liveSpan('who', () => {
          const parts = [tr('event.iin', { iin: maskIin(e.iin) }), e.appointmentId];
          if (e.channel === 'remote') parts.push(tr('event.remote'));
          return parts.join(' · ');
        }),
      );
    }
    this.list.prepend(li);
    while (this.list.children.length > EVENTS_SHOWN) this.list.lastChild.remove();
  }
}

const events = new EventsFeed(ui.events, ui.eventsStatus);

// ---------------------------------------------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------------------------------------------

window.addEventListener('pagehide', () => {
  if (run) run.cancel();
  closeEnrollCamera();
  endEnrollConfirm();
  endCodeStep();
  clearTimeout(outboxTimer);
  events.stop();
});

async function main() {
  buildLanguageSwitch();
  try {
    await loadLanguage(lang);
  } catch {
    lang = 'en'; // the chosen dictionary is missing: English, which the page cannot do without
    await loadLanguage(lang);
  }
  put(ui.keyHint, () => withNodes(tr('key.hint'), { prefix: codeEl('fid_ws_') }));
  showChannel();
  say(ui.codeStatus, 'code.intro');
  say(ui.eventsStatus, 'events.not_connected');
  renderPage();
  document.body.dataset.ready = 'true'; // texts are in (tests wait for it)
  if (apiKey()) {
    showKeyPlaceholder();
    if (await checkKey()) {
      events.start(apiKey());
      void pollOutbox();
    }
  } else {
    say(ui.keyStatus, 'key.none');
  }
}

void main();
