/**
 * faceid-client.js: the browser side of a faceid-gateway identification session (WebSocket protocol `faceid.v1`,
 * docs/protocol.md). An ES module without dependencies; the gateway serves it at /client/faceid-client.js.
 *
 *   import { identify } from '/client/faceid-client.js';
 *   const run = identify({
 *     video: document.querySelector('video'),              // optional preview
 *     getSession: () => postJson('/sessions', {...}),      // {wsUrl, protocols, expiresAt, sessionId}; see below
 *     onGuidance: (g) => (hint.textContent = g.message),   // {code, progress, message, windowMs?, box?}
 *   });
 *   const verdict = await run.done;                         // the server's verdict message, or null if cancelled
 *
 * Flow: getSession first (a patient the server turns away never sees the camera start), then getUserMedia at a low
 * resolution (320x240 ideal; a larger camera image is scaled down), draw the frame to a canvas, encode JPEG with
 * canvas.toBlob, prepend the 20-byte frame header and send one binary message per frame at the target fps. `busy`
 * from the server pauses sending for retryAfterMs. When the verdict arrives the camera is released (its tracks
 * stopped).
 *
 * Liveness: the first message is `hello` with the challenges this page can run (`capabilities`: blink and turn
 * always, light when it has a screen facing the patient) and the camera's label with a hash of its deviceId. The
 * server then asks for a blink (`blink_now` guidance), a head turn (`challenge` kind `turn`), or a sequence of
 * screen colours (`challenge` kind `light`): the client fills the screen with them, frames still streaming, and
 * answers `light_shown` with when each colour was painted, on the same clock as the frames' captureTime.
 *
 * Privacy: a frame never becomes a string (no base64, no data: URL) and is never stored. The module owns one message
 * buffer and the JPEG's ArrayBuffer per frame; both are zeroed right after `send()` (which copies the bytes), and the
 * canvas is cleared at the end. Copies inside the browser (camera buffers, the canvas backing store, the Blob, the
 * network stack) are beyond a page's reach.
 *
 * Reconnecting: session tokens are single use, so a dropped connection cannot be reopened with the same token.
 * Pass `getSession` (called once at the start, before the camera opens, and again for each reconnect) instead of a
 * fixed `session`: when the connection drops before a verdict (close codes 1001, 1006, 1011, 1012, 1013), the client
 * waits (0.5 s, 1 s, 2 s...), asks the page for a fresh session and streams again, keeping the camera open. It does
 * so at most `maxReconnects` times and only while the first session's token would still be valid (its `expiresAt`),
 * so a reconnect stays within the lifetime the operator started. Other close codes (a refused token or Origin, a
 * protocol error, a finished session) are final.
 */

export const PROTOCOL_VERSION = 1;
export const FRAME_HEADER_BYTES = 20;
/** Byte 3 of the frame header. */
export const FRAME_FORMATS = Object.freeze({ jpeg: 0, rgba: 1, bgr: 2, i420: 3 });

/**
 * What to tell the patient for each guidance code, in English (pass `messages` to translate; the demo's
 * dictionaries, client/locales/<lang>.json, have these texts in Kazakh and Russian under `guidance.<code>`).
 */
export const GUIDANCE_MESSAGES = Object.freeze({
  no_face: 'No face in view: sit in front of the camera.',
  multiple_faces: 'Only the patient should face the camera.',
  too_far: 'Move closer to the camera.',
  too_dark: 'Not enough light on your face: turn towards the window or a lamp, or switch on the light.',
  blurry: 'Hold still (or clean the lens).',
  look_at_camera: 'Look straight at the camera.',
  hold_still: 'Good. Hold still.',
  blink_now: 'Blink now.',
  // The first blink window passed without a blink: one more chance.
  blink_again: 'Blink once more, please.',
  // The liveness challenges (the patient's own left and right).
  turn_left: 'Turn your head to your left, then back to the camera.',
  turn_right: 'Turn your head to your right, then back to the camera.',
  watch_screen: 'Look at the screen: it will change colour for a moment.',
});

/** A short line for each verdict result, in English (pass `verdictMessages` to translate; `verdict.<result>`). */
export const VERDICT_MESSAGES = Object.freeze({
  match: 'Match: identity confirmed.',
  no_match: 'No match: this is not the enrolled patient.',
  spoof_suspected: 'Rejected: the liveness check failed. Possibly a photo, a screen or a video.',
  no_template: 'No reference photo is enrolled for this patient.',
  timeout: 'No decision in time.',
  error: 'The server could not decide.',
  // The code path (a patient who refuses the photo, or a remote appointment).
  expired: 'The session expired without a decision.',
  locked_out: 'Locked out: too many wrong codes.',
});

/**
 * Why liveness failed: the verdict's `reason` code, in English words (pass `reasonMessages` to translate;
 * `reason.<code>`).
 */
