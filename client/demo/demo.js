// The desk demo page (served at /): a workstation key, a patient, enrollment, identification with live guidance,
// the code path and the MIS events. Plain ES module, no build step, no inline script (the page's CSP forbids it).
import { attachVideo, captureStill, identify, openCamera, releaseCamera, VERDICT_MESSAGES } from '/client/faceid-client.js';

// The code path (refusal, six-digit code, development SMS outbox) and the MIS events subscription are served by
// other parts of the gateway. Until a gateway serves them, their panels say "not available yet": an endpoint that
// answers 404 `not_found` (no such route), or a subscription that cannot be opened, is not there.
const ENDPOINTS = {
  refusal: (sessionId) => `/sessions/${encodeURIComponent(sessionId)}/refusal`,
  code: (sessionId) => `/sessions/${encodeURIComponent(sessionId)}/code`,
  outbox: '/dev/outbox',
  eventsWs: '/ws/events',
};
const KEY_STORAGE = 'faceid.demo.apiKey';
const OUTBOX_POLL_MS = 2000;
const NOT_AVAILABLE = 'Not available yet';

const $ = (id) => document.getElementById(id);
const ui = {
  keyForm: $('key-form'),
  apiKey: $('api-key'),
  forgetKey: $('forget-key'),
  keyStatus: $('key-status'),
  iin: $('iin'),
  appointment: $('appointment'),
  enrollForm: $('enroll-form'),
  enrollFile: $('enroll-file'),
  enrollCamera: $('enroll-camera'),
  enrollCapture: $('enroll-capture'),
  enrollCameraOff: $('enroll-camera-off'),
  enrollPreview: $('enroll-preview'),
  enrollStatus: $('enroll-status'),
  start: $('start'),
  cancel: $('cancel'),
  refuse: $('refuse'),
  preview: $('preview'),
  guidance: $('guidance'),
  progress: $('progress'),
  verdict: $('verdict'),
  sessionInfo: $('session-info'),
  codeStatus: $('code-status'),
  codeForm: $('code-form'),
  codeInput: $('code-input'),
  codeSubmit: $('code-submit'),
  outbox: $('outbox'),
  outboxStatus: $('outbox-status'),
  eventsStatus: $('events-status'),
  events: $('events'),
};

/** The identification in progress, if any. */
let run = null;
/** The last session started from this page (for the refusal and the code). */
let lastSession = null;
let enrollStream = null;
let outboxTimer = null;
let eventsSocket = null;

// ---------------------------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
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
    const e = data && data.error;
    throw new ApiError(res.status, (e && e.code) || `http_${res.status}`, (e && e.message) || res.statusText);
  }
  return data;
}

/** A route this gateway does not serve (404 `not_found`), as opposed to a missing resource on a served route. */
function notServed(err) {
  return err instanceof ApiError && err.status === 404 && err.code === 'not_found';
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
  sessionStorage.setItem(KEY_STORAGE, key);
  ui.apiKey.value = '';
  ui.apiKey.placeholder = 'key set (enter another to replace it)';
  if (await checkKey()) {
    connectEvents();
    void pollOutbox();
  }
});

ui.forgetKey.addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORAGE);
  ui.apiKey.value = '';
  ui.apiKey.placeholder = 'fid_ws_...';
  disconnectEvents();
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
  return { iin, appointmentId };
}

ui.appointment.value = newAppointmentId();

// ---------------------------------------------------------------------------------------------------------------
// 3. Enrollment
// ---------------------------------------------------------------------------------------------------------------

async function enroll(photo, how) {
  const p = patient(ui.enrollStatus);
  if (!p) return;
  say(ui.enrollStatus, `Enrolling (${how})...`);
  try {
    const r = await api('POST', `/patients/${encodeURIComponent(p.iin)}/template`, photo);
    say(ui.enrollStatus, `Enrolled patient ${r.patientIin} from ${how}: template ${r.templateId.slice(0, 8)}.`, 'ok');
  } catch (err) {
    say(ui.enrollStatus, `Enrollment failed: ${errorText(err)}`, 'bad');
  }
}

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

