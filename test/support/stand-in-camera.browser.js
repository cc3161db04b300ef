'use strict';
/*
 * A TEST DOUBLE of a real face in front of a webcam, lit by the screen, for the browser tests (never served by the
 * gateway: test/support/stand-in-camera.ts injects it into test pages with addInitScript).
 *
 * Chromium's fake camera plays a fixed video: it cannot see the screen, so it cannot answer the light challenge. This
 * script replaces navigator.mediaDevices.getUserMedia with a canvas.captureStream() that draws the patient's photo
 * frames and reacts to the page the way a person and a webcam would:
 *
 * - Light: while the client's light overlay shows colour C, the face (an ellipse around it in the current frame)
 *   gets brighter by C x gain, shaded like a rounded face lit from the front (the nose and the middle of the face
 *   most, the cheeks and the forehead's edges less), and the rest of the frame (the wall) by about 1/15 of that.
 *   The camera sees the change `lagMs` after the page painted it (exposure and the capture pipeline).
 * - Blink: while the page asks for a blink (#guidance data-code="blink_now", or "blink_again"), the eyes close for `blinkMs` after a
 *   reaction time, and again every `blinkEveryMs` while the prompt stays.
 * - A live person moves a little: the open-eyed frames (crops shifted by 1%) take turns every 250 ms.
 *
 * Behaviours switch these off one by one: a still photo (one frame, no light, no blink), a photo with painted
 * blinks (no light), a replay tinted evenly by the colours (`lightOn: 'frame'`). The track reports `label` and a
 * `deviceId` like a real camera's.
 *
 * Called as installStandInCamera(config); config is documented in stand-in-camera.ts (StandInConfig).
 */