export const REASON_MESSAGES = Object.freeze({
  no_blink: 'No blink when asked.',
  light_not_shown: 'The screen colours were not shown in time.',
  light_out_of_order: 'The screen colours were not shown as asked.',
  light_late: 'The screen colours were shown too late.',
  light_no_response: 'The face did not reflect the screen colours.',
  light_uniform: 'The face reflected the colours no more than its background (a tint or a flat picture).',
  light_flat: 'The face reflected the colours evenly, like a flat picture.',
  turn_missing: 'The head did not turn as asked.',
  turn_early: 'The head turned before being asked.',
  turn_flat: 'The head turn looked like a flat picture moving.',
  passive_low: 'The passive liveness model refused the face.',
  virtual_camera: 'The camera is a virtual (software) camera.',
  client_unsupported: 'This page cannot run the liveness checks this desk requires.',
});

/** The liveness challenges a client can run (hello `capabilities`). */
export const CHALLENGE_KINDS = Object.freeze(['blink', 'light', 'turn']);

/** Close codes after which a new session may succeed (the drop was not the session's fault). */
const RECONNECTABLE = new Set([1001, 1006, 1011, 1012, 1013]);

/** Final close codes and what they mean to the page (docs/protocol.md, "Close codes"). */
const CLOSE_ERRORS = {
  1000: ['closed', 'The server ended the session without a verdict.'],
  1009: ['payload_too_large', 'A frame was larger than the server accepts.'],
  4001: ['token_invalid', 'The session token was refused (unknown, used or expired).'],
  4003: ['origin_forbidden', 'The server does not accept sessions from this page (WS_ALLOWED_ORIGINS).'],
  4008: ['protocol_error', 'The server refused a message as malformed.'],
  4010: ['session_finished', 'The session was already finished.'],
  4012: ['send_buffer_full', "The page did not read the server's messages fast enough (WS_SEND_BUFFER_MAX)."],
  4020: [
    'message_rate_exceeded',
    'The page sent more messages per second than the server allows (WS_MESSAGES_PER_SECOND).',
  ],
  4021: ['frame_rate_exceeded', 'The page sent frames faster than the fps.max of ready.'],
  4029: ['attempts_exceeded', "The patient's face attempts are used up: identify with the six-digit code."],
};

/** An error with a stable `code` (camera_denied, camera_not_found, token_invalid, connection_lost, ...). */
export class FaceIdError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'FaceIdError';
    this.code = code;
    Object.assign(this, details);
  }
}

/**
 * Writes the 20-byte little-endian frame header into the first bytes of `target` (a Uint8Array):
 * 'F','I', version, format, seq (u32), captureTime (f64, ms since the epoch), width (u16), height (u16).
 * Width and height are 0 for JPEG.
 */
export function writeFrameHeader(target, { seq, captureTime, format = FRAME_FORMATS.jpeg, width = 0, height = 0 }) {
  if (target.length < FRAME_HEADER_BYTES) throw new RangeError('The target is shorter than a frame header.');
  const view = new DataView(target.buffer, target.byteOffset, FRAME_HEADER_BYTES);
  target[0] = 0x46; // 'F'
  target[1] = 0x49; // 'I'
  target[2] = PROTOCOL_VERSION;
  target[3] = format;
  view.setUint32(4, seq >>> 0, true);
  view.setFloat64(8, captureTime, true);
  view.setUint16(16, width, true);
  view.setUint16(18, height, true);
  return target;
}

/** A whole binary frame message (header + payload) in a new Uint8Array. Zero it when done if it held a frame. */
export function encodeFrameMessage(header, payload) {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(out, header);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Opens the camera at a low resolution (`ideal` constraints: a camera that cannot do it gives its nearest mode,
 * which the client scales down). Throws FaceIdError camera_unavailable, camera_denied, camera_not_found or
 * camera_busy.
 */
export async function openCamera({ width = 320, height = 240, frameRate = 15, deviceId } = {}) {
  if (!globalThis.navigator?.mediaDevices?.getUserMedia) {
    throw new FaceIdError(
      'camera_unavailable',
      'This page cannot use a camera: it must be served over https:// (or from localhost) in a browser with getUserMedia.',
    );
  }
  const video = { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: frameRate } };
  if (deviceId) video.deviceId = { exact: deviceId };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: false, video });
  } catch (err) {
    const name = err && err.name;
    if (name === 'NotAllowedError' || name === 'SecurityError') {
      throw new FaceIdError('camera_denied', 'Camera access was denied: allow the camera for this page.');
    }
    if (name === 'NotFoundError' || name === 'OverconstrainedError') {
      throw new FaceIdError('camera_not_found', 'No camera was found.');
    }
    if (name === 'NotReadableError' || name === 'AbortError') {
      throw new FaceIdError('camera_busy', 'The camera is in use by another program, or failed to start.');
    }
    throw new FaceIdError('camera_unavailable', `The camera could not be opened (${name || 'unknown error'}).`);
  }
}

