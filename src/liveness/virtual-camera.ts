/**
 * Well-known virtual cameras: drivers that show the browser whatever video a program feeds them, which is how a
 * recorded or synthetic face is injected without a screen in front of a lens. Matched on the device label the
 * browser reports, case-insensitively. Only products that exist to feed arbitrary video are listed: camera
 * utilities that merely relay a real webcam (vendor effects software, phone-as-webcam apps) are not, to keep
 * ordinary desks out of trouble.
 *
 * Chromium's fake capture device (`--use-fake-device-for-media-stream`, labels such as `fake_device_0`) is NOT
 * flagged: the project's browser tests run on it. It cannot be selected in a browser started normally.
 */
const VIRTUAL_CAMERAS: readonly { pattern: RegExp; product: string }[] = [
  { pattern: /\bobs[- ]?(virtual|camera|cam)/, product: 'OBS Virtual Camera' },
  { pattern: /\bmanycam\b/, product: 'ManyCam' },
  { pattern: /\bv4l2loopback\b|\bdummy video device\b/, product: 'v4l2loopback' },
  { pattern: /\bsnap camera\b/, product: 'Snap Camera' },
  { pattern: /\bxsplit\b/, product: 'XSplit VCam' },
  { pattern: /\be2esoft vcam\b/, product: 'e2eSoft VCam' },
  { pattern: /\byoucam\b/, product: 'CyberLink YouCam' },
  { pattern: /\bsplitcam\b/, product: 'SplitCam' },
  { pattern: /\bmmhmm\b/, product: 'mmhmm' },
  { pattern: /\bvcam\b/, product: 'VCam' },
  // The generic word, last: Streamlabs, Webcamoid/akvcam, Unity Capture and others call themselves "Virtual ...".
  { pattern: /\bvirtual\b/, product: 'Virtual camera' },
];

/** The product name when `label` names a known virtual camera, else null (an empty label is unknown, not virtual). */
export function isVirtualCamera(label: string): string | null {
  const l = label.toLowerCase();
  return VIRTUAL_CAMERAS.find((v) => v.pattern.test(l))?.product ?? null;
}