// eslint-disable-next-line @typescript-eslint/no-unused-vars -- called from the page once injected
function installStandInCamera(config) {
  const media = navigator.mediaDevices;
  if (!media) return;
  /** For the tests' diagnostics: the colours seen on the page, and the blinks drawn. */
  const log = (window.standInCamera = { light: [], blinks: 0, requests: 0 });

  // --- What the camera sees of the screen: the light overlay's colour, as the page changes it -------------------
  let lastKey = 'none';
  const noteLight = () => {
    const el = document.querySelector('[data-faceid-light]');
    const m = el && el.isConnected ? /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(el.style.backgroundColor) : null;
    const rgb = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
    const key = rgb ? rgb.join(',') : 'none';
    if (key === lastKey) return;
    lastKey = key;
    log.light.push({ t: performance.now(), rgb });
  };
  new MutationObserver(noteLight).observe(document, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ['style'],
  });

  /** The screen colour the camera sees at `t`: the one painted at least lagMs before. */
  const lightAt = (t) => {
    let rgb = null;
    for (const e of log.light) {
      if (e.t > t - config.lagMs) break;
      rgb = e.rgb;
    }
    return rgb;
  };

  // --- The patient: blinks when asked ---------------------------------------------------------------------------
  let promptSince = null;
  let nextBlink = Infinity;
  let blinkUntil = 0;
  const eyesClosed = (t) => {
    if (!config.blink) return false;
    const g = document.getElementById('guidance');
    const asked = Boolean(g && (g.dataset.code === 'blink_now' || g.dataset.code === 'blink_again'));
    if (!asked) {
      promptSince = null;
      nextBlink = Infinity;
    } else if (promptSince === null) {
      promptSince = t;
      nextBlink = t + config.reactionMs;
    }
    if (t >= nextBlink) {
      blinkUntil = t + config.blinkMs;
      nextBlink = t + config.blinkEveryMs;
      log.blinks++;
    }
    return t < blinkUntil;
  };

  // --- The frames, and the light each one takes ------------------------------------------------------------------
  let loading = null;
  const load = () =>
    (loading ||= (async () => {
      const bitmap = async (url) => createImageBitmap(await (await fetch(url, { cache: 'no-store' })).blob());
      const open = await Promise.all(config.open.map(bitmap));
      const closed = await Promise.all(config.closed.map(bitmap));
      return { open, closed, masks: config.faces.map(shadingMask) };
    })());

  /**
   * How much of the screen's light each pixel of frame k sends back, as the alpha of a canvas: a rounded face
   * (an ellipsoid about as deep as it is wide, lit from straight ahead: Lambert's cosine), a nose that stands out, a soft
   * edge, and the wall around at 1/15.
   */
  function shadingMask(face) {
    const { width, height } = config;
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext('2d');
    const img = ctx.createImageData(width, height);
    const depth = config.depth * face.rx;
    const sigma = 0.16 * face.rx;
    const cos = Math.cos(face.angle);
    const sin = Math.sin(face.angle);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        // In the face's own axes: across along the eye line, down perpendicular to it.
        const ex = x + 0.5 - face.cx;
        const ey = y + 0.5 - face.cy;
        const u = (ex * cos + ey * sin) / face.rx;
        const v = (-ex * sin + ey * cos) / face.ry;
        const r2 = u * u + v * v;
        let w = config.surround;
        if (config.lightOn === 'frame') {
          w = 1; // evenly: a tint over the whole picture
        } else if (r2 < 1.2) {
          const s = Math.sqrt(Math.max(0, 1 - Math.min(r2, 1)));
          const nu = u / face.rx;
          const nv = v / face.ry;
          const nz = s / depth;
          const lambert = nz / Math.sqrt(nu * nu + nv * nv + nz * nz || 1);
          const dx = x + 0.5 - face.noseX;
          const dy = y + 0.5 - face.noseY;
          const nose = config.nose * Math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
          const inside = Math.max(0, Math.min(1, (1.2 - r2) / 0.2)); // soft edge from r = 1 to 1.1
          const lit = (Math.pow(lambert, config.shadingPower) + nose) / (1 + config.nose); // 1 at the nose tip
          w = config.surround + inside * (lit - config.surround);
        }
        img.data[(y * width + x) * 4 + 3] = Math.max(0, Math.min(255, Math.round(255 * w)));
      }
    }
    ctx.putImageData(img, 0, 0);
    return canvas;
  }

  // --- getUserMedia: the stand-in camera ----------------------------------------------------------------------------
  media.getUserMedia = async (constraints) => {
    log.requests++;
    if (!constraints || !constraints.video)
      throw new DOMException('The stand-in camera has video only.', 'NotFoundError');
    const frames = await load();
    const { width, height } = config;
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext('2d', { alpha: false });
    const light = document.createElement('canvas');
    light.width = width;
    light.height = height;
    const lctx = light.getContext('2d');
    const stream = canvas.captureStream(config.fps);
    const track = stream.getVideoTracks()[0];
    Object.defineProperty(track, 'label', { value: config.label, configurable: true });
    const settings = track.getSettings.bind(track);
    track.getSettings = () => ({ ...settings(), deviceId: config.deviceId, groupId: 'stand-in' });

    const draw = () => {
      const t = performance.now();
      const k = config.still ? 0 : Math.floor(t / 250) % frames.open.length;
      const closed = eyesClosed(t);
      ctx.globalCompositeOperation = 'source-over';
      ctx.drawImage(closed ? frames.closed[k] : frames.open[k], 0, 0, width, height);
      const rgb = config.light ? lightAt(t) : null;
      if (rgb) {
        // The light as a colour with the mask's alpha, added onto the frame.
        lctx.globalCompositeOperation = 'copy';
        lctx.drawImage(frames.masks[k], 0, 0);
        lctx.globalCompositeOperation = 'source-in';
        const [r, g, b] = rgb.map((c) => Math.round(Math.min(255, c * config.gain)));
        lctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
        lctx.fillRect(0, 0, width, height);
        ctx.globalCompositeOperation = 'lighter';
        ctx.drawImage(light, 0, 0);
        ctx.globalCompositeOperation = 'source-over';
      }
    };
    draw();
    const timer = setInterval(() => {
      if (track.readyState === 'ended') {
        clearInterval(timer);
        return;
      }
      draw();
    }, 1000 / config.fps);
    return stream;
  };
}