/** Stops every track of a stream: the camera light goes off. */
export function releaseCamera(stream) {
  if (!stream) return;
  for (const track of stream.getTracks()) track.stop();
}

/** Shows `stream` in `video` (a new, detached element when none is given), plays it and waits for a frame. */
export async function attachVideo(stream, video, { timeoutMs = 10_000 } = {}) {
  const v = video || document.createElement('video');
  v.muted = true;
  v.playsInline = true;
  v.srcObject = stream;
  const playing = v.play().catch(() => undefined); // muted inline video may play without a user gesture
  if (v.readyState < 2 /* HAVE_CURRENT_DATA */) {
    await new Promise((resolve, reject) => {
      const finish = (err) => {
        clearTimeout(timer);
        v.removeEventListener('loadeddata', ok);
        v.removeEventListener('error', bad);
        if (err) reject(err);
        else resolve();
      };
      const ok = () => finish();
      const bad = () => finish(new FaceIdError('camera_unavailable', 'The camera stream could not be shown.'));
      const timer = setTimeout(
        () => finish(new FaceIdError('camera_unavailable', 'The camera gave no picture.')),
        timeoutMs,
      );
      v.addEventListener('loadeddata', ok);
      v.addEventListener('error', bad);
    });
  }
  await playing;
  return v;
}

/** Draws video frames into a canvas, scaled to fit maxWidth x maxHeight, and encodes them as JPEG. */
export class FrameGrabber {
  constructor(video, { maxWidth = 320, maxHeight = 240 } = {}) {
    this.video = video;
    this.maxWidth = maxWidth;
    this.maxHeight = maxHeight;
    this.canvas = document.createElement('canvas');
    this.ctx = this.canvas.getContext('2d', { alpha: false });
  }

  /** The size frames are sent at: the camera's, scaled down to fit (never up), even numbers. */
  size() {
    const vw = this.video.videoWidth;
    const vh = this.video.videoHeight;
    if (!vw || !vh) return null;
    const scale = Math.min(1, this.maxWidth / vw, this.maxHeight / vh);
    return {
      width: Math.max(2, Math.round((vw * scale) / 2) * 2),
      height: Math.max(2, Math.round((vh * scale) / 2) * 2),
    };
  }

  /** The current video frame as a JPEG Blob (null when the video has no frame yet). */
  jpeg(quality) {
    const size = this.size();
    if (!size) return Promise.resolve(null);
    if (this.canvas.width !== size.width || this.canvas.height !== size.height) {
      this.canvas.width = size.width;
      this.canvas.height = size.height;
    }
    this.ctx.drawImage(this.video, 0, 0, size.width, size.height);
    return new Promise((resolve) => this.canvas.toBlob(resolve, 'image/jpeg', quality));
  }

  /** Clears the canvas and drops its backing store. */
  clear() {
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.canvas.width = 0;
    this.canvas.height = 0;
  }
}

/**
 * One still from a camera stream or a playing <video>, as a JPEG Blob (for enrollment: upload it with
 * `fetch(url, {method: 'POST', headers: {'content-type': 'image/jpeg'}, body: blob})`).
 */
export async function captureStill(source, { maxWidth = 640, maxHeight = 480, quality = 0.92 } = {}) {
  const isVideo = typeof HTMLVideoElement !== 'undefined' && source instanceof HTMLVideoElement;
  const video = isVideo ? source : await attachVideo(source);
  const grabber = new FrameGrabber(video, { maxWidth, maxHeight });
  try {
    const blob = await grabber.jpeg(quality);
    if (!blob) throw new FaceIdError('camera_unavailable', 'The camera has no picture yet.');
    return blob;
  } finally {
    grabber.clear();
    if (!isVideo) video.srcObject = null;
  }
}

/**
 * The client's clock: milliseconds since the epoch, from the page's monotonic clock (performance.timeOrigin +
 * performance.now()). Frame headers' `captureTime` and `light_shown` timestamps both use it, so the server can set
 * the moment a colour was painted against the frames that should show it. (Date.now() can jump when the system
 * clock is adjusted; this one does not within a page.)
 */
export function epochNow(win = globalThis) {
  return win.performance.timeOrigin + win.performance.now();
}

/**
 * What the hello message says about the camera: `{label, deviceIdHash}`, the video track's label and the SHA-256
 * (hex) of its deviceId. The raw deviceId never leaves the page: it is a stable identifier of this browser's camera.
 */
export async function describeCamera(stream) {
  const track = stream && stream.getVideoTracks ? stream.getVideoTracks()[0] : null;
  if (!track) return null;
  const settings = typeof track.getSettings === 'function' ? track.getSettings() : {};
  return {
    label: String(track.label || '').slice(0, 200),
    deviceIdHash: await sha256Hex(String(settings.deviceId || '')),
  };
}

