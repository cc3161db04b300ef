// The desk demo page (served at /): a workstation key, a patient, enrollment, identification with live guidance,
// the code path (refusal, remote appointments, the six-digit code) and the MIS events feed. Plain ES module, no
// build step, no inline script (the page's CSP forbids it).
import {
  attachVideo,
  captureStill,
  identify,
  openCamera,
  REASON_MESSAGES,
  releaseCamera,
  VERDICT_MESSAGES,
} from '/client/faceid-client.js';

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
const REFUSAL_REASON = 'patient_refused_photo';
const KEY_STORAGE = 'faceid.demo.apiKey';
const OUTBOX_POLL_MS = 1500;
/** Events kept on screen, and event ids remembered to drop repeats (delivery is at least once). */
const EVENTS_SHOWN = 50;
const EVENT_IDS_KEPT = 500;
/** Refusals after which the events feed does not reconnect: the key (4001; 4003 revoked or expired) or the request (4400). */
const EVENTS_FINAL_CLOSES = new Set([4001, 4003, 4400]);
/** The resume cursor is not known to the gateway: start again live. */
const EVENTS_CURSOR_UNKNOWN = 4404;

const $ = (id) => document.getElementById(id);
const ui = {
  keyForm: $('key-form'),
  apiKey: $('api-key'),
  forgetKey: $('forget-key'),
  keyStatus: $('key-status'),
  keyHint: $('key-hint'),
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
  stage: $('stage'),
  preview: $('preview'),
  guidance: $('guidance'),
  turnHint: $('turn-hint'),
  progress: $('progress'),
  verdict: $('verdict'),
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
/** The session waiting for its six-digit code: {id, expiresAt (ms), message, tone} (the status line above the field). */
let pendingCode = null;
let enrollStream = null;
/** A new reference photo waiting for the patient's code: {iin, expiresAt (ms)}. */
let pendingEnrollment = null;
let outboxTimer = null;
let codeTimer = null;
/** True while a refusal is being recorded: the cancelled run must not show "Cancelled" over the code step. */
let refusing = false;

// ---------------------------------------------------------------------------------------------------------------
// HTTP
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
  if (!key) throw new ApiError(0, 'no_key', 'Enter the workstation API key first (step 1).');
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

function say(el, text, tone = '') {
  el.textContent = text;
  el.className = `status${tone ? ` ${tone}` : ''}`;
}

function errorText(err) {
  return err && err.code ? `${err.code}: ${err.message}` : String(err && err.message ? err.message : err);
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Workstation key
// ---------------------------------------------------------------------------------------------------------------

async function checkKey() {
  if (!apiKey()) {
    say(ui.keyStatus, 'No key yet.');
    return false;
  }
  try {
    // Any authenticated read will do: an unknown session answers 404 with a valid key and 401 without one.
    await api('GET', '/sessions/00000000-0000-4000-8000-000000000000');
  } catch (err) {
    if (err.code === 'session_not_found') {
      say(ui.keyStatus, 'Key accepted (kept in this tab only).', 'ok');
      ui.keyHint.hidden = true; // room for the rest of the page
      return true;
    }
    if (err.status === 401) sessionStorage.removeItem(KEY_STORAGE); // a refused key is not kept
    say(ui.keyStatus, `Key not accepted: ${errorText(err)}`, 'bad');
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
  ui.apiKey.placeholder = 'key set';
  if (await checkKey()) {
    events.start(key);
    void pollOutbox();
  }
});

ui.forgetKey.addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORAGE);
  ui.apiKey.value = '';
  ui.apiKey.placeholder = 'fid_ws_...';
  events.stop();
  ui.keyHint.hidden = false;
  say(ui.keyStatus, 'Key forgotten.');
});

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
    say(statusEl, 'Enter the patient’s IIN: 12 digits (step 2).', 'bad');
    ui.iin.focus();
    return null;
  }
  if (!/^[\w.:-]{1,64}$/.test(appointmentId)) {
    say(statusEl, 'Enter an appointment id: letters, digits, . _ : - (step 2).', 'bad');
    ui.appointment.focus();
    return null;
  }
  return { iin, appointmentId, channel };
}

