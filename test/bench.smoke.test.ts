import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { compareMeasurements } from '../bench/compare';
import { missingFixture } from '../bench/lib/frames';
import { readRun } from '../bench/lib/results';
import { bucketQuantile, parsePrometheus, promBuckets, promSum, repeated } from '../bench/lib/stats';
import type { BenchRun, Measurement } from '../bench/lib/types';

// A short run of every benchmark (`bench/run.ts --smoke`, about a second per measurement) to keep the tools
// working. It checks that each one ran and wrote well-formed figures; it never judges a time.
const missing = missingFixture();
if (missing && process.env.CI) throw new Error(missing);
if (missing) console.warn(`benchmark smoke skipped: ${missing}`);

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');
const TS_NODE = ['-r', 'ts-node/register/transpile-only'];

const finiteNonNegative = (x: number | undefined) => typeof x === 'number' && Number.isFinite(x) && x >= 0;

(missing ? describe.skip : describe)('benchmark suite (smoke)', () => {
  let out: string;
  let result: BenchRun;
  let jsonFile: string;
  let mdFile: string;
  let stdout: string;

  beforeAll(async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'faceid-bench-smoke-'));
    const r = await run(process.execPath, [...TS_NODE, 'bench/run.ts', '--smoke', '--out', out], {
      cwd: ROOT,
      timeout: 300_000,
      maxBuffer: 16 << 20,
    });
    stdout = r.stdout;
    const files = fs.readdirSync(out);
    jsonFile = path.join(out, files.find((f) => f.endsWith('.json'))!);
    mdFile = path.join(out, files.find((f) => f.endsWith('.md'))!);
    result = readRun(jsonFile);
  }, 320_000);

  afterAll(() => {
    if (out) fs.rmSync(out, { recursive: true, force: true });
  });

  it('writes <date>-<commit>.json and .md, and prints the tables', () => {
    expect(path.basename(jsonFile)).toMatch(/^\d{4}-\d{2}-\d{2}-([0-9a-f]{7,}|nogit)\.json$/);
    expect(path.basename(mdFile)).toBe(path.basename(jsonFile).replace(/\.json$/, '.md'));
    const md = fs.readFileSync(mdFile, 'utf8');
    expect(stdout).toBe(md);
    for (const heading of [
      '## Engine alone',
      '## Peers',
      '## HTTP (autocannon)',
      '## WebSocket frame load: throughput',
      '## Memory with idle sessions',
      '## Presentation attacks (faceid pad-eval)',
    ]) {
      expect(md).toContain(heading);
    }
    expect(result.mode).toBe('smoke');
    expect(result.load.start).toHaveLength(3);
  });

  it("measured the engine alone and the onnxruntime peer, which gives the engine's answer", () => {
    expect(result.engine!.fullPerS.value).toBeGreaterThan(0);
    expect(result.engine!.trackPerS.value).toBeGreaterThan(0);
    const ort = result.peers.find((p) => p.name.startsWith('onnxruntime-node'))!;
    expect(ort.skipped).toBeUndefined();
    expect(ort.p50!.value).toBeGreaterThan(0);
    expect(ort.perS!.value).toBeGreaterThan(0);
    // Same models, same pre-processing: the same face and nearly the same embedding.
    expect(ort.agreement!.embeddingCosine).toBeGreaterThan(0.99);
    expect(ort.agreement!.boxIoU).toBeGreaterThan(0.95);
    const py = result.peers.find((p) => p.name.includes('Python'))!;
    if (py.skipped) expect(py.skipped).toMatch(/\S/);
    else expect(py.p50!.value).toBeGreaterThan(0);
  });

  it('ran autocannon against every HTTP endpoint, or says why not', () => {
    const byName = new Map(result.http.map((h) => [h.path, h]));
    expect(byName.get('/health')!.statuses!['200']).toBeGreaterThan(0);
    expect(byName.get('/sessions')!.statuses!['201']).toBeGreaterThan(0);
    // An enrollment is a full analysis: on a very busy machine a short run may complete few; none may fail.
    expect(Object.keys(byName.get('/patients/:iin/template')!.statuses!).filter((k) => k !== '201')).toEqual([]);
    const code = byName.get('/sessions/:id/code')!;
    if (code.skipped) expect(code.skipped).toMatch(/404/);
    else expect(finiteNonNegative(code.rps!.value)).toBe(true);
    for (const h of result.http.filter((x) => !x.skipped)) {
      expect(finiteNonNegative(h.rps!.value)).toBe(true);
      expect(h.errors).toBe(0);
    }
  });

  it("streamed real frames over each transport and read the gateway's own figures", () => {
    const transports = new Set(result.ws.map((w) => w.point.transport));
    expect(transports.has('ws')).toBe(true);
    if (!transports.has('uws')) expect(result.notes.join(' ')).toMatch(/load-uws gateway could not start/);
    for (const w of result.ws) {
      expect(w.sentPerS.value).toBeGreaterThan(0);
      expect(w.receivedPerS.value).toBeGreaterThan(0);
      expect(w.analysedPerS.value).toBeGreaterThan(0);
      expect(w.probe.n).toBeGreaterThan(0);
      expect(w.server.cpuPercent.value).toBeGreaterThan(0);
      expect(w.server.rssPeakMiB.value).toBeGreaterThan(0);
      for (const x of [w.server.eldP50, w.server.eldP99, w.server.eldMax, w.dropShare, w.fullShare]) {
        expect(finiteNonNegative(x.value)).toBe(true);
      }
      expect(w.errors).toEqual({});
      // Every frame acknowledged (hello ack: true) and timed; the gateway's CPU and engine calls per verdict.
      expect(w.frameAck!.n).toBeGreaterThan(0);
      expect(w.ackOutcomes!.analysed).toBeGreaterThan(0);
      expect(w.ackOutcomes!.refused ?? 0).toBe(0);
      expect(w.gatewayVerdicts).toBeGreaterThanOrEqual(0);
      if (w.gatewayVerdicts! > 0) expect(w.cpuMsPerVerdict!.value).toBeGreaterThan(0);
    }
    expect(fs.readFileSync(mdFile, 'utf8')).toContain(
      '## WebSocket frame load: per-frame round trip and cost per verdict',
    );
  });

  it('ran the overload phase against a gateway with admission control and one without', () => {
    const o = result.overload!;
    expect(o.capacity).toBe(result.suite.overload!.capacity);
    expect(o.points.map((p) => `${p.admission} ${p.desks}`)).toEqual(
      result.suite.overload!.loads.flatMap((load) => [`off ${load * o.capacity}`, `on ${load * o.capacity}`]),
    );
    for (const p of o.points) {
      expect(p.analysedPerS.value).toBeGreaterThan(0);
      expect(finiteNonNegative(p.verdictsPerS.value)).toBe(true);
      expect(finiteNonNegative(p.goodputPerS.value)).toBe(true);
      // Only the gateway with admission control refuses desks.
      if (p.admission === 'off') expect(p.refusals).toEqual({});
      else expect(Object.keys(p.refusals).filter((code) => code !== 'capacity_exceeded')).toEqual([]);
    }
    expect(fs.readFileSync(mdFile, 'utf8')).toContain('## Overload: admission control and goodput');
  });

  it('counted RSS with idle sessions open', () => {
    const mem = result.memory.find((m) => m.transport === 'ws')!;
    expect(mem.levels.map((l) => l.sessions)).toEqual(result.suite.memory.levels);
    for (const l of mem.levels) {
      expect(l.open).toBe(l.sessions);
      expect(l.rssMiB).toBeGreaterThan(0);
    }
    expect(mem.failures).toBe(0);
  });

  it('ran the presentation-attack benchmark through the session logic, and says the load ran the blink only', () => {
    const report = result.pad!.report!;
    expect(result.pad!.skipped).toBeUndefined();
    expect(Object.keys(report.configs)).toEqual(result.suite.pad.configs);
    for (const c of Object.values(report.configs)) {
      expect(c.genuine.attempts).toBe(result.suite.pad.attempts);
      expect(Object.keys(c.attacks).sort()).toEqual([
        'painted_blink',
        'print',
        'replay',
        'screen',
        'still',
        'tint_injector',
        'warped_photo',
      ]);
      for (const a of Object.values(c.attacks)) {
        expect(a.attempts).toBe(result.suite.pad.attempts);
        expect(a.rate).toBeGreaterThanOrEqual(0);
        expect(a.upper95).toBeGreaterThanOrEqual(a.rate);
      }
    }
    expect(result.notes.join(' ')).toMatch(/load gateways ran every session with the blink as its only challenge/);
  });

  it('skips the accuracy phase in smoke, saying why in the report', () => {
    expect(result.suite.accuracy).toBeUndefined();
    expect(result.accuracy).toEqual({ skipped: 'not in the smoke suite' });
    expect(fs.readFileSync(mdFile, 'utf8')).toContain(
      '## Accuracy at the desk (faceid eval --conditions)\n\nSkipped: not in the smoke suite.',
    );
  });

  it('lists every repeated figure once, with its repetitions and noise', () => {
    const ids = result.measurements.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(
      expect.arrayContaining(['engine.full.per_s', 'http.health.rps', 'ws.ws.c2.f10.analysed_per_s']),
    );
    for (const m of result.measurements) {
      // Memory is measured once; a repetition without a verdict or probe has no latency figure to add.
      const always = /^engine\.|\.rps$|\.analysed_per_s$/.test(m.id);
      if (m.id.startsWith('memory.')) expect(m.value.reps).toHaveLength(1);
      else if (always) expect(m.value.reps).toHaveLength(result.suite.reps);
      else expect(m.value.reps.length).toBeGreaterThanOrEqual(1);
      expect(Number.isFinite(m.value.value)).toBe(true);
      expect(finiteNonNegative(m.value.noise)).toBe(true);
    }
  });

  it('compare: a run against itself is within noise; a halved throughput is flagged worse', async () => {
    const same = compareMeasurements(result.measurements, result.measurements);
    expect(same.every((c) => c.verdict === 'within noise')).toBe(true);

    const halve = (m: Measurement): Measurement =>
      m.id === 'engine.full.per_s'
        ? { ...m, value: { ...m.value, value: m.value.value / 2, reps: m.value.reps.map((x) => x / 2) } }
        : m;
    const degraded = compareMeasurements(result.measurements.map(halve), result.measurements);
    const flagged = degraded.find((c) => c.id === 'engine.full.per_s')!;
    // Unless the smoke run's own noise exceeded 50%, in which case the halving is within it: say so.
    if (flagged.threshold < 0.5) expect(flagged.verdict).toBe('worse');
    else expect(flagged.verdict).toBe('within noise');

    const cli = await run(process.execPath, [...TS_NODE, 'bench/compare.ts', jsonFile, jsonFile], {
      cwd: ROOT,
      timeout: 60_000,
    });
    expect(cli.stdout).toMatch(/figures compared: 0 worse, 0 better/);
  });
});

