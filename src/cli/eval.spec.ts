import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { FULL_STAGES } from '../engine/types';
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

/**
 * Text files hold "identity index"; the stand-in gives each identity its own axis, nudged a little per image. JPEG
 * files (the condition table's, rendered from solid colours) are told apart by their dominant channel: red = alice,
 * green = bob, blue = carol; grey shows no face.
 */
const AXES: Record<string, number> = { alice: 0, bob: 1, carol: 2 };
/** Every embedding the stand-in handed out, and every JPEG it was given: the command must zero them all. */
const handedOut: Float32Array[] = [];
const jpegsSeen: Buffer[] = [];
const mockEngine = {
  closed: false,
  async analyze(buf: Buffer, opts: { maxFaces?: number; stages?: readonly string[] }) {
    expect(opts.maxFaces).toBe(1);
    const withEmbedding = opts.stages?.includes('embedding') ?? false;
    const face = (axis: number, nudge: number, box = { x: 0, y: 0, width: 5, height: 5 }) => {
      const v = new Float32Array(3);
      v[axis] = 1;
      v[(axis + 1) % 3] = nudge;
      const n = Math.hypot(...v);
      const embedding = withEmbedding ? v.map((x) => x / n) : undefined;
      if (embedding) handedOut.push(embedding);
      return { box, score: 0.9, primary: true, embedding };
    };
    if (buf[0] === 0xff && buf[1] === 0xd8) {
      // Not zeroed here: the command must zero what it hands over even when an engine would not.
      jpegsSeen.push(buf);
      const copy = Buffer.from(buf);
      const { width = 0, height = 0 } = await sharp(copy).metadata();
      const means = (await sharp(copy).stats()).channels.slice(0, 3).map((c) => c.mean);
      copy.fill(0);
      if (Math.max(...means) - Math.min(...means) < 20) return { width, height, faces: [], timings: {} };
      const axis = means.indexOf(Math.max(...means));
      const box = { x: width / 4, y: height / 4, width: width / 2, height: height / 2 };
      return { width, height, faces: [face(axis, 0.01, box)], timings: {} };
    }
    const text = buf.toString('utf8');
    buf.fill(0);
    if (text.startsWith('corrupt')) {
      const { EngineError } = jest.requireActual('../engine/errors');
      throw new EngineError('frame_corrupt', 'The frame is not a JPEG.');
    }
    expect(withEmbedding).toBe(true);
    if (text.startsWith('noface')) return { width: 10, height: 10, faces: [], timings: {} };
    const [who, k] = text.split(' ');
    return { width: 10, height: 10, faces: [face(AXES[who], Number(k) * 0.01)], timings: {} };
  },
  async full(buf: Buffer, opts: { maxFaces?: number } = {}) {
    return mockEngine.analyze(buf, { ...opts, stages: FULL_STAGES });
  },
  async close() {
    mockEngine.closed = true;
  },
};

/** `faceid ...` through the CLI's entry in this process, its output captured (required after the engine mock). */
async function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { main } = require('./main') as typeof import('./main');
  let out = '';
  let err = '';
  const code = await main(argv, {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env,
  });
  return { code, out, err };
}

