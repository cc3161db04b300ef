import { repeated, type Repeated } from './stats';
import type { BenchRun, Measurement, WsPoint } from './types';

/** Every figure of a run that bench:compare can compare, flat, with a stable id and its better direction. */

const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_|_$/g, '');

export const pointId = (p: WsPoint) =>
  `ws.${p.transport}.c${p.connections}.${p.fps === 'closed' ? 'closed' : `f${p.fps}`}`;

export function collectMeasurements(run: Omit<BenchRun, 'measurements'>): Measurement[] {
  const out: Measurement[] = [];
  const add = (
    id: string,
    label: string,
    unit: string,
    better: 'higher' | 'lower',
    value: Repeated | undefined | null,
  ) => {
    if (value && Number.isFinite(value.value)) out.push({ id, label, unit, better, value });
  };

  const e = run.engine;
  if (e) {
    add('engine.track.p50', 'engine track call p50', 'ms', 'lower', e.trackP50);
    add('engine.track.p99', 'engine track call p99', 'ms', 'lower', e.trackP99);
    add('engine.full.p50', 'engine full call p50', 'ms', 'lower', e.fullP50);
    add('engine.full.p99', 'engine full call p99', 'ms', 'lower', e.fullP99);
    add('engine.track.per_s', 'engine track calls/s', '/s', 'higher', e.trackPerS);
    add('engine.full.per_s', 'engine full calls/s', '/s', 'higher', e.fullPerS);
  }
  for (const p of run.peers) {
    add(`peer.${slug(p.name)}.p50`, `${p.name} chain p50`, 'ms', 'lower', p.p50);
    add(`peer.${slug(p.name)}.per_s`, `${p.name} chains/s`, '/s', 'higher', p.perS);
  }
  for (const h of run.http) {
    const id = `http.${slug(h.name)}`;
    add(`${id}.rps`, `HTTP ${h.name} req/s`, '/s', 'higher', h.rps);
    add(`${id}.p50`, `HTTP ${h.name} p50`, 'ms', 'lower', h.p50);
    add(`${id}.p99`, `HTTP ${h.name} p99`, 'ms', 'lower', h.p99);
  }
  for (const w of run.ws) {
    const id = pointId(w.point);
    const name = `${w.point.transport} ${w.point.connections} sessions @ ${w.point.fps} fps`;
    add(`${id}.analysed_per_s`, `${name}: analysed/s`, '/s', 'higher', w.analysedPerS);
    add(`${id}.ttv_p50`, `${name}: time to verdict p50`, 'ms', 'lower', w.timeToVerdictP50);
    add(`${id}.probe_p99`, `${name}: probe round trip p99`, 'ms', 'lower', w.probeP99);
    add(`${id}.frame_ack_p99`, `${name}: frame to ack p99`, 'ms', 'lower', w.frameAckP99);
    add(`${id}.cpu_ms_per_verdict`, `${name}: gateway CPU per verdict`, 'ms', 'lower', w.cpuMsPerVerdict);
    add(`${id}.eld_p99`, `${name}: gateway event-loop delay p99`, 'ms', 'lower', w.server.eldP99);
    add(`${id}.cpu`, `${name}: gateway CPU`, '%', 'lower', w.server.cpuPercent);
    add(`${id}.rss`, `${name}: gateway RSS peak`, 'MiB', 'lower', w.server.rssPeakMiB);
  }
  if (run.overload) {
    for (const p of run.overload.points) {
      const id = `overload.${p.admission}.x${p.load}`;
      const name = `overload, admission ${p.admission}, ${p.desks} desks`;
      add(`${id}.goodput`, `${name}: goodput (match/s)`, '/s', 'higher', p.goodputPerS);
    }
    add(
      'overload.on.goodput_ratio',
      'overload: goodput ratio, admission on',
      '',
      'higher',
      run.overload.goodputRatio.on,
    );
  }
  // The pad phase: its time to verdict (virtual clock: changes only when the session logic does) and its engine time
  // per verdict, measured once. Its APCER and BPCER are counts over a few sessions, not timings with a run-to-run
  // noise: they stay in `pad` and the report, where their 95% bounds say what they can tell.
  for (const [name, c] of Object.entries(run.pad?.report?.configs ?? {})) {
    const id = `pad.${slug(name)}.genuine`;
    add(
      `${id}.ttv_p50`,
      `pad ${name}: genuine first frame to verdict p50 (virtual clock)`,
      'ms',
      'lower',
      repeated([c.genuine.sessionMs.p50], 0),
    );
    add(
      `${id}.engine_ms`,
      `pad ${name}: engine time per genuine verdict`,
      'ms',
      'lower',
      repeated([c.genuine.engineMsPerVerdict], 1),
    );
  }
  // The accuracy phase: per condition, d' and the genuine mean (measured once; they change only with the engine, the
  // conditions or the seed). Its FRR and FAR are counts over a few dozen probes: they stay in `accuracy` and the report.
  for (const c of run.accuracy?.report?.conditions ?? []) {
    const id = `accuracy.${slug(c.condition)}`;
    if (c.dprime !== null) add(`${id}.dprime`, `accuracy ${c.condition}: d'`, '', 'higher', repeated([c.dprime], 3));
    if (c.genuine_mean !== null)
      add(
        `${id}.genuine_mean`,
        `accuracy ${c.condition}: genuine score mean`,
        '',
        'higher',
        repeated([c.genuine_mean], 4),
      );
  }
  for (const m of run.memory) {
    for (const l of m.levels) {
      add(
        `memory.${m.transport}.rss_${l.sessions}`,
        `RSS with ${l.sessions} idle sessions (${m.transport})`,
        'MiB',
        'lower',
        repeated([l.rssMiB], 1),
      );
    }
  }
  return out;
}
