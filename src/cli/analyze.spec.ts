import { EngineError } from '../engine/errors';
import type { Analysis } from '../engine/types';
import { analysisRecord, errorRecord } from './analyze';

function sampleAnalysis(): Analysis {
  return {
    width: 640,
    height: 480,
    faces: [
      {
        box: { x: 10, y: 20, width: 100, height: 120 },
        score: 0.99,
        primary: true,
        landmarks: new Float32Array(136).fill(1.5),
        embedding: new Float32Array(512).fill(0.04),
        liveness: 0.9,
        eyes: { left: 0.9, right: 0.8 },
        pose: { yaw: 1, pitch: 2, roll: 3 },
        quality: { faceSize: 40, sharpness: 100, brightness: 120, poseAngle: 2 },
      },
    ],
    timings: {
      decode: 1,
      detect: 2,
      landmarks: 3,
      align: 0.1,
      embedding: 4,
      liveness: 5,
      eyes: 0.2,
      quality: 0.3,
      light: 0.1,
      wipe: 0.01,
      queued: 0,
      total: 15,
    },
  };
}

describe('analysisRecord', () => {
  it('never includes embeddings, and landmarks only on request', () => {
    const plain = analysisRecord('a.jpg', sampleAnalysis(), false);
    const json = JSON.stringify(plain.faces); // (timings have keys named after the stages)
    expect(json).not.toContain('embedding');
    expect(json).not.toContain('0.04');
    expect(json).not.toContain('landmarks');
    expect(plain).toMatchObject({ file: 'a.jpg', width: 640, height: 480 });
    expect(Object.keys((plain.faces as object[])[0]).sort()).toEqual(
      ['box', 'eyes', 'liveness', 'pose', 'primary', 'quality', 'score'].sort(),
    );

    const withLm = analysisRecord('a.jpg', sampleAnalysis(), true);
    const face = (withLm.faces as Record<string, unknown>[])[0];
    expect(face.landmarks).toHaveLength(136);
    expect(Array.isArray(face.landmarks)).toBe(true);
    expect(JSON.stringify(withLm.faces)).not.toContain('embedding');
  });
});

describe('errorRecord', () => {
  it('keeps engine error codes', () => {
    expect(errorRecord('x.jpg', new EngineError('frame_corrupt', 'Not a JPEG.'))).toEqual({
      file: 'x.jpg',
      error: { code: 'frame_corrupt', message: 'Not a JPEG.' },
    });
  });

  it('maps file-system errors without echoing paths', () => {
    const enoent = Object.assign(new Error("ENOENT: no such file or directory, open 'x.jpg'"), {
      code: 'ENOENT',
      syscall: 'open',
    });
    expect(errorRecord('x.jpg', enoent).error.code).toBe('file_not_found');
    const eisdir = Object.assign(new Error('EISDIR'), { code: 'EISDIR', syscall: 'read' });
    expect(errorRecord('d', eisdir).error).toEqual({
      code: 'file_unreadable',
      message: 'Cannot read the file (EISDIR).',
    });
  });
});
