import { conditionTable } from '../../src/accuracy/report';
import type { ClassReport } from '../../src/cli/pad-eval';
import type { Latency, Repeated } from './stats';
import type { BenchRun, FleetResult, OverloadResult, WsResult } from './types';

/** The markdown tables of a run (bench/results/<date>-<commit>.md). */

/** A repeated figure: the median of the repetitions, and their spread as ±(max-min)/median. */
export function fmtRep(r: Repeated | null | undefined, digits = 1): string {
  if (!r || !Number.isFinite(r.value)) return '—';
  const v = r.value.toFixed(digits);
  if (r.reps.length < 2 || !Number.isFinite(r.noise)) return v;
  return `${v} ±${Math.round(r.noise * 100)}%`;
}

/** CPU taken by other processes: small and bursty, so the median and the worst repetition, not a relative spread. */
function fmtOther(r: Repeated | null | undefined): string {
  if (!r || !Number.isFinite(r.value)) return '—';
  return r.reps.length < 2 ? r.value.toFixed(0) : `${r.value.toFixed(0)} (max ${r.max.toFixed(0)})`;
}

function fmt(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);
}

function fmtLatency(l: Latency, digits = 1, scale = 1): string {
  if (l.n === 0) return '—';
  return `${fmt(l.p50 / scale, digits)} / ${fmt(l.p99 / scale, digits)}`;
}

function fmtP50P95P99(l: Latency | undefined, digits = 1): string {
  if (!l || l.n === 0) return '—';
  return `${fmt(l.p50, digits)} / ${fmt(l.p95 ?? NaN, digits)} / ${fmt(l.p99, digits)}`;
}

/** Ack outcomes of a point: analysed, dropped, refused, then frames left without an ack. */
function fmtAcks(w: WsResult): string {
  const o = w.ackOutcomes;
  if (!o) return '—';
  const n = (k: string) => o[k] ?? 0;
  const unacked = (w.ackPending ?? 0) + (w.ackLost ?? 0);
  return `${n('analysed')} / ${n('dropped')} / ${n('refused')}${unacked ? ` (${w.ackPending ?? 0} pending, ${w.ackLost ?? 0} lost)` : ''}`;
}

function fmtP50P95(l: Latency, digits = 2, scale = 1000): string {
  if (l.n === 0) return '—';
  return `${fmt(l.p50 / scale, digits)} / ${fmt((l.p95 ?? NaN) / scale, digits)}`;
}

/** The fleet phase: one gateway against three behind HAProxy, the same desks. */
export function renderFleet(f: FleetResult): string[] {
  if (f.skipped) return [`Skipped: ${f.skipped}.`];
  return [
    table(
      [
        'gateways',
        'desks',
        'goodput (match/s)',
        'verdicts/s',
        'time to verdict p50 / p95 s (n)',
        '503 refusals',
        'engine busy',
        'unfinished',
        'verdicts per gateway',
        'gateways CPU %',
        'other processes CPU %',
      ],
      f.points.map((p) => [
        p.target === 'one' ? '1, directly' : '3 + HAProxy',
        String(p.desks),
        fmtRep(p.goodputPerS, 2),
        fmtRep(p.verdictsPerS, 2),
        `${fmtP50P95(p.timeToVerdict)} (${p.timeToVerdict.n})`,
        String(p.refused),
        String(p.busy),
        String(p.unfinished),
        p.verdictsPerGateway.join(' / '),
        fmtRep(p.gatewayCpuPercent, 0),
        fmtOther(p.otherCpuPercent),
      ]),
    ),
    '',
    `FACE_SESSIONS_MAX ${f.capacity} on each gateway (the default). All of them share this machine's ${f.cores} cores: ` +
      "three gateways here show the fleet's overhead and how HAProxy spreads the desks, not more throughput.",
  ];
}