/** A remote appointment has no camera step: the start button sends the code instead. */
function showChannel() {
  const remote = ui.channel.value === 'remote';
  ui.start.textContent = remote ? 'Send the code' : 'Start identification';
  ui.refuse.hidden = remote;
  ui.preview.hidden = remote;
  ui.stage.classList.toggle('no-camera', remote);
  if (!run) showGuidance(remote ? 'Remote appointment: the patient confirms with a six-digit code.' : 'Press "Start identification".');
}

ui.appointment.value = newAppointmentId();
ui.channel.addEventListener('change', showChannel);

// ---------------------------------------------------------------------------------------------------------------
// 3. Enrollment
// ---------------------------------------------------------------------------------------------------------------

async function enroll(photo, how) {
  const p = patient(ui.enrollStatus);
  if (!p) return;
  endEnrollConfirm();
  say(ui.enrollStatus, `Enrolling (${how})...`);
  try {
    const r = await api('POST', ROUTES.template(p.iin), photo);
    if (r && r.confirmation === 'code_sent') {
      // The patient has (or had) a reference photo: a desk replaces it only with the patient's consent.
      pendingEnrollment = { iin: r.patientIin, expiresAt: Date.parse(r.codeExpiresAt) };
      ui.enrollConfirmForm.hidden = false;
      ui.enrollCode.value = '';
      ui.enrollCode.focus();
      say(
        ui.enrollStatus,
        `Patient ${r.patientIin} already has a reference photo. Replacing it needs the patient’s consent: a ` +
          `six-digit code went to their phone (until ${timeOf(r.codeExpiresAt)}). Type it to confirm the new photo. / ` +
          'Пациенттің эталондық фотосы бар: жаңасын растау үшін оның телефонына келген алты таңбалы кодты енгізіңіз. / ' +
          'У пациента уже есть эталонное фото: для замены введите шестизначный код, пришедший на его телефон.',
      );
      void pollOutbox(pendingEnrollment.expiresAt);
      return;
    }
    const replaced = r.replaced ? ' (it replaces the earlier template)' : '';
    say(ui.enrollStatus, `Enrolled patient ${r.patientIin} from ${how}: template ${r.templateId.slice(0, 8)}${replaced}.`, 'ok');
  } catch (err) {
    say(ui.enrollStatus, `Enrollment failed: ${errorText(err)}`, 'bad');
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
    say(ui.enrollStatus, 'Type the six digits the patient received. / Пациентке келген алты цифрды енгізіңіз. / Введите шесть цифр, которые получил пациент.', 'bad');
    return;
  }
  const { iin } = pendingEnrollment;
  try {
    const r = await api('POST', ROUTES.templateConfirm(iin), { code });
    endEnrollConfirm();
    say(ui.enrollStatus, `Enrolled patient ${r.patientIin}: the patient confirmed the new photo (template ${r.templateId.slice(0, 8)}). / Пациент жаңа фотоны растады. / Пациент подтвердил новое фото.`, 'ok');
  } catch (err) {
    if (err.code === 'code_invalid') {
      ui.enrollCode.value = '';
      const left = err.body && err.body.attemptsLeft;
      say(ui.enrollStatus, `Wrong code: ${left} attempt(s) left. / Код қате: ${left} мүмкіндік қалды. / Неверный код: осталось попыток: ${left}.`, 'bad');
      return;
    }
    endEnrollConfirm();
    say(ui.enrollStatus, `The photo was not replaced / Фото ауыстырылмады / Фото не заменено: ${errorText(err)}`, 'bad');
  }
});

ui.enrollConfirmCancel.addEventListener('click', () => {
  endEnrollConfirm();
  say(ui.enrollStatus, 'Kept the earlier reference photo (the code expires unused).');
});

