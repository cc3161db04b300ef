import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mapLimit, parseCsv, parseManifest } from './eval';

describe('parseCsv', () => {
  it('reads plain rows with LF or CRLF and skips blank lines', () => {
    expect(parseCsv('a,b\n1,2\r\n\n3,4')).toEqual([
      ['a', 'b'],
      ['1', '2'],
      ['3', '4'],
    ]);
  });

  it('handles quoted fields with commas, quotes and line breaks', () => {
    expect(parseCsv('file,identity\n"a,b.jpg","O""Brien"\n"multi\nline",x\n')).toEqual([
      ['file', 'identity'],
      ['a,b.jpg', 'O"Brien'],
      ['multi\nline', 'x'],
    ]);
  });

  it('keeps empty fields, quoted or not', () => {
    expect(parseCsv('a,,c\n"",x,\n')).toEqual([
      ['a', '', 'c'],
      ['', 'x', ''],
    ]);
  });

  it('ignores a UTF-8 BOM', () => {
    expect(parseCsv('\ufefffile,identity\n')).toEqual([['file', 'identity']]);
  });

  it('throws on an unclosed quote or text after a closing quote', () => {
    expect(() => parseCsv('a,"b\n')).toThrow(/never closed/);
    expect(() => parseCsv('"a"b,c\n')).toThrow(/after a closing quote/);
  });
});

describe('parseManifest', () => {
  const dir = path.resolve('/data/set');

  it('finds the columns by name, resolves files against the folder and ignores other columns', () => {
    const m = parseManifest('source,Identity,file\nweb,alice,a/1.jpg\nweb,,group.jpg\n"x,y", bob ,"b/2,x.jpg"\n', dir);
    expect(m).toEqual([
      { file: 'a/1.jpg', path: path.join(dir, 'a/1.jpg'), identity: 'alice' },
      { file: 'group.jpg', path: path.join(dir, 'group.jpg'), identity: '' },
      { file: 'b/2,x.jpg', path: path.join(dir, 'b/2,x.jpg'), identity: 'bob' },
    ]);
  });

  it('treats a missing identity cell as unlabelled', () => {
    expect(parseManifest('file,identity\nz.jpg\n', dir)[0].identity).toBe('');
  });

  it('requires the file and identity columns', () => {
    expect(() => parseManifest('path,identity\nx,y\n', dir)).toThrow(/"file" and "identity"/);
    expect(() => parseManifest('', dir)).toThrow(/empty/);
    expect(() => parseManifest('file,identity\n,alice\n', dir)).toThrow(/row 2/);
  });
});

describe('mapLimit', () => {
  it('keeps order and never exceeds the limit', async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], 2, async (x) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, x));
      inFlight--;
      return x * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(peak).toBe(2);
  });

  it('handles an empty list', async () => {
    expect(await mapLimit([], 4, async (x) => x)).toEqual([]);
  });
});

// ---- the whole command, on a stand-in engine (the native addon and the models are not needed) ----

jest.mock('../engine/engine', () => {
  const actual = jest.requireActual('../engine/engine');
  return { ...actual, FaceEngine: { open: jest.fn(async () => mockEngine) } };
});

/** Files hold "identity index"; the stand-in gives each identity its own axis, nudged a little per image. */
const AXES: Record<string, number> = { alice: 0, bob: 1, carol: 2 };
const mockEngine = {
  closed: false,
  async analyze(buf: Buffer, opts: { maxFaces?: number; stages?: readonly string[] }) {
    const text = buf.toString('utf8');
    buf.fill(0);
    if (text.startsWith('corrupt')) {
      const { EngineError } = jest.requireActual('../engine/errors');
      throw new EngineError('frame_corrupt', 'The frame is not a JPEG.');
    }
    expect(opts.maxFaces).toBe(1);
    expect(opts.stages).toContain('embedding');
    if (text.startsWith('noface')) return { width: 10, height: 10, faces: [], timings: {} };
    const [who, k] = text.split(' ');
    const v = new Float32Array(3);
    v[AXES[who]] = 1;
    v[(AXES[who] + 1) % 3] = Number(k) * 0.01;
    const n = Math.hypot(...v);
    const embedding = v.map((x) => x / n);
    const face = { box: { x: 0, y: 0, width: 5, height: 5 }, score: 0.9, primary: true, embedding };
    return { width: 10, height: 10, faces: [face], timings: {} };
  },
  async close() {
    mockEngine.closed = true;
  },
};