/** SHA-256 of a string, lower-case hex (crypto.subtle: a secure context, as getUserMedia needs anyway). */
export async function sha256Hex(text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The attribute that marks the light overlay (for a page's CSS, and for tests). */
export const LIGHT_OVERLAY_ATTRIBUTE = 'data-faceid-light';

/**
 * The light challenge's default surface: a fixed element over the whole viewport, on top of everything, that shows
 * each colour for its `ms`, in order, starting at the next frame. Resolves with the epoch times (`epochNow`'s
 * clock) at which each colour reached the screen, plus the time the last one ended: colours.length + 1 entries.
 *
 * Timing: a change made in one requestAnimationFrame callback is painted in that frame and on screen by the next
 * callback, so each change is stamped with the next callback's timestamp (the window's performance clock, turned
 * into epoch ms). A colour is switched one frame ahead of its end, so each lasts its `ms` within half a frame.
 * When the page is hidden, the browser runs no frames: nothing is shown and nothing is reported (the colours
 * cannot light a face from a hidden page anyway).
 *
 * `document`: another document to paint in (e.g. a window on a patient-facing monitor). `parent`: the element to
 * paint in (its document is then the one painted; default: the body), e.g. a patient-facing view that may be in full
 * screen, where only its own descendants are seen; the overlay still covers the whole viewport (position fixed: a
 * parent must not be, or sit in, a transformed, filtered or contained box).
 * `signal`: an AbortSignal; aborting removes the overlay and rejects with an AbortError.
 */
export function showLightOverlay(colours, { document: givenDoc, parent = null, signal } = {}) {
  return new Promise((resolve, reject) => {
    const list = checkColours(colours);
    if (!list) {
      reject(new TypeError('The light challenge needs colours: [{rgb: [r, g, b], ms}] with 0-255 values and ms > 0.'));
      return;
    }
    const doc = (parent && parent.ownerDocument) || givenDoc || globalThis.document;
    const win = doc.defaultView;
    const overlay = doc.createElement('div');
    overlay.setAttribute(LIGHT_OVERLAY_ATTRIBUTE, '');
    overlay.setAttribute('aria-hidden', 'true');
    // CSSOM properties, not a style attribute: allowed under a CSP without 'unsafe-inline'.
    const st = overlay.style;
    st.position = 'fixed';
    st.left = '0';
    st.top = '0';
    st.width = '100vw';
    st.height = '100vh';
    st.margin = '0';
    st.padding = '0';
    st.border = '0';
    st.zIndex = '2147483647';
    st.cursor = 'none';
    const stamps = [];
    let applied = 0; // changes made: colours shown, then the removal
    let pending = false; // a change was made in the previous frame: stamp it in this one
    let frame = 1000 / 60; // the display's frame interval, measured as we go
    let lastTs = null;
    let request = 0;
    const finish = (err) => {
      if (request) win.cancelAnimationFrame(request);
      request = 0;
      overlay.remove();
      if (signal) signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(stamps);
    };
    const onAbort = () => finish(new DOMException('The light challenge was stopped.', 'AbortError'));
    if (signal) {
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort);
    }
    const step = (ts) => {
      request = 0;
      if (lastTs !== null && ts > lastTs) frame = 0.8 * frame + 0.2 * Math.min(100, ts - lastTs);
      lastTs = ts;
      const now = win.performance.timeOrigin + ts;
      if (pending) {
        stamps.push(round1(now));
        pending = false;
        if (stamps.length === list.length + 1) {
          finish();
          return;
        }
      }
      // The next change: the first colour at once; then each when its predecessor, once this frame is on screen
      // (a frame from now), would have lasted its ms within half a frame.
      const due = applied === 0 || now + frame + frame / 2 >= stamps[applied - 1] + list[applied - 1].ms;
      if (!pending && applied === stamps.length && due) {
        if (applied < list.length) {
          const [r, g, b] = list[applied].rgb;
          st.backgroundColor = `rgb(${r}, ${g}, ${b})`;
          if (applied === 0) (parent || doc.body || doc.documentElement).append(overlay);
        } else {
          overlay.remove();
        }
        applied++;
        pending = true;
      }
      request = win.requestAnimationFrame(step);
    };
    request = win.requestAnimationFrame(step);
  });
}

/** The colours of a light challenge, checked; null when malformed. */
function checkColours(colours) {
  if (!Array.isArray(colours) || colours.length === 0 || colours.length > 64) return null;
  const byte = (v) => Number.isInteger(v) && v >= 0 && v <= 255;
  for (const c of colours) {
    if (!c || !Array.isArray(c.rgb) || c.rgb.length !== 3 || !c.rgb.every(byte)) return null;
    if (typeof c.ms !== 'number' || !Number.isFinite(c.ms) || c.ms <= 0 || c.ms > 10_000) return null;
  }
  return colours;
}

function round1(x) {
  return Math.round(x * 10) / 10;
}

const DEFAULTS = {
  /** Frames per second wanted; clamped to the server's range from `ready`. */
  fps: 10,
  /** JPEG quality 0..1 (lowered automatically when a frame exceeds the server's maxPayload). */
  jpegQuality: 0.8,
  /** Largest frame sent; a bigger camera image is scaled down to fit. */
  maxWidth: 320,
  maxHeight: 240,
  /** Camera request (ideal constraints). */
  camera: { width: 320, height: 240, frameRate: 15 },
  /** Reconnects after a dropped connection (needs getSession). */
  maxReconnects: 3,
  /** Stop the camera when the run ends (verdict, failure or cancel), also when the page passed its own stream. */
  releaseCamera: true,
  /** Skip a frame while more than this many bytes wait in the socket's send buffer (a slow network). */
  maxBufferedBytes: 64 * 1024,
  /** Sent in `hello`. */
  clientName: 'faceid-client.js/2',
  /**
   * The light challenge's surface: undefined = the built-in full-screen overlay (`showLightOverlay`), a function =
   * the page's own (`showLight(colours, {challengeId, signal})` resolving with the shown-at times), false = this
   * page has no screen facing the patient (the client then does not offer `light`).
   */
  showLight: undefined,
};

/**
 * Starts an identification: opens the camera (unless `stream` is given), connects, streams frames until the
 * verdict. Returns an Identification; `await run.done` for the verdict.
 *
 * Options:
 * - `getSession(info)`: async, returns `{wsUrl, protocols, expiresAt?, sessionId?}` (the answer of POST /sessions).
 *   Called first, before the camera opens (so a refused session, e.g. `attempts_exceeded` or `no_template`, never
 *   starts it), and again for each reconnect (`info = {attempt, closeCode, previousSessionId}`).
 * - `session`: a fixed session instead of getSession (no reconnects).
 * - `video`: a <video> to show the camera in (mirror it with CSS if you like). `stream`: an open MediaStream.
 * - `fps`, `jpegQuality`, `maxWidth`, `maxHeight`, `camera`, `maxReconnects`, `releaseCamera`.
 * - Texts: `messages` (guidance), `verdictMessages`, `reasonMessages`, merged over the English tables above.
 * - Liveness challenges: `showLight` (see DEFAULTS). `cameraInfo`: `{label, deviceIdHash}` (or `{label, deviceId}`,
 *   hashed here) to report instead of the stream's own camera (tests, or a page that knows better).
 * - Callbacks: `onState(state, detail)` (session (getSession only), camera, connecting, streaming, reconnecting,
 *   finished, failed, cancelled), `onGuidance({code, progress, message, windowMs?, box?})` (windowMs and box as the
 *   server sent them), `onChallenge(challenge)` (the server's challenge message: kind `light` or `turn`),
 *   `onBusy(retryAfterMs)`, `onServerError({code, message, seq})`, `onVerdict(verdict, {message, reason})` (the
 *   server's verdict and its texts), `onFrame(seq)`.
 *
 * Challenges: `light` fills the screen with the server's colours (frames keep flowing meanwhile), then reports
 * `light_shown` with the times each colour was painted; `turn` asks the patient (onGuidance turn_left/turn_right)
 * to turn the head to their own left or right; `blink_now` guidance asks for a blink (`blink_again` once more when
 * the first window passed without one).
 */
export function identify(options) {
  const run = new Identification(options);
  run.start();
  return run;
}

export class Identification {
  constructor(options = {}) {
    if (!options.getSession && !options.session) throw new TypeError('identify() needs getSession or session.');
    this.options = { ...DEFAULTS, ...options, camera: { ...DEFAULTS.camera, ...(options.camera || {}) } };
    this.messages = { ...GUIDANCE_MESSAGES, ...(options.messages || {}) };
    this.verdictMessages = { ...VERDICT_MESSAGES, ...(options.verdictMessages || {}) };
    this.reasonMessages = { ...REASON_MESSAGES, ...(options.reasonMessages || {}) };
    /** What hello reports about the camera ({label, deviceIdHash}), once known. */
    this.camera = null;
    /** The light challenge being shown: its AbortController. */
    this.light = null;
    /** The last progress the server gave (for guidance the client makes up itself, e.g. a turn challenge). */
    this.progress = 0;
    this.state = 'idle';
    /** The server's verdict message, once it arrived. */
    this.verdict = null;
    /** The session being streamed to (from `ready`). */
    this.sessionId = null;
    this.reconnects = 0;
    this.framesSent = 0;
    this.seq = 0;
    this.quality = this.options.jpegQuality;
    this.fps = this.options.fps;
    this.maxPayload = 256 * 1024;
    this.pausedUntil = 0;
    this.deadline = Infinity;
    this.ws = null;
    this.stream = null;
    this.video = null;
    this.grabber = null;
    this.buffer = null;
    this.timer = null;
    this.ownsVideo = false;
    this.streaming = false;
    /** stopCamera() was called: no frame is sent any more. */
    this.cameraStopped = false;
    this.ended = false;
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
  }

  async start() {
    try {
      // The session first, the camera after: a patient the server turns away (an invalid IIN, no face attempts
      // left, no reference photo) is never filmed, and the camera light never comes on for nothing.
      let session = this.options.session;
      if (!session) {
        this.setState('session');
        session = await this.options.getSession({ attempt: 0, closeCode: null, previousSessionId: null });
        if (this.ended) return;
      }
      const expires = session && session.expiresAt ? Date.parse(session.expiresAt) : NaN;
      this.deadline = Number.isFinite(expires) ? expires : Date.now() + 180_000;
      this.setState('camera');
      this.stream = this.options.stream || (await openCamera(this.options.camera));
      if (this.ended || this.cameraStopped) return this.cleanup();
      this.ownsVideo = !this.options.video;
      this.video = await attachVideo(this.stream, this.options.video);
      this.grabber = new FrameGrabber(this.video, {
        maxWidth: this.options.maxWidth,
        maxHeight: this.options.maxHeight,
      });
      this.camera = await this.cameraReport();
      if (this.ended) return this.cleanup();
      this.connect(session);
    } catch (err) {
      // Errors of getSession keep their own code (e.g. attempts_exceeded or no_template from POST /sessions), and
      // the error itself as `cause` (its body, e.g. `codeAvailable`).
      this.fail(
        err instanceof FaceIdError
          ? err
          : new FaceIdError(errorCode(err, 'start_failed'), messageOf(err), { cause: err }),
      );
    }
  }

  /** The challenges this client can run: light only with a surface to show it on. */
  capabilities() {
    const light =
      this.options.showLight !== false &&
      (typeof this.options.showLight === 'function' || typeof document !== 'undefined');
    return light ? ['blink', 'light', 'turn'] : ['blink', 'turn'];
  }

  /** hello's `camera`: the cameraInfo option, else the stream's video track. Null when it cannot be made. */
  async cameraReport() {
    const given = this.options.cameraInfo;
    try {
      if (given && typeof given.deviceIdHash === 'string') {
        return { label: String(given.label || '').slice(0, 200), deviceIdHash: given.deviceIdHash };
      }
      if (given)
        return {
          label: String(given.label || '').slice(0, 200),
          deviceIdHash: await sha256Hex(String(given.deviceId || '')),
        };
      return await describeCamera(this.stream);
    } catch (err) {
      this.call('onServerError', { code: 'client_camera_info_failed', message: messageOf(err) });
      return null;
    }
  }

  /** Ends the run: tells the server (`cancel`), closes, releases the camera. `done` resolves with null. */
  cancel() {
    if (this.ended) return;
    this.ended = true;
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: 'cancel' }));
      ws.close(1000, 'cancelled');
    } else if (ws && ws.readyState === WebSocket.CONNECTING) {
      ws.close();
    }
    this.cleanup();
    this.setState('cancelled');
    this.resolveDone(null);
  }

  /**
   * Stops sending frames and releases the camera at once, the connection staying open: for a page that must tell
   * the server something before the run ends (e.g. the patient's refusal, which the server answers by closing the
   * session). `cancel()`, or the server's close, then ends the run as usual.
   */
  stopCamera() {
    if (this.ended) return;
    this.cameraStopped = true;
    this.stopStreaming();
    this.stopLight();
    this.releaseCameraNow();
  }

  connect(session) {
    if (!session || !session.wsUrl || !Array.isArray(session.protocols)) {
      this.fail(new FaceIdError('session_invalid', 'The session has no wsUrl and protocols (from POST /sessions).'));
      return;
    }
    this.setState('connecting', { sessionId: session.sessionId || null, attempt: this.reconnects });
    let ws;
    try {
      // The token travels as a subprotocol (`token.<token>`): never in the URL.
      ws = new WebSocket(session.wsUrl, session.protocols);
    } catch (err) {
      this.fail(new FaceIdError('connect_failed', messageOf(err)));
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    // hello goes first, before any frame: the server picks the challenges from the capabilities.
    ws.onopen = () => ws.send(JSON.stringify(this.hello()));
    ws.onmessage = (ev) => this.onMessage(ws, ev);
    ws.onclose = (ev) => this.onClose(ws, ev);
    ws.onerror = () => undefined; // a close event follows, with the code
  }

  hello() {
    const hello = { type: 'hello', client: this.options.clientName, capabilities: this.capabilities() };
    if (this.camera) hello.camera = this.camera;
    return hello;
  }

  onMessage(ws, ev) {
    if (ws !== this.ws || typeof ev.data !== 'string') return;
    let m;
    try {
      m = JSON.parse(ev.data);
    } catch {
      return;
    }
    switch (m.type) {
      case 'ready':
        this.sessionId = m.sessionId;
        this.maxPayload = m.maxPayload;
        this.fps = clamp(this.options.fps, m.fps.min, m.fps.max);
        this.maxFps = m.fps.max;
        this.wipeBuffer();
        this.buffer = new Uint8Array(this.maxPayload);
        this.streaming = true;
        this.setState('streaming', { sessionId: m.sessionId, fps: this.fps });
        this.schedule(0);
        break;
      case 'guidance':
        if (typeof m.progress === 'number') this.progress = m.progress;
        this.guide(m.code, m);
        break;
      case 'challenge':
        this.call('onChallenge', m);
        if (m.kind === 'light') void this.runLight(ws, m);
        else if (m.kind === 'turn') this.guide(m.direction === 'left' ? 'turn_left' : 'turn_right');
        break;
      case 'busy':
        this.pausedUntil = performance.now() + (m.retryAfterMs || 0);
        this.call('onBusy', m.retryAfterMs);
        break;
      case 'error':
        this.call('onServerError', { code: m.code, message: m.message, seq: m.seq });
        break;
      case 'verdict':
        this.verdict = m;
        this.stopStreaming();
        this.stopLight();
        if (this.options.releaseCamera) this.releaseCameraNow();
        this.call('onVerdict', m, this.describeVerdict(m));
        break;
      default:
        break;
    }
  }

  /** The verdict in words: `{message, reason}` (reason null when the verdict gives none). */
  describeVerdict(v) {
    const reason = v && typeof v.reason === 'string' && v.reason ? this.reasonMessages[v.reason] || v.reason : null;
    return { message: this.verdictMessages[v.result] || v.result, reason };
  }

  /**
   * onGuidance's argument: `{code, progress, message}`, plus the server message's `windowMs` (ms left in the
   * current challenge) and `box` ({x, y, width, height}, 0..1 of the frame) as they came, when it had them.
   */
  guide(code, m = null) {
    const g = { code, progress: this.progress, message: this.messages[code] || code };
    if (m && m.windowMs !== undefined) g.windowMs = m.windowMs;
    if (m && m.box !== undefined) g.box = m.box;
    this.call('onGuidance', g);
  }

  /**
   * The light challenge: the colours on the page's surface (frames keep flowing meanwhile), then `light_shown`
   * with the times they were painted. A newer challenge, the verdict or the end of the connection stops it.
   */
  async runLight(ws, m) {
    this.stopLight();
    const show = this.options.showLight;
    if (show === false) return; // not offered; the server should not have asked
    const controller = new AbortController();
    this.light = controller;
    this.guide('watch_screen');
    // The server follows each colour on the face: as many frames as it accepts while the colours show.
    const normalFps = this.fps;
    if (this.maxFps) this.fps = this.maxFps;
    controller.signal.addEventListener('abort', () => (this.fps = normalFps));
    let shownAt;
    try {
      shownAt =
        typeof show === 'function'
          ? await show(m.colours, { challengeId: m.challengeId, signal: controller.signal })
          : await showLightOverlay(m.colours, { signal: controller.signal });
    } catch (err) {
      if (!controller.signal.aborted)
        this.call('onServerError', { code: 'client_light_failed', message: messageOf(err) });
      return;
    } finally {
      if (this.light === controller) this.light = null;
      // A little longer at the high rate: the camera's lag puts the last colour in later frames.
      setTimeout(() => (this.fps = normalFps), 500);
    }
    if (controller.signal.aborted || ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
    const colours = Array.isArray(m.colours) ? m.colours.length : 0;
    if (!Array.isArray(shownAt) || shownAt.length !== colours + 1 || !shownAt.every((t) => Number.isFinite(t))) {
      this.call('onServerError', {
        code: 'client_light_failed',
        message: `showLight must resolve with ${colours + 1} times.`,
      });
      return;
    }
    ws.send(JSON.stringify({ type: 'light_shown', challengeId: m.challengeId, shownAt }));
  }

  stopLight() {
    if (this.light) this.light.abort();
    this.light = null;
  }

  onClose(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.stopStreaming();
    this.stopLight();
    if (this.ended) return;
    if (this.verdict) {
      this.ended = true;
      this.cleanup();
      this.setState('finished', { result: this.verdict.result });
      this.resolveDone(this.verdict);
      return;
    }
    const code = ev.code;
    const canRetry =
      RECONNECTABLE.has(code) &&
      typeof this.options.getSession === 'function' &&
      this.reconnects < this.options.maxReconnects &&
      Date.now() + backoffMs(this.reconnects + 1) < this.deadline;
    if (canRetry) {
      void this.reconnect(code);
      return;
    }
    const [errCode, message] = CLOSE_ERRORS[code] || [
      'connection_lost',
      RECONNECTABLE.has(code) && this.reconnects > 0
        ? `The connection dropped again (close code ${code}) after ${this.reconnects} reconnect(s).`
        : `The connection dropped before a verdict (close code ${code}).`,
    ];
    this.fail(new FaceIdError(errCode, message, { closeCode: code }));
  }

  async reconnect(closeCode) {
    this.reconnects++;
    const previousSessionId = this.sessionId;
    this.setState('reconnecting', { closeCode, attempt: this.reconnects });
    await sleep(backoffMs(this.reconnects));
    if (this.ended) return;
    let session;
    try {
      session = await this.options.getSession({ attempt: this.reconnects, closeCode, previousSessionId });
    } catch (err) {
      this.fail(
        new FaceIdError('reconnect_failed', `No new session for the reconnect: ${messageOf(err)}`, {
          closeCode,
          cause: errorCode(err, null),
        }),
      );
      return;
    }
    if (this.ended) return;
    this.connect(session);
  }

  schedule(delay) {
    clearTimeout(this.timer);
    if (this.streaming && !this.cameraStopped) this.timer = setTimeout(() => void this.tick(), Math.max(0, delay));
  }

  async tick() {
    if (!this.streaming) return;
    const started = performance.now();
    const interval = 1000 / this.fps;
    if (started < this.pausedUntil) {
      this.schedule(this.pausedUntil - started);
      return;
    }
    const ws = this.ws;
    // A slow network: do not queue frames in the browser, skip this one (the server only wants the newest anyway).
    if (ws && ws.bufferedAmount <= this.options.maxBufferedBytes) {
      try {
        await this.sendFrame(ws);
      } catch (err) {
        this.call('onServerError', { code: 'client_frame_failed', message: messageOf(err) });
      }
    }
    this.schedule(interval - (performance.now() - started));
  }

  async sendFrame(ws) {
    const captureTime = epochNow(); // the clock of light_shown too
    const blob = await this.grabber.jpeg(this.quality);
    if (!blob || !this.streaming || ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
    const jpeg = new Uint8Array(await blob.arrayBuffer());
    try {
      if (!this.streaming || ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
      const total = FRAME_HEADER_BYTES + jpeg.length;
      if (total > this.maxPayload || !this.buffer) {
        this.quality = Math.max(0.3, this.quality - 0.1); // too big: smaller next time, skip this one
        return;
      }
      const message = this.buffer.subarray(0, total);
      writeFrameHeader(message, { seq: this.seq, captureTime });
      message.set(jpeg, FRAME_HEADER_BYTES);
      ws.send(message); // copies the bytes
      message.fill(0);
      this.call('onFrame', this.seq);
      this.seq = (this.seq + 1) >>> 0;
      this.framesSent++;
    } finally {
      jpeg.fill(0);
    }
  }

  stopStreaming() {
    this.streaming = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  releaseCameraNow() {
    releaseCamera(this.stream);
    if (this.video) this.video.srcObject = null;
    this.stream = null;
  }

  wipeBuffer() {
    if (this.buffer) this.buffer.fill(0);
    this.buffer = null;
  }

  cleanup() {
    this.stopStreaming();
    this.stopLight();
    this.wipeBuffer();
    if (this.grabber) this.grabber.clear();
    this.grabber = null;
    if (this.options.releaseCamera) this.releaseCameraNow();
    else if (this.ownsVideo && this.video) this.video.srcObject = null;
  }

  fail(err) {
    if (this.ended) return;
    this.ended = true;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close();
    this.ws = null;
    this.cleanup();
    this.setState('failed', { code: err.code, message: err.message });
    this.rejectDone(err);
  }

  setState(state, detail = {}) {
    this.state = state;
    this.call('onState', state, detail);
  }

  call(name, ...args) {
    const fn = this.options[name];
    if (typeof fn !== 'function') return;
    try {
      fn(...args);
    } catch (err) {
      // A page's callback must not break the session.
      console.error(`faceid-client: ${name} threw`, err);
    }
  }
}

function backoffMs(attempt) {
  return Math.min(4000, 500 * 2 ** (attempt - 1));
}

function clamp(x, lo, hi) {
  return Math.min(Math.max(x, lo), hi);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The stable `code` of an error (a FaceIdError, or one a page's getSession threw), else `fallback`. */
export function errorCode(err, fallback) {
  return err && typeof err.code === 'string' && /^[a-z][a-z0-9_]*$/.test(err.code) ? err.code : fallback;
}

function messageOf(err) {
  return err && err.message ? err.message : String(err);
}