function showGuidance(text, code = '') {
  ui.guidance.textContent = text;
  ui.guidance.dataset.code = code;
  ui.guidance.classList.toggle('blink', code === 'blink_now');
}

function showVerdict(result, text) {
  ui.verdict.hidden = false;
  ui.verdict.dataset.result = result;
  ui.verdict.textContent = text;
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
  if (typeof v.score === 'number') extra.push(`score ${v.score.toFixed(2)}`);
  if (v.liveness) extra.push(v.liveness.blink ? 'blinked' : 'no blink');
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
  setRunning(true);
  ui.verdict.hidden = true;
  ui.verdict.removeAttribute('data-result');
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
      const s = await api('POST', '/sessions', { iin: p.iin, appointmentId: p.appointmentId, channel: 'in_person' });
      lastSession = { id: s.sessionId, ...p };
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
      ui.progress.value = 1;
      showGuidance('Done.', 'done');
      showVerdict(v.result, describeVerdict(v));
    },
  });
  run = current;
  try {
    const verdict = await current.done;
    if (verdict === null) {
      showVerdict('cancelled', 'Cancelled.');
      showGuidance('Cancelled.');
    } else {
      say(ui.sessionInfo, `session ${verdict.sessionId} · ${frames} frames sent`);
      // The stored verdict, as the MIS would read it.
      const stored = await api('GET', `/sessions/${encodeURIComponent(verdict.sessionId)}`).catch(() => null);
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
    ui.appointment.value = newAppointmentId();
  }
}

ui.start.addEventListener('click', () => void startIdentification());
ui.cancel.addEventListener('click', () => run && run.cancel());

// ---------------------------------------------------------------------------------------------------------------
// Code path: refusal, six-digit code, development SMS outbox
// ---------------------------------------------------------------------------------------------------------------

function codePathNotAvailable(why) {
  say(ui.codeStatus, `${NOT_AVAILABLE}: this gateway does not offer the code path (${why}).`, 'na');
  ui.codeInput.disabled = true;
  ui.codeSubmit.disabled = true;
}

ui.refuse.addEventListener('click', async () => {
  if (run) run.cancel();
  const p = patient(ui.codeStatus);
  if (!p) return;
  try {
    let sessionId = lastSession && lastSession.iin === p.iin ? lastSession.id : null;
    if (!sessionId) {
      const s = await api('POST', '/sessions', { iin: p.iin, appointmentId: p.appointmentId, channel: 'in_person' });
      lastSession = { id: s.sessionId, ...p };
      sessionId = s.sessionId;
    }
    await api('POST', ENDPOINTS.refusal(sessionId), { reason: 'patient_refused_photo' });
    say(ui.codeStatus, 'Refusal recorded. A six-digit code was sent to the patient: type it in.', 'ok');
    ui.codeInput.disabled = false;
    ui.codeSubmit.disabled = false;
    ui.codeInput.focus();
    void pollOutbox(Date.now() + 5 * 60_000);
  } catch (err) {
    if (notServed(err)) codePathNotAvailable(`POST ${ENDPOINTS.refusal(':id')} answered 404`);
    else say(ui.codeStatus, `Refusal failed: ${errorText(err)}`, 'bad');
  }
});

ui.codeForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const code = ui.codeInput.value.trim();
  if (!/^\d{6}$/.test(code) || !lastSession) {
    say(ui.codeStatus, 'The code is six digits.', 'bad');
    return;
  }
  try {
    const r = await api('POST', ENDPOINTS.code(lastSession.id), { code });
    const result = (r && (r.result || (r.verdict && r.verdict.result))) || 'match';
    const method = (r && (r.method || (r.verdict && r.verdict.method))) || 'code';
    showVerdict(result, `${VERDICT_MESSAGES[result] || result} (method: ${method})`);
    ui.verdict.dataset.method = method;
    say(ui.codeStatus, 'Code checked.', 'ok');
    ui.codeInput.value = '';
  } catch (err) {
    if (notServed(err)) codePathNotAvailable(`POST ${ENDPOINTS.code(':id')} answered 404`);
    else say(ui.codeStatus, `Code refused: ${errorText(err)}`, 'bad');
  }
});