ui.enrollForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const file = ui.enrollFile.files && ui.enrollFile.files[0];
  if (!file) {
    say(ui.enrollStatus, 'Choose a JPEG photo first.', 'bad');
    return;
  }
  await enroll(file, 'the uploaded photo');
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
    say(ui.enrollStatus, 'Look at the camera, then press "Take the photo".');
  } catch (err) {
    closeEnrollCamera();
    say(ui.enrollStatus, `Camera: ${errorText(err)}`, 'bad');
  }
});

ui.enrollCapture.addEventListener('click', async () => {
  let still;
  try {
    still = await captureStill(ui.enrollPreview, { maxWidth: 640, maxHeight: 480, quality: 0.92 });
  } catch (err) {
    say(ui.enrollStatus, `Camera: ${errorText(err)}`, 'bad');
    return;
  } finally {
    closeEnrollCamera();
  }
  await enroll(still, 'a webcam photo');
});

ui.enrollCameraOff.addEventListener('click', closeEnrollCamera);

// ---------------------------------------------------------------------------------------------------------------
// 4. Identification
// ---------------------------------------------------------------------------------------------------------------

/**
 * The head-turn prompt, big, with an arrow. The patient turns to their own left or right; facing this screen, their
 * left is this screen's left, so the arrow points the way they turn.
 */
const TURN_ARROWS = { turn_left: '\u2190', turn_right: '\u2192' };

function showGuidance(text, code = '') {
  ui.guidance.textContent = text;
  ui.guidance.dataset.code = code;
  ui.guidance.classList.toggle('blink', code === 'blink_now');
  const arrow = TURN_ARROWS[code];
  ui.guidance.classList.toggle('turn', Boolean(arrow));
  ui.turnHint.hidden = !arrow;
  ui.turnHint.dataset.direction = arrow ? code.slice('turn_'.length) : '';
  ui.turnHint.textContent = arrow || '';
}

/** The verdict line; a failed liveness check also says why (`reason`, as the server gave it, and in words). */
function showVerdict(result, text, reason = null) {
  ui.verdict.hidden = false;
  ui.verdict.dataset.result = result;
  ui.verdict.textContent = text;
  if (reason) {
    ui.verdict.dataset.reason = reason;
    const why = document.createElement('span');
    why.className = 'reason';
    why.textContent = REASON_MESSAGES[reason] || reason;
    ui.verdict.append(why);
  } else {
    delete ui.verdict.dataset.reason;
  }
}

function setRunning(running) {
  ui.start.disabled = running;
  ui.cancel.disabled = !running;
}

function cameraState(state) {
  ui.preview.dataset.camera = state;
}

function describeVerdict(v) {
  const parts = [VERDICT_MESSAGES[v.result] || v.result];
  const extra = [];
  if (v.liveness) {
    extra.push(v.liveness.blink ? 'blinked' : 'no blink');
    // null: the challenge was not asked.
    if (typeof v.liveness.light === 'boolean') {
      extra.push(v.liveness.light ? 'lit by the screen / экран жарығы түсті / освещено экраном' : 'not lit by the screen / экран жарығы түспеді / не освещено экраном');
    }
    if (typeof v.liveness.turn === 'boolean') extra.push(v.liveness.turn ? 'turned / бұрылды / повернул голову' : 'no turn / бұрылмады / не повернул голову');
  }
  if (v.timings && typeof v.timings.firstFrameToVerdictMs === 'number') {
    extra.push(`${(v.timings.firstFrameToVerdictMs / 1000).toFixed(1)} s`);
  }
  if (extra.length) parts.push(`(${extra.join(', ')})`);
  return parts.join(' ');
}

