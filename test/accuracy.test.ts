import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ManifestEntry } from '../src/cli/eval';
import { runCli } from './support/cli';
import { sharedFaces, sharedFacesMissing } from './support/shared-faces';

// `faceid eval --gallery/--probes` and `--conditions` with the real engine on the labelled face set beside the
// project (../shared/faces): per person the first photo is the reference, the others are desk probes. The bounds are
// loose on purpose: they catch a broken pipeline, not a change of model.
const missing = sharedFacesMissing();
if (missing) console.warn(`eval gallery/probes tests skipped: ${missing}`);

const run = (argv: string[]) => runCli(argv, {});

/** A file,identity CSV of absolute paths (the CSV only: the photos stay where they are). */
function csv(entries: readonly ManifestEntry[]): string {
  const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
  return ['file,identity', ...entries.map((e) => `${quote(e.path)},${quote(e.identity)}`)].join('\n');
}

(missing ? describe.skip : describe)('faceid eval on the labelled face set (real engine)', () => {
  let dir: string;
  let gallery: ManifestEntry[];
  let probes: ManifestEntry[];

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-accuracy-'));
    const seen = new Set<string>();
    gallery = [];
    probes = [];
    for (const e of sharedFaces()) {
      if (seen.has(e.identity)) probes.push(e);
      else {
        seen.add(e.identity);
        gallery.push(e);
      }
    }
    fs.writeFileSync(path.join(dir, 'gallery.csv'), csv(gallery));
    fs.writeFileSync(path.join(dir, 'probes.csv'), csv(probes));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('gallery and probes: every person enrolled, probes found, genuine and impostor scores well apart', async () => {
    const { code, out, err } = await run([
      'eval',
      '--gallery',
      path.join(dir, 'gallery.csv'),
      '--probes',
      path.join(dir, 'probes.csv'),
      '--json',
      '--concurrency',
      '2',
    ]);
    expect({ code, err: code === 0 ? '' : err }).toEqual({ code: 0, err: '' });
    const r = JSON.parse(out);
    expect(r.threshold).toBe(0.46);
    expect(r.threshold_source).toBe('MATCH_THRESHOLD');
    expect(r.gallery).toEqual({ images: gallery.length, identities: gallery.length, ftd: 0, enrolled: gallery.length });
    expect(r.probes).toBe(probes.length);
    expect(r.ftd).toBeLessThanOrEqual(1);
    expect(r.genuine).toBe(probes.length - r.ftd);
    expect(r.impostor).toBe((probes.length - r.ftd) * (gallery.length - 1));
    expect(r['far_1e-3_resolved']).toBe(true);
    expect(r.far).toBeLessThanOrEqual(0.01);
    expect(r.frr).toBeLessThanOrEqual(0.1);
    expect(r.frr_ci[0]).toBeLessThanOrEqual(r.frr);
    expect(r.frr_ci[1]).toBeGreaterThanOrEqual(r.frr);
    expect(r.dprime).toBeGreaterThan(4);
    expect(r.genuine_mean).toBeGreaterThan(0.55);
    expect(r.impostor_mean).toBeLessThan(0.15);
    expect(r.recommended_threshold).toBeGreaterThan(r.impostor_mean);
  }, 180_000);

  it('conditions: the same table twice for one seed, and a clean probe is always found', async () => {
    // The three people with the fewest photos (two or more): a few probes, to keep the test short.
    const counts = new Map<string, number>();
    for (const e of sharedFaces()) counts.set(e.identity, (counts.get(e.identity) ?? 0) + 1);
    const people = [...counts.entries()]
      .filter(([, n]) => n >= 2)
      .sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))
      .slice(0, 3)
      .map(([id]) => id);
    const subset = sharedFaces().filter((e) => people.includes(e.identity));
    fs.writeFileSync(path.join(dir, 'subset.csv'), csv(subset));
    const argv = [
      'eval',
      '--manifest',
      path.join(dir, 'subset.csv'),
      '--conditions',
      'clean,webcam',
      '--seed',
      '3',
      '--json',
    ];
    const first = await run(argv);
    expect(first.code).toBe(0);
    const r = JSON.parse(first.out);
    expect(r.conditions.map((c: { condition: string }) => c.condition)).toEqual(['clean', 'webcam']);
    expect(r.probes).toBe(subset.length - people.length);
    expect(r.conditions[0].ftd).toBe(0);
    expect(r.conditions[0].genuine).toBe(r.probes);
    const again = await run(argv);
    expect(again.out).toBe(first.out);
  }, 180_000);
});