describe('benchmark statistics', () => {
  it('summarises repetitions as the median and their relative range', () => {
    expect(repeated([10, 12, 11])).toMatchObject({
      value: 11,
      min: 10,
      max: 12,
      noise: round(2 / 11),
      reps: [10, 12, 11],
    });
    expect(repeated([5])).toMatchObject({ value: 5, noise: 0 });
    expect(repeated([NaN, 4, 6]).reps).toEqual([4, 6]);
  });

  it('reads counters and histogram quantiles from the Prometheus text format', () => {
    const text = [
      '# HELP faceid_frames_analysed_total Frames analysed by the engine.',
      'faceid_frames_analysed_total 42',
      'faceid_analysis_seconds_bucket{le="0.01",call="track"} 10',
      'faceid_analysis_seconds_bucket{le="0.02",call="track"} 30',
      'faceid_analysis_seconds_bucket{le="+Inf",call="track"} 40',
      'faceid_analysis_seconds_bucket{le="0.01",call="full"} 0',
      'faceid_analysis_seconds_bucket{le="0.02",call="full"} 10',
      'faceid_analysis_seconds_bucket{le="+Inf",call="full"} 10',
      'faceid_analysis_seconds_count{call="track"} 40',
    ].join('\n');
    const s = parsePrometheus(text);
    expect(promSum(s, 'faceid_frames_analysed_total')).toBe(42);
    expect(promSum(s, 'faceid_analysis_seconds_count', { call: 'track' })).toBe(40);
    const all = promBuckets(s, 'faceid_analysis_seconds');
    expect(all).toEqual([
      [0.01, 10],
      [0.02, 40],
      [Infinity, 50],
    ]);
    // The 25th of 50 lies in the (0.01, 0.02] bucket, 15 of its 30: 0.015.
    expect(bucketQuantile(all, 0.5)).toBeCloseTo(0.015, 6);
    expect(bucketQuantile(all, 0.99)).toBe(0.02); // beyond the last finite bound: that bound
  });
});

function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}