async function startIdentification() {
  if (run) return;
  const p = patient(ui.sessionInfo);
  if (!p) return;
  if (!apiKey()) {
    say(ui.sessionInfo, 'Enter the workstation API key first (step 1).', 'bad');
    return;
  }
  if (p.channel === 'remote') {
    await startRemote(p);
    return;
  }
  endCodeStep();
  setRunning(true);
  ui.verdict.hidden = true;
  ui.verdict.removeAttribute('data-result');
  ui.verdict.removeAttribute('data-method');
  ui.verdict.removeAttribute('data-reason');
  ui.progress.value = 0;
  showGuidance('Starting the camera...');
  say(ui.sessionInfo, '');
  let frames = 0;
  const current = identify({
    video: ui.preview,
    fps: 10,
    jpegQuality: 0.8,
    // Called at the start and for each reconnect: tokens are single use, so every connection gets a new session.
    getSession: async () => {
      const s = await api('POST', ROUTES.sessions, { iin: p.iin, appointmentId: p.appointmentId, channel: 'in_person' });
      lastSession = { id: s.sessionId, iin: p.iin, appointmentId: p.appointmentId, finished: false };
      return s;
    },
    onState: (state, detail) => {
      if (state === 'camera') cameraState('starting');
      if (state === 'connecting') {
        cameraState('on');
        showGuidance(detail.attempt ? 'Reconnected, go on...' : 'Connecting...');
      }
      if (state === 'streaming') say(ui.sessionInfo, `session ${detail.sessionId}`);
      if (state === 'reconnecting') {
        showGuidance(`Connection lost (code ${detail.closeCode}). Reconnecting (attempt ${detail.attempt})...`, 'reconnecting');
      }
      if (state === 'finished' || state === 'failed' || state === 'cancelled') cameraState('off');
      ui.preview.dataset.state = state;
    },
    onFrame: () => {
      frames++;
    },
    onGuidance: (g) => {
      showGuidance(g.message, g.code);
      ui.progress.value = g.progress;
    },
    onBusy: (ms) => say(ui.sessionInfo, `The server is busy: pausing ${ms} ms.`),
    onServerError: (e) => say(ui.sessionInfo, `Frame refused: ${e.code}`, 'bad'),
    onVerdict: (v) => {
      cameraState('off'); // the client released the camera
      markFinished(v.sessionId);
      ui.progress.value = 1;
      showGuidance('Done.', 'done');
      showVerdict(v.result, describeVerdict(v), v.reason || null);
    },
  });
  run = current;
  try {
    const verdict = await current.done;
    if (verdict === null) {
      // Cancelled, or the patient refused the photo (the code path takes over the verdict area).
      if (!pendingCode && !refusing) {
        showVerdict('cancelled', 'Cancelled.');
        showGuidance('Cancelled.');
      }
    } else {
      say(ui.sessionInfo, `session ${verdict.sessionId} · ${frames} frames sent`);
      // The stored verdict, as the MIS would read it.
      const stored = await api('GET', ROUTES.session(verdict.sessionId)).catch(() => null);
      if (stored && stored.verdict) {
        ui.verdict.dataset.method = stored.verdict.method;
        say(ui.sessionInfo, `session ${verdict.sessionId} · ${frames} frames sent · stored: ${stored.verdict.result} (${stored.verdict.method})`);
      }
    }
  } catch (err) {
    showVerdict('failed', `Could not identify: ${errorText(err)}`);
    showGuidance('Stopped.');
  } finally {
    cameraState('off');
    if (run === current) run = null;
    setRunning(false);
    if (!pendingCode && !refusing) ui.appointment.value = newAppointmentId();
  }
}

/** A remote appointment: no camera at all; the session starts on the code path (POST /sessions answers code_pending). */
async function startRemote(p) {
  endCodeStep();
  setRunning(true);
  ui.cancel.disabled = true;
  ui.verdict.hidden = true;
  ui.verdict.removeAttribute('data-result');
  ui.verdict.removeAttribute('data-method');
  ui.verdict.removeAttribute('data-reason');
  ui.progress.value = 0;
  say(ui.sessionInfo, '');
  showGuidance('Sending the code...');
  try {
    const s = await api('POST', ROUTES.sessions, { iin: p.iin, appointmentId: p.appointmentId, channel: 'remote' });
    lastSession = { id: s.sessionId, iin: p.iin, appointmentId: p.appointmentId, finished: false };
    beginCodeStep(
      { id: s.sessionId, expiresAt: s.codeExpiresAt },
      'Remote appointment: a six-digit code was sent to the patient’s phone. Type the code the patient reads out.',
    );
  } catch (err) {
    showGuidance('Stopped.');
    showVerdict('failed', `Could not send the code: ${errorText(err)}`);
  } finally {
    setRunning(false);
  }
}