/** Reads the outbox once, and again every OUTBOX_POLL_MS until `until` (a Date.now() value). */
async function pollOutbox(until = 0) {
  clearTimeout(outboxTimer);
  try {
    const r = await api('GET', ENDPOINTS.outbox);
    const messages = Array.isArray(r) ? r : (r && (r.messages || r.items)) || [];
    ui.outbox.replaceChildren(
      ...messages.slice(-20).reverse().map((m) => {
        const li = document.createElement('li');
        li.textContent = typeof m === 'string' ? m : [m.createdAt, m.to, m.text || m.body].filter(Boolean).join(' · ');
        return li;
      }),
    );
    say(ui.outboxStatus, messages.length ? '' : 'No messages yet.');
    if (Date.now() < until) outboxTimer = setTimeout(() => void pollOutbox(until), OUTBOX_POLL_MS);
  } catch (err) {
    if (notServed(err)) say(ui.outboxStatus, `${NOT_AVAILABLE}: no development outbox on this gateway.`, 'na');
    else if (err.code !== 'no_key') say(ui.outboxStatus, `Outbox: ${errorText(err)}`, 'bad');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// MIS events
// ---------------------------------------------------------------------------------------------------------------

function disconnectEvents() {
  if (eventsSocket) eventsSocket.close(1000);
  eventsSocket = null;
  say(ui.eventsStatus, 'Not connected.');
}

function connectEvents() {
  disconnectEvents();
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${ENDPOINTS.eventsWs}`;
  let opened = false;
  let ws;
  try {
    ws = new WebSocket(url, ['faceid.events.v1']);
  } catch {
    say(ui.eventsStatus, `${NOT_AVAILABLE}: the events subscription cannot be opened.`, 'na');
    return;
  }
  eventsSocket = ws;
  say(ui.eventsStatus, 'Connecting...');
  ws.onopen = () => {
    opened = true;
    say(ui.eventsStatus, 'Listening for events.', 'ok');
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data !== 'string') return;
    let e;
    try {
      e = JSON.parse(ev.data);
    } catch {
      return;
    }
    const li = document.createElement('li');
    li.textContent = [e.type, e.sessionId, e.result, e.method, e.createdAt].filter(Boolean).join(' · ') || ev.data;
    ui.events.prepend(li);
    while (ui.events.children.length > 50) ui.events.lastChild.remove();
  };
  ws.onclose = (ev) => {
    if (eventsSocket !== ws) return;
    eventsSocket = null;
    if (!opened) say(ui.eventsStatus, `${NOT_AVAILABLE}: no MIS events subscription on this gateway (${ENDPOINTS.eventsWs}).`, 'na');
    else say(ui.eventsStatus, `Disconnected (code ${ev.code}).`, 'bad');
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------------------------------------------

/** Whether the code path is there at all, from the published API description (public, no key needed). */
async function probeCodePath() {
  try {
    const res = await fetch('/openapi.json', { cache: 'no-store' });
    const doc = await res.json();
    const paths = Object.keys((doc && doc.paths) || {});
    const has = (suffix) => paths.some((p) => p.startsWith('/sessions/') && p.endsWith(suffix));
    if (!has('/refusal') || !has('/code')) codePathNotAvailable('its API description has no refusal and code endpoints');
  } catch {
    // No API description: the buttons will tell when pressed.
  }
}

window.addEventListener('pagehide', () => {
  if (run) run.cancel();
  closeEnrollCamera();
  disconnectEvents();
});

void probeCodePath();
if (apiKey()) {
  ui.apiKey.placeholder = 'key set (enter another to replace it)';
  void checkKey().then((ok) => {
    if (ok) {
      connectEvents();
      void pollOutbox();
    }
  });
} else {
  say(ui.keyStatus, 'No key yet.');
}