/** The overload phase: goodput with and without admission control. */
export function renderOverload(o: OverloadResult, loads: number[]): string[] {
  const out: string[] = [];
  out.push(
    table(
      [
        'admission',
        'desks',
        'verdicts/s',
        'goodput (match/s)',
        'time to verdict p50 / p95 s (n)',
        'visit to verdict p50 / p95 s',
        'wait for admission p50 / p95 s',
        '503 refusals',
        'engine busy',
        'unfinished, waiting',
        'verdicts',
        'analysed/s',
        'gateway CPU %',
        'other processes CPU %',
      ],
      o.points.map((p) => [
        p.admission === 'on' ? `on (${o.capacity})` : 'off',
        `${p.desks} (${fmt(p.load, 0)} x C)`,
        fmtRep(p.verdictsPerS, 2),
        fmtRep(p.goodputPerS, 2),
        `${fmtP50P95(p.timeToVerdict)} (${p.timeToVerdict.n})`,
        fmtP50P95(p.visitToVerdict),
        fmtP50P95(p.admissionWait),
        String(p.refused),
        String(p.busy),
        `${p.unfinished}, ${p.waiting}`,
        counts(p.verdicts),
        fmtRep(p.analysedPerS),
        fmtRep(p.gatewayCpuPercent, 0),
        fmtOther(p.otherCpuPercent),
      ]),
    ),
  );
  const hi = loads[loads.length - 1];
  out.push(
    '',
    `Goodput at ${hi} x C over goodput at ${loads[0]} x C (C = ${o.capacity}, FACE_SESSIONS_MAX, ${o.engineWorkers} engine ` +
      `workers; the same round's repetitions): admission on **${fmtRep(o.goodputRatio.on, 2)}**, off ${fmtRep(o.goodputRatio.off, 2)}.`,
    '',
    '- *desks*: each runs one face session after another at ' +
      `${o.fps} fps with a patient of its own who blinks when asked; a desk refused with 503 waits the time it was ` +
      'given (`retryAfterMs`) and asks again, as a desk would. *goodput*: `match` verdicts per second (every patient is ' +
      'enrolled and genuine: any other verdict is a failure). *time to verdict*: first frame to verdict; *visit to ' +
      'verdict*: the first POST /sessions to the verdict, waits for admission included; *wait for admission*: first ' +
      'POST /sessions to the one that admitted. *unfinished*: sessions streaming without a verdict when the windows ' +
      'closed; *waiting*: desks waiting to be admitted then.',
  );
  const errs = o.points.filter((p) => Object.keys(p.errors).length || Object.keys(p.refusals).length);
  for (const p of errs) {
    out.push(
      `- admission ${p.admission}, ${p.desks} desks: refusals ${counts(p.refusals)}; errors ${counts(p.errors)}`,
    );
  }
  return out;
}

function counts(c: Record<string, number>): string {
  const entries = Object.entries(c).sort((a, b) => b[1] - a[1]);
  return entries.length ? entries.map(([k, v]) => `${k} ${v}`).join(', ') : '—';
}