describe('faceid eval (stand-in engine)', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { main } = require('./main') as typeof import('./main');
  let dir: string;

  const write = (name: string, content: string): void => {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  };
  const run = async (argv: string[]) => {
    let out = '';
    let err = '';
    const code = await main(argv, {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
    });
    return { code, out, err };
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-eval-'));
    mockEngine.closed = false;
    write('a/1.jpg', 'alice 1');
    write('a/2.jpg', 'alice 2');
    write('a/3.jpg', 'alice 3');
    write('b/1.jpg', 'bob 1');
    write('b/2.jpg', 'bob 2');
    write('c/1.jpg', 'carol 1');
    write('d/1.jpg', 'noface');
    write('group.jpg', 'corrupt: unlabelled images are never read');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const manifest = [
    'file,identity,source',
    'a/1.jpg,alice,x',
    '"a/2.jpg",alice,"y,z"',
    'a/3.jpg,alice,',
    'b/1.jpg,bob,',
    'b/2.jpg,bob,',
    'c/1.jpg,carol,',
    'd/1.jpg,dave,',
    'group.jpg,,',
  ].join('\n');

  it('prints exactly one JSON object with the agreed keys', async () => {
    write('m.csv', manifest);
    const argv = ['eval', '--manifest', path.join(dir, 'm.csv'), '--json', '--concurrency', '3'];
    const { code, out, err } = await run(argv);
    expect(code).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]);
    expect(Object.keys(r).sort()).toEqual(
      [
        'images',
        'identities',
        'ftd',
        'genuine',
        'impostor',
        'eer',
        'threshold_at_eer',
        'tar_at_far_1e-2',
        'tar_at_far_1e-3',
        'threshold_at_far_1e-3',
        'dprime',
        'genuine_mean',
        'impostor_mean',
      ].sort(),
    );
    // 7 labelled images, 4 identities, dave has no face: 6 templates, 3+1 genuine pairs, 15-4 impostor pairs
    expect(r).toMatchObject({ images: 7, identities: 4, ftd: 1, genuine: 4, impostor: 11, eer: 0 });
    expect(r['tar_at_far_1e-2']).toBe(1);
    expect(r['tar_at_far_1e-3']).toBe(1);
    expect(r.dprime).toBeGreaterThan(10);
    expect(r.genuine_mean).toBeGreaterThan(0.99);
    expect(err).toContain('embedding 7/7');
    expect(err).toMatch(/FAR 0\.001 needs at least 1000 impostor pairs, there are 11/);
    expect(mockEngine.closed).toBe(true);
  });

  it('prints a table by default, and counts unreadable images in ftd with exit code 1', async () => {
    write('m.csv', manifest.replace('d/1.jpg,dave,', 'd/1.jpg,dave,\ne/1.jpg,erin,'));
    write('e/1.jpg', 'corrupt');
    const { code, out, err } = await run(['eval', '--manifest', path.join(dir, 'm.csv')]);
    expect(code).toBe(1);
    expect(out).toMatch(/^failures to detect \(ftd\)\s+2 /m);
    expect(out).toMatch(/^EER\s+0\.000 %/m);
    expect(out).toMatch(/^identities\s+5$/m);
    expect(err).toContain('e/1.jpg: frame_corrupt');
  });

  it('fails cleanly on a missing manifest', async () => {
    const { code, err } = await run(['eval', '--manifest', path.join(dir, 'nope.csv')]);
    expect(code).toBe(1);
    expect(err).toContain('ENOENT');
  });
});