ui.start.addEventListener('click', () => void startIdentification());
ui.cancel.addEventListener('click', () => run && run.cancel());

// ---------------------------------------------------------------------------------------------------------------
// Code path: refusal, six-digit code, development SMS outbox
// ---------------------------------------------------------------------------------------------------------------

/** POST /sessions/:id/refusal; `{sessionId, state: 'code_pending', codeExpiresAt}`. */
function postRefusal(sessionId) {
  return api('POST', ROUTES.refusal(sessionId), { reason: REFUSAL_REASON });
}

ui.refuse.addEventListener('click', async () => {
  const p = patient(ui.codeStatus);
  if (!p) return;
  // The camera goes off first: a patient who refuses the photo is not filmed a moment longer.
  refusing = true;
  if (run) run.cancel();
  closeEnrollCamera();
  cameraState('off');
  endCodeStep();
  ui.refuse.disabled = true;
  say(ui.codeStatus, 'Recording the refusal...');
  try {
    // The refusal belongs to the session the patient was asked for (started, cancelled, or never streamed); a
    // finished one (it has a verdict) cannot change, so a new session is opened for the code.
    let sessionId = lastSession && !lastSession.finished && lastSession.iin === p.iin ? lastSession.id : null;
    let answer = null;
    if (sessionId) {
      try {
        answer = await postRefusal(sessionId);
      } catch (err) {
        if (err.status !== 404 && err.status !== 409) throw err;
        sessionId = null; // gone or finished meanwhile
      }
    }
    if (!sessionId) {
      const s = await api('POST', ROUTES.sessions, { iin: p.iin, appointmentId: p.appointmentId, channel: 'in_person' });
      lastSession = { id: s.sessionId, iin: p.iin, appointmentId: p.appointmentId, finished: false };
      sessionId = s.sessionId;
      answer = await postRefusal(sessionId);
    }
    beginCodeStep(
      { id: answer.sessionId || sessionId, expiresAt: answer.codeExpiresAt },
      'Refusal recorded, camera off. A six-digit code was sent to the patient’s phone: type the code the patient reads out.',
    );
  } catch (err) {
    say(ui.codeStatus, `Refusal failed: ${errorText(err)}`, 'bad');
  } finally {
    refusing = false;
    ui.refuse.disabled = false;
  }
});

/** The session now waits for its code: enable the code field, count down to the expiry, watch the dev outbox. */
function beginCodeStep(step, message) {
  endCodeStep();
  const expiresAt = Date.parse(step.expiresAt);
  pendingCode = { id: step.id, expiresAt: Number.isFinite(expiresAt) ? expiresAt : Date.now() + 300_000, message, tone: 'ok' };
  ui.codePanel.dataset.sessionId = step.id;
  ui.codePanel.classList.add('active');
  ui.codeInput.disabled = false;
  ui.codeSubmit.disabled = false;
  ui.codeResend.disabled = false;
  ui.codeInput.value = '';
  ui.verdict.hidden = true;
  ui.verdict.removeAttribute('data-result');
  ui.verdict.removeAttribute('data-method');
  ui.verdict.removeAttribute('data-reason');
  ui.progress.value = 0;
  showGuidance('Waiting for the six-digit code.', 'code_pending');
  say(ui.sessionInfo, `session ${step.id} · code pending`);
  showCodeCountdown();
  codeTimer = setInterval(showCodeCountdown, 1000);
  ui.codeInput.focus();
  void pollOutbox(pendingCode.expiresAt);
}