function table(header: string[], rows: string[][], align?: string[]): string {
  const sep = align ?? header.map((_, i) => (i === 0 ? '---' : '---:'));
  return [header, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

const fpsText = (w: WsResult) => (w.point.fps === 'closed' ? 'closed loop' : String(w.point.fps));

export function renderMarkdown(run: BenchRun): string {
  const out: string[] = [];
  const m = run.machine;
  const la = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' / ');
  out.push(
    `# faceid-gateway benchmarks: ${run.mode} suite, ${run.startedAt.slice(0, 10)}, commit ${run.commit}${run.dirty ? ' (uncommitted changes)' : ''}`,
  );
  out.push('');
  out.push(
    table(
      ['', ''],
      [
        ['machine', `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}`],
        ['software', `Node ${m.node}, OpenCV ${m.opencv}`],
        ['load average (1 / 5 / 15 min)', `start ${la(run.load.start)}; end ${la(run.load.end)}`],
        ['1-min load at each phase', run.load.phases.map((p) => `${p.phase} ${p.load1.toFixed(2)}`).join('; ')],
        [
          'suite',
          `${run.suite.reps} repetitions of every measurement, interleaved; engine/peers ${run.suite.engineSeconds} s, ` +
            `HTTP ${run.suite.httpSeconds} s, WebSocket ${run.suite.ws.warmupSeconds} s warm-up + ${run.suite.ws.measureSeconds} s ` +
            `per repetition; ${Math.round(run.durationSeconds)} s in all`,
        ],
      ],
      ['---', '---'],
    ),
  );
  out.push('');
  out.push(
    'Figures are the median of the repetitions; ±N% is their spread, (max − min) / median: the run-to-run noise.',
  );

  const e = run.engine;
  if (e) {
    out.push('', '## Engine alone (same frames, in process)', '');
    out.push(
      table(
        ['measure', 'value'],
        [
          ['track call p50 / p99, 1 in flight (ms)', `${fmtRep(e.trackP50)} / ${fmtRep(e.trackP99)}`],
          ['full call p50 / p99, 1 in flight (ms)', `${fmtRep(e.fullP50)} / ${fmtRep(e.fullP99)}`],
          [`track calls/s, ${e.workers} in flight`, fmtRep(e.trackPerS)],
          [`full calls/s, ${e.workers} in flight`, fmtRep(e.fullPerS)],
          [
            'full call stages, median ms',
            Object.entries(e.stages)
              .map(([k, v]) => `${k} ${fmt(v, 2)}`)
              .join(', '),
          ],
          ['CPU used by other processes meanwhile, % of a core', fmtOther(e.otherCpuPercent)],
        ],
        ['---', '---'],
      ),
    );
    out.push(
      '',
      `${e.workers} workers, ${e.threadsPerJob} OpenCV threads per job (the service's defaults); ${e.frame.frames} frames of ${e.frame.width}x${e.frame.height}, about ${Math.round(e.frame.bytes / 1024)} KB each.`,
    );
  }

  if (run.peers.length) {
    out.push('', '## Peers: the same chain on the same frames', '');
    const rows: string[][] = [];
    if (e)
      rows.push([
        'engine full call (C++ addon, OpenCV DNN)',
        fmtRep(e.fullP50),
        fmtRep(e.fullP99),
        fmtRep(e.fullPerS),
        '1.00',
        '—',
      ]);
    for (const p of run.peers) {
      if (p.skipped) {
        rows.push([p.name, `skipped: ${p.skipped}`, '', '', '', '']);
        continue;
      }
      const ratio = e && p.p50 ? fmt(e.fullP50.value / p.p50.value, 2) : '—';
      const agree = p.agreement
        ? `cos ${p.agreement.embeddingCosine.toFixed(4)}, box IoU ${p.agreement.boxIoU.toFixed(3)}, liveness ${p.agreement.livenessPeer.toFixed(3)} vs ${p.agreement.livenessEngine.toFixed(3)}`
        : '—';
      rows.push([p.name, fmtRep(p.p50), fmtRep(p.p99), fmtRep(p.perS), ratio, agree]);
    }
    out.push(
      table(
        [
          'implementation',
          'chain p50 ms',
          'chain p99 ms',
          'chains/s, 1 per core',
          'engine p50 / peer p50',
          'same answer as the engine?',
        ],
        rows,
      ),
    );
    out.push('');
    for (const p of run.peers) out.push(`- ${p.name}: ${p.description}`);
    out.push(
      "- The engine's full call is the service's: besides the embedding it computes eyes, pose, quality and the light " +
        "regions, but no longer the passive liveness model, which the peers' chain still ends with (the agreement " +
        'check asks the engine for it separately). The chains are not the same work: compare with care.',
    );
  }

  if (run.http.length) {
    out.push('', '## HTTP (autocannon)', '');
    const rows = run.http.map((h) =>
      h.skipped
        ? [`${h.method} ${h.path} (${h.name})`, String(h.connections), `skipped: ${h.skipped}`, '', '', '', '', '', '']
        : [
            `${h.method} ${h.path} (${h.name})`,
            String(h.connections),
            fmtRep(h.rps),
            fmtRep(h.p50, 0),
            fmtRep(h.p90, 0),
            fmtRep(h.p99, 0),
            fmtRep(h.serverCpuPercent, 0),
            fmtOther(h.otherCpuPercent),
            counts(h.statuses ?? {}) + (h.errors ? `, errors ${h.errors}` : ''),
          ],
    );
    out.push(
      table(
        [
          'endpoint',
          'connections',
          'req/s',
          'p50 ms',
          'p90 ms',
          'p99 ms',
          'gateway CPU %',
          'other processes CPU %',
          'answers (all repetitions)',
        ],
        rows,
      ),
    );
    out.push('', 'autocannon times latency in whole milliseconds.');
  }

  if (run.ws.length) {
    out.push('', '## WebSocket frame load: throughput', '');
    out.push(
      table(
        [
          'transport',
          'sessions',
          'fps',
          'offered/s',
          'sent/s',
          'received/s',
          'analysed/s',
          'dropped/s (share)',
          'full calls',
          'vs engine alone',
        ],
        run.ws.map((w) => [
          w.point.transport,
          String(w.point.connections),
          fpsText(w),
          w.offeredPerS === null ? '—' : String(w.offeredPerS),
          fmtRep(w.sentPerS),
          fmtRep(w.receivedPerS),
          fmtRep(w.analysedPerS),
          `${fmtRep(w.droppedPerS)} (${Math.round(w.dropShare.value * 100)}%)`,
          `${Math.round(w.fullShare.value * 100)}%`,
          w.engineRatio ? fmtRep(w.engineRatio, 2) : 'not saturated',
        ]),
      ),
    );
    out.push('', "## WebSocket frame load: latency and the gateway's health", '');
    out.push(
      table(
        [
          'transport',
          'sessions',
          'fps',
          'engine call p50 / p99 ms',
          'time to verdict p50 / p99 s (n)',
          'verdicts',
          'session set-up p50 / p99 ms',
          'probe round trip p50 / p99 ms',
          'event-loop delay p50 / p99 / max ms',
          'gateway CPU %',
          'gateway RSS peak MiB',
          'generator lag p99 ms, CPU %',
          'other processes CPU %',
        ],
        run.ws.map((w) => [
          w.point.transport,
          String(w.point.connections),
          fpsText(w),
          `${fmtRep(w.analysisP50, 0)} / ${fmtRep(w.analysisP99, 0)}`,
          `${fmtLatency(w.timeToVerdict, 2, 1000)} (${w.timeToVerdict.n}${w.unfinished ? `, ${w.unfinished} unfinished` : ''})`,
          counts(w.verdicts),
          fmtLatency(w.sessionSetup, 0),
          fmtLatency(w.probe, 1),
          `${fmtRep(w.server.eldP50)} / ${fmtRep(w.server.eldP99)} / ${fmtRep(w.server.eldMax, 0)}`,
          fmtRep(w.server.cpuPercent, 0),
          fmtRep(w.server.rssPeakMiB, 0),
          `${fmt(w.generatorLag.p99, 1)}, ${fmtRep(w.generatorCpuPercent, 0)}`,
          fmtOther(w.server.otherCpuPercent),
        ]),
      ),
    );
    const troubles = run.ws.filter(
      (w) => w.busy || Object.keys(w.errors).length || Object.keys(w.sessionRefusals).length,
    );
    if (troubles.length) {
      out.push('');
      for (const w of troubles) {
        out.push(
          `- ${w.point.transport}, ${w.point.connections} sessions @ ${fpsText(w)}: busy ${w.busy}; errors ${counts(w.errors)}; ` +
            `session refusals ${counts(w.sessionRefusals)}`,
        );
      }
    }
    out.push(
      '',
      "- *analysed/s*, *received/s*, *dropped/s*, *full calls* and *engine call* come from the gateway's own /metrics " +
        '(counter deltas over the window; the engine call percentiles are interpolated from histogram buckets, so coarse).',
      '- *vs engine alone*: analysed frames/s through the WebSocket ÷ what the engine alone does for the same mix of ' +
        'track and full calls with as many calls in flight as workers, measured in the same round; shown only where ' +
        'latest-frame-wins dropped ≥ 5% (below that, the load, not the gateway, sets the rate).',
      "- *time to verdict*: from a session's first frame to its verdict, for sessions that ended inside the window; " +
        'sessions still running at the end are *unfinished* and not counted. *session set-up*: POST /sessions until ' +
        '`ready` on the socket, for sessions (re)started inside the window.',
      '- *probe round trip*: each session sends a header-only message once a second, which the gateway answers at once ' +
        'with `error frame_empty` without the engine: the transport and event-loop round trip under this load, without ' +
        "the engine (the frames' own round trip is *frame → ack*, below).",
      '- *generator lag*: how late the generator sent frames against its schedule; when it is large, the generator, ' +
        'not the gateway, was the limit.',
      "- *other processes CPU*: the machine's busy time (/proc/stat) minus the gateway, the generator and the " +
        'benchmark itself, in % of one core: other jobs competing for the cores.',
    );
    if (run.ws.some((w) => w.cpuMsPerVerdict || w.ackOutcomes)) {
      out.push('', '## WebSocket frame load: per-frame round trip and cost per verdict', '');
      out.push(
        table(
          [
            'transport',
            'sessions',
            'fps',
            'frame → ack p50 / p95 / p99 ms, every frame',
            'frame → ack p50 / p95 / p99 ms, analysed',
            'acks: analysed / dropped / refused',
            'verdicts (gateway)',
            'gateway CPU ms per verdict',
            'full calls per verdict',
            'track calls per verdict',
          ],
          run.ws.map((w) => [
            w.point.transport,
            String(w.point.connections),
            fpsText(w),
            fmtP50P95P99(w.frameAck),
            fmtP50P95P99(w.frameAckAnalysed),
            fmtAcks(w),
            w.gatewayVerdicts === undefined ? '—' : String(w.gatewayVerdicts),
            fmtRep(w.cpuMsPerVerdict, 0),
            fmtRep(w.fullPerVerdict, 2),
            fmtRep(w.trackPerVerdict, 1),
          ]),
        ),
      );
      out.push(
        '',
        '- *frame → ack*: each session asks for a per-frame acknowledgement in its `hello` (`ack: true`, ' +
          'docs/protocol.md) and times every frame it sends inside the window, from the send to its `ack`: `analysed` ' +
          "once the engine's answer was applied, `dropped` when a newer frame replaced it (latest frame wins), it came " +
          'above fps.max or the engine was busy, `refused` after an error. *analysed*: the frames that went through the ' +
          'engine only, a true frame round trip (queueing, transport, engine, session logic). *pending*: still without ' +
          'an ack when the window closed; *lost*: their connection closed first.',
        "- *gateway CPU ms per verdict*: the gateway process's CPU time (user + system, all its threads: the engine's " +
          'workers, the transport, sessions and storage) over its window, divided by the face verdicts it reached in that ' +
          'window (its /metrics); *full* and *track calls per verdict*: its engine calls over the same window, per verdict. ' +
          'Sessions still running when the window closes spent CPU there too, so short windows with few verdicts are noisy.',
      );
    }
  }

  if (run.overload) {
    out.push('', '## Overload: admission control and goodput', '');
    out.push(...renderOverload(run.overload, run.suite.overload?.loads ?? [1, 5]));
  }

  if (run.fleet) {
    out.push('', '## Fleet: one gateway or three behind HAProxy (PostgreSQL)', '');
    out.push(...renderFleet(run.fleet));
  }

  if (run.memory.length) {
    out.push('', '## Memory with idle sessions', '');
    const rows: string[][] = [];
    for (const mem of run.memory) {
      rows.push([mem.transport, '0', '0', fmt(mem.baselineRssMiB), '—', '—']);
      for (const l of mem.levels)
        rows.push([
          mem.transport,
          String(l.sessions),
          String(l.open),
          fmt(l.rssMiB),
          fmt(l.heapUsedMiB),
          fmt(l.externalMiB),
        ]);
    }
    out.push(table(['transport', 'idle sessions', 'open', 'RSS MiB', 'JS heap MiB', 'external MiB'], rows));
    out.push('');
    for (const mem of run.memory) {
      out.push(
        `- ${mem.transport}: about ${fmt(mem.perSessionKiB, 0)} KiB of RSS per idle session${mem.failures ? `; ${mem.failures} sessions failed to open` : ''}.`,
      );
    }
    out.push(
      '- Each session: POST /sessions, WebSocket connected, `ready` received, then nothing; RSS read inside the gateway after garbage collection; measured once.',
    );
  }

  if (run.pad) {
    out.push('', '## Presentation attacks (faceid pad-eval)', '');
    const r = run.pad.report;
    if (!r) out.push(`Skipped: ${run.pad.skipped}.`);
    else {
      const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
      const names = Object.keys(r.configs);
      const cls = (c: ClassReport, attack: boolean) =>
        `${pct(c.rate)} (${attack ? c.accepted : Math.round(c.rate * c.attempts)}/${c.attempts}, 95% ≤ ${pct(c.upper95)}); ${counts(c.reasons)}`;
      const rows: string[][] = [
        ['genuine: BPCER (refused as a spoof)', ...names.map((n) => cls(r.configs[n].genuine, false))],
      ];
      rows.push([
        'genuine: first frame to verdict p50 / p90 ms',
        ...names.map((n) => `${r.configs[n].genuine.sessionMs.p50} / ${r.configs[n].genuine.sessionMs.p90}`),
      ]);
      rows.push([
        'genuine: engine ms, frames per verdict',
        ...names.map(
          (n) => `${fmt(r.configs[n].genuine.engineMsPerVerdict)}, ${fmt(r.configs[n].genuine.framesPerVerdict)}`,
        ),
      ]);
      const kinds = [...new Set(names.flatMap((n) => Object.keys(r.configs[n].attacks)))];
      for (const k of kinds)
        rows.push([
          `${k}: APCER (accepted)`,
          ...names.map((n) => (r.configs[n].attacks[k] ? cls(r.configs[n].attacks[k], true) : '—')),
        ]);
      out.push(
        table(['class', ...names.map((n) => `${n} (${r.configs[n].challenges.join(', ')})`)], rows, [
          '---',
          ...names.map(() => '---'),
        ]),
      );
      out.push(
        '',
        `${r.photos} people (${run.pad.photoSet}), ${r.attemptsPerClass} sessions per class and challenge set at ${r.fps} fps, ` +
          `${r.seconds} s. Each session is a scene model (a live face or an attack, docs/liveness.md) played through the real ` +
          'session runner and engine on a virtual clock, so the rates and times do not depend on the machine (the engine ' +
          'time does). ISO/IEC 30107-3: APCER = attacks accepted / attempts per class; BPCER = live faces refused as ' +
          'spoofs / attempts; the 95% upper bound says how little a few sessions can prove.',
      );
    }
  }

  if (run.accuracy) {
    out.push('', '## Accuracy at the desk (faceid eval --conditions)', '');
    const r = run.accuracy.report;
    if (!r) out.push(`Skipped: ${run.accuracy.skipped}.`);
    else {
      out.push(conditionTable(r));
      out.push(
        '',
        `${r.images} images of ${r.identities} people (the manifest named by ${run.accuracy.source}): per person the first ` +
          `image enrolled as is, the other ${r.probes} reframed into 320x240 desk frames under each condition (seed ${r.seed}) ` +
          `and compared with every enrolled person at MATCH_THRESHOLD ${r.threshold}; ${run.accuracy.seconds} s. The figures ` +
          'depend on the engine and the seed, not on the machine. Conditions: src/accuracy/conditions.ts; README, "Accuracy at the desk".',
      );
    }
  }

  if (run.notes.length) {
    out.push('', '## Notes', '');
    for (const n of run.notes) out.push(`- ${n}`);
  }
  return `${out.join('\n')}\n`;
}
