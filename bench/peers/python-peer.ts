import { execFile } from 'node:child_process';
import * as path from 'node:path';

/**
 * The OpenCV-Python peer (bench/peers/opencv_python.py, Debian's python3-opencv): the same chain through OpenCV's
 * Python bindings, one thread, on one frame piped to it (never written to disk).
 */

export interface PythonPeerRun {
  opencv: string;
  n: number;
  total: { median_ms: number; p99_ms: number };
  [stage: string]: unknown;
}

export type PythonPeerAnswer = { ok: true; run: PythonPeerRun } | { ok: false; reason: string };

const SCRIPT = path.join(__dirname, 'opencv_python.py');
const PYTHON = '/usr/bin/python3';

export function runPythonPeer(frame: Buffer, seconds: number, modelDir: string): Promise<PythonPeerAnswer> {
  return new Promise((resolve) => {
    const child = execFile(
      PYTHON,
      [SCRIPT, modelDir, '-', String(seconds)],
      { maxBuffer: 1 << 20, timeout: (seconds + 60) * 1000 },
      (err, stdout, stderr) => {
        if (err) {
          const reason = /No module named .cv2/.test(stderr)
            ? 'python3-opencv is not installed (apt-get install python3-opencv, or bash scripts/dev.sh setup)'
            : (stderr.trim().split('\n').pop() ?? err.message);
          resolve({ ok: false, reason });
          return;
        }
        try {
          resolve({ ok: true, run: JSON.parse(stdout) as PythonPeerRun });
        } catch {
          resolve({ ok: false, reason: 'the peer printed no JSON' });
        }
      },
    );
    child.on('error', () => undefined); // reported through the callback (e.g. no /usr/bin/python3)
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(frame);
  });
}