function showCodeCountdown() {
  if (!pendingCode) return;
  // 2 s of grace for clock differences; the gateway has the last word either way.
  const left = Math.round((pendingCode.expiresAt - Date.now()) / 1000);
  if (left < -2) {
    markFinished(pendingCode.id);
    endCodeStep();
    say(ui.codeStatus, 'The code has expired. Start again for a new code.', 'bad');
    showVerdict('expired', VERDICT_MESSAGES.expired);
    return;
  }
  const s = Math.max(0, left);
  say(ui.codeStatus, `${pendingCode.message} Valid for ${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}.`, pendingCode.tone);
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
  showVerdict(result, `${VERDICT_MESSAGES[result] || result} (method: ${verdict.method})`);
  ui.verdict.dataset.method = verdict.method;
  showGuidance('Done.', 'done');
  ui.progress.value = 1;
  say(ui.sessionInfo, `session ${sessionId} · stored: ${result} (${verdict.method})`);
  say(ui.codeStatus, `Code checked: ${result}.`, result === 'match' ? 'ok' : 'bad');
  ui.appointment.value = newAppointmentId();
  void pollOutbox();
}

ui.codeForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const step = pendingCode;
  if (!step) return;
  const code = ui.codeInput.value.trim();
  if (!/^\d{6}$/.test(code)) {
    say(ui.codeStatus, 'The code is six digits.', 'bad');
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
      step.message = left === null ? 'Wrong code: ask the patient to read it again.' : `Wrong code: ${left} attempt${left === 1 ? '' : 's'} left.`;
      step.tone = 'bad';
      showCodeCountdown();
      return;
    }
    if (err.code === 'code_expired') {
      markFinished(step.id);
      endCodeStep();
      say(ui.codeStatus, 'The code has expired. Start again for a new code.', 'bad');
      showVerdict('expired', VERDICT_MESSAGES.expired);
      return;
    }
    if (err.code === 'code_locked_out') {
      // The code's attempts ran out: the gateway ended the session `locked_out`.
      markFinished(step.id);
      endCodeStep();
      say(ui.codeStatus, 'Too many wrong codes for this session: it ended locked out.', 'bad');
      showVerdict('locked_out', VERDICT_MESSAGES.locked_out);
      return;
    }
    if (err.code === 'code_attempts_exceeded') {
      step.message = 'Too many wrong codes for this patient or this desk lately: try again later.';
      step.tone = 'bad';
      showCodeCountdown();
      return;
    }
    if (err.status === 409) {
      // code_used, session_finished, code_not_requested: nothing left to confirm on this session.
      markFinished(step.id);
      endCodeStep();
      say(ui.codeStatus, `This session takes no code any more: ${errorText(err)}`, 'bad');
      return;
    }
    step.message = `The code could not be checked: ${errorText(err)}.`;
    step.tone = 'bad';
    showCodeCountdown();
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
    step.message = `A new code was sent; the previous one no longer works.`;
    step.tone = 'ok';
    ui.codeResend.disabled = !(r.resendsLeft > 0);
    showCodeCountdown();
    void pollOutbox(step.expiresAt);
  } catch (err) {
    if (pendingCode !== step) return;
    step.message = err.code === 'code_resend_limit' ? 'The code cannot be sent again: start a new session.' : `The code could not be sent again: ${errorText(err)}.`;
    step.tone = 'bad';
    ui.codeResend.disabled = err.code !== 'sms_unavailable';
    showCodeCountdown();
  }
});