describe('faceid eval (stand-in engine)', () => {
  let dir: string;

  const write = (name: string, content: string): void => {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-eval-'));
    mockEngine.closed = false;
    handedOut.length = 0;
    jpegsSeen.length = 0;
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

describe('faceid eval --gallery/--probes and --conditions (stand-in engine)', () => {
  let dir: string;
  const write = (name: string, content: string | Buffer): void => {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  };
  const solid = (r: number, g: number, b: number) =>
    sharp({ create: { width: 96, height: 72, channels: 3, background: { r, g, b } } })
      .jpeg({ quality: 90 })
      .toBuffer();
  const zeroed = (xs: ArrayLike<number>[]) => xs.every((x) => Array.prototype.every.call(x, (v: number) => v === 0));

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-eval-gp-'));
    mockEngine.closed = false;
    handedOut.length = 0;
    jpegsSeen.length = 0;
    write('a/1.jpg', 'alice 1');
    write('a/2.jpg', 'alice 2');
    write('a/3.jpg', 'alice 3');
    write('b/1.jpg', 'bob 1');
    write('b/2.jpg', 'bob 2');
    write('c/1.jpg', 'carol 1');
    write('d/1.jpg', 'noface');
    write('f/1.jpg', 'alice 9'); // someone not enrolled who looks like alice: an impostor accepted
    write('gallery.csv', 'file,identity\na/1.jpg,alice\na/2.jpg,alice\nb/1.jpg,bob\nc/1.jpg,carol\n');
    write('probes.csv', 'file,identity\na/3.jpg,alice\nb/2.jpg,bob\nd/1.jpg,dave\nf/1.jpg,frank\n');
    write('red1.jpg', await solid(200, 40, 40));
    write('red2.jpg', await solid(190, 50, 45));
    write('green1.jpg', await solid(40, 200, 40));
    write('green2.jpg', await solid(50, 190, 60));
    write('blue1.jpg', await solid(40, 40, 200));
    write('grey1.jpg', await solid(128, 128, 128));
    write('grey2.jpg', await solid(120, 120, 120));
    write(
      'set.csv',
      'file,identity\nred1.jpg,alice\ngreen1.jpg,bob\nred2.jpg,alice\nblue1.jpg,carol\ngrey1.jpg,dave\ngreen2.jpg,bob\ngrey2.jpg,dave\n',
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('gallery and probes: one JSON object, at MATCH_THRESHOLD from the environment', async () => {
    const argv = [
      'eval',
      '--gallery',
      path.join(dir, 'gallery.csv'),
      '--probes',
      path.join(dir, 'probes.csv'),
      '--json',
    ];
    const { code, out, err } = await run(argv, { MATCH_THRESHOLD: '0.5' });
    expect(code).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]);
    expect(r).toMatchObject({
      mode: 'gallery',
      threshold: 0.5,
      threshold_source: 'MATCH_THRESHOLD',
      gallery: { images: 4, identities: 3, ftd: 0, enrolled: 3 },
      probes: 4,
      ftd: 1,
      unenrolled: 2,
      genuine: 2,
      impostor: 7,
      frr: 0,
      frr_with_ftd: 0,
      far: expect.closeTo(1 / 7, 6),
      'far_1e-3_resolved': false,
    });
    expect(r.far_ci[0]).toBeGreaterThan(0);
    expect(r.far_ci[1]).toBeLessThan(1);
    expect(r.recommended_threshold).toBe(r['threshold_at_far_1e-3']);
    expect(err).toContain('enrolling 4/4');
    expect(err).toContain('probe 4/4');
    expect(err).toMatch(/FAR 0\.001 needs at least 1000 impostor pairs, there are 7/);
    expect(handedOut.length).toBe(7);
    expect(zeroed(handedOut)).toBe(true);
    expect(mockEngine.closed).toBe(true);
  });

  it('gallery and probes: --threshold overrides, and the table says where the threshold came from', async () => {
    const argv = [
      'eval',
      '--gallery',
      path.join(dir, 'gallery.csv'),
      '--probes',
      path.join(dir, 'probes.csv'),
      '--threshold',
      '0.3',
    ];
    const { code, out } = await run(argv, { MATCH_THRESHOLD: '0.5' });
    expect(code).toBe(0);
    expect(out).toMatch(/^threshold\s+0\.3 \(--threshold\)$/m);
    expect(out).toMatch(/^FAR at threshold\s+14\.286 %\s+\(95% CI .*; 1 of 7\)$/m);
    expect(out).toMatch(/^probe failures to detect\s+1 /m);
    expect(out).toMatch(/^recommended threshold\s+\S+ \(lowest with FAR <= 1e-3 here, unresolved;/m);
  });

  it('conditions: one row per condition, the same JSON on a rerun, every embedding and frame zeroed', async () => {
    const argv = [
      'eval',
      '--manifest',
      path.join(dir, 'set.csv'),
      '--conditions',
      'clean,webcam',
      '--seed',
      '9',
      '--json',
    ];
    const first = await run(argv);
    expect(first.code).toBe(0);
    const r = JSON.parse(first.out);
    expect(r).toMatchObject({
      mode: 'conditions',
      threshold: 0.46,
      threshold_source: 'MATCH_THRESHOLD',
      seed: 9,
      images: 7,
      identities: 4,
      gallery: { images: 4, ftd: 1, enrolled: 3 },
      probes: 3,
      unframed: 1,
    });
    expect(r.conditions.map((c: { condition: string }) => c.condition)).toEqual(['clean', 'webcam']);
    for (const c of r.conditions)
      expect(c).toMatchObject({ probes: 3, ftd: 1, unenrolled: 1, genuine: 2, impostor: 4, frr: 0, far: 0 });
    expect(first.err).toContain('probe 3/3');
    expect(zeroed(handedOut)).toBe(true);
    expect(jpegsSeen.length).toBeGreaterThan(0);
    expect(zeroed(jpegsSeen)).toBe(true);
    const again = await run(argv);
    expect(again.out).toBe(first.out);
  });

  it('conditions: a markdown table by default', async () => {
    const { code, out } = await run(['eval', '--manifest', path.join(dir, 'set.csv'), '--conditions', 'jpeg,clean']);
    expect(code).toBe(0);
    const rows = out.split('\n').filter((l) => l.startsWith('| '));
    expect(rows[0]).toMatch(/^\| condition \| probes \| FTD \| FRR @0\.46 \(95% CI\) \|/);
    expect(rows.slice(1).map((l) => l.split('|')[1].trim())).toEqual(['jpeg', 'clean']);
    expect(out).toContain(
      '7 images, 4 identities; gallery: 3 enrolled (ftd 1); threshold 0.46 (MATCH_THRESHOLD); seed 1',
    );
  });

  it.each([
    [['--gallery', 'g.csv'], '--gallery and --probes go together'],
    [['--manifest', 'm.csv', '--gallery', 'g.csv', '--probes', 'p.csv'], 'not both'],
    [['--json'], '--manifest CSV is required (or --gallery CSV --probes CSV)'],
    [['--gallery', 'g.csv', '--probes', 'p.csv', '--conditions', 'all'], '--conditions needs --manifest'],
    [['--manifest', 'm.csv', '--threshold', '0.5'], '--threshold applies to'],
    [['--manifest', 'm.csv', '--seed', '3'], '--seed applies to'],
    [['--manifest', 'm.csv', '--conditions', 'clean,foggy'], 'Unknown condition "foggy"'],
    [['--manifest', 'm.csv', '--conditions', 'all', '--seed', '4294967296'], '--seed must be'],
    [['--manifest', 'm.csv', '--conditions', 'all', '--threshold', '1.5'], '--threshold must be'],
    [['--gallery', 'g.csv', '--probes', 'p.csv', '--threshold', 'abc'], '--threshold must be'],
  ])('usage error before any work: %j', async (args, message) => {
    const { code, err } = await run(['eval', ...args]);
    expect(code).toBe(2);
    expect(err).toContain(message);
    expect(handedOut.length).toBe(0);
  });
});