function timeOf(iso) {
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? '' : t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

function span(className, text) {
  const el = document.createElement('span');
  el.className = className;
  el.textContent = text;
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
      say(ui.outboxStatus, 'No development outbox on this gateway: codes go to the patient’s phone.');
    } else if (err.code !== 'no_key') {
      say(ui.outboxStatus, `Outbox: ${errorText(err)}`, 'bad');
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
      li.dataset.purpose = m.purpose || 'identification';
      if (m.sessionId && m.sessionId === current) li.className = 'current';
      li.append(span('when', timeOf(m.createdAt)), span('to', `to ${m.to}`), span('sms-text', m.text));
      return li;
    }),
  );
  say(ui.outboxStatus, messages.length ? 'What the SMS gateway would send (development only).' : 'No messages yet.');
  if (Date.now() < until && (pendingCode || pendingEnrollment)) {
    outboxTimer = setTimeout(() => void pollOutbox(until), OUTBOX_POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// MIS events: what the clinic's information system receives (GET /ws/events with the workstation key)
// ---------------------------------------------------------------------------------------------------------------

const EVENT_LABELS = {
  'identification.verdict': 'verdict',
  'identification.refused': 'refused',
  'identification.expired': 'expired',
  'identification.locked_out': 'locked out',
  'workstation.camera_changed': 'camera changed',
  'template.enrolled': 'enrolled',
  'template.replaced': 'template replaced',
  'template.revoked': 'template revoked',
};

/** Who changed a template, as the feed says it. */
const TEMPLATE_ACTORS = { enrollment_key: 'by the registry', workstation: 'by a desk', admin: 'by an administrator' };

/** The IIN as shown on the doctor's screen in the feed: the last four digits only. */
function maskIin(iin) {
  return typeof iin === 'string' && iin.length > 4 ? `${'•'.repeat(iin.length - 4)}${iin.slice(-4)}` : '—';
}

/**
 * The clinic's event stream. Live from the moment it connects; when the socket drops it reconnects with
 * `?after=<last event id>`, so the gateway replays whatever happened meanwhile. Delivery is at least once: an
 * event already shown (same id) is dropped.
 */
class EventsFeed {
  constructor(list, status) {
    this.list = list;
    this.status = status;
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
    say(this.status, 'Not connected.');
  }

  connect() {
    if (this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const query = this.lastId ? `?after=${encodeURIComponent(this.lastId)}` : '';
    let ws;
    try {
      // The key as a subprotocol: never in the URL (URLs end up in logs).
      ws = new WebSocket(`${scheme}://${location.host}${ROUTES.eventsWs}${query}`, [EVENTS_SUBPROTOCOL, `key.${this.key}`]);
    } catch (err) {
      this.retry(err.message);
      return;
    }
    this.ws = ws;
    let refused = null;
    const resumed = Boolean(this.lastId);
    if (!this.failures) say(this.status, 'Connecting...');
    ws.onopen = () => {
      this.failures = 0;
      say(this.status, resumed ? 'Listening (reconnected: missed events replayed).' : 'Listening for this clinic’s events.', 'ok');
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
      const why = refused ? `${refused.code}: ${refused.message}` : `close code ${ev.code}`;
      if (EVENTS_FINAL_CLOSES.has(ev.code)) {
        say(this.status, `Events refused (${why}).`, 'bad');
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
    say(this.status, `Disconnected (${why}). Reconnecting in ${Math.round(delay / 1000)} s...`, 'bad');
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
    if (e.sessionId) li.dataset.sessionId = e.sessionId;
    li.append(span('when', timeOf(e.occurredAt)), span('seq', `#${e.seq}`), span('kind', EVENT_LABELS[e.type] || e.type));
    if (e.type === 'workstation.camera_changed') {
      // A desk's camera changed: no patient, no session.
      li.append(span('outcome', `${e.previous?.label || '?'} → ${e.current?.label || '?'}`), span('who', `workstation ${e.workstationId}`));
    } else if (typeof e.type === 'string' && e.type.startsWith('template.')) {
      // A patient's reference template: who changed it, and whether the patient confirmed with their code.
      const by = (e.actor && TEMPLATE_ACTORS[e.actor.kind]) || '';
      li.append(
        span('outcome', `${by}${e.confirmation === 'patient_code' ? ' · patient’s code' : ''}`),
        span('who', `IIN ${maskIin(e.iin)}`),
      );
    } else {
      const outcome = e.type === 'identification.refused' ? `refused: ${e.reason || 'no reason'}` : `${e.result} · ${e.method}`;
      li.append(
        span('outcome', outcome),
        span('who', `IIN ${maskIin(e.iin)} · ${e.appointmentId}${e.channel === 'remote' ? ' · remote' : ''}`),
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

showChannel();
if (apiKey()) {
  ui.apiKey.placeholder = 'key set';
  void checkKey().then((ok) => {
    if (ok) {
      events.start(apiKey());
      void pollOutbox();
    }
  });
} else {
  say(ui.keyStatus, 'No key yet.');
}
