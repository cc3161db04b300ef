/**
 * The gateway under test, in its own process: forked by bench/lib/server-handle.ts with its configuration in the
 * environment. It boots the real app (createApp), creates a clinic and a workstation key for the load, and
 * answers the parent over IPC with its own event-loop delay (perf_hooks.monitorEventLoopDelay), CPU time and
 * memory, measured from inside, so the figures belong to the gateway and not to the load generator.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { createApp } from '../src/app.factory';
import { createEnrollmentKey, createWorkstation } from '../src/auth';
import { loadConfig } from '../src/config';
import { ChallengePolicyService } from '../src/identification/challenge-policy.service';
import { JsonLogger } from '../src/json-logger';
import {
  CLINICS,
  ENROLLMENT_KEYS,
  WORKSTATIONS,
  type ClinicRepository,
  type EnrollmentKeyRepository,
  type WorkstationRepository,
} from '../src/storage/ports';
import { TransportService } from '../src/transport';
import type { ServerReady, ServerRequest, ServerSample } from './lib/server-handle';

const MiB = 1024 * 1024;
/** monitorEventLoopDelay reports the interval between its timer's runs: the delay is that minus the resolution. */
const ELD_RESOLUTION_MS = 10;

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const app = await createApp({ config, logger: new JsonLogger(config.LOG_LEVEL) });
  if (process.env.BENCH_BLINK_ONLY === '1') {
    // The load's sessions run the blink alone (see bench/README.md, "Challenges on the load gateways"). The service
    // refuses that as a setting (a blink alone is easy to replay: LIVENESS_CHALLENGES=blink does not load), so this
    // process, and only it, answers every session's challenge set itself.
    app.get(ChallengePolicyService).forSession = async () => ['blink'];
  }
  await app.listen(config.PORT, config.HOST);
  const address = app.getHttpServer().address() as { port: number };

  const clinic = await app.get<ClinicRepository>(CLINICS).create('Bench clinic');
  const { apiKey } = await createWorkstation(app.get<WorkstationRepository>(WORKSTATIONS), clinic.id, 'Bench desk');
  // References come from the registry role (enrolled at once); a desk replacing one would need the patient's code.
  const enrollKey = (
    await createEnrollmentKey(app.get<EnrollmentKeyRepository>(ENROLLMENT_KEYS), clinic.id, 'Bench registry')
  ).apiKey;
  const transport = app.get(TransportService).info();

  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  eld.enable();
  let cpu0 = process.cpuUsage();
  let t0 = performance.now();
  let rssPeak = process.memoryUsage.rss();
  // RSS peaks between samples would be missed without this (every 200 ms, unref'd so it never holds the process).
  setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
  }, 200).unref();

  const sample = (gc: boolean): ServerSample => {
    if (gc && typeof global.gc === 'function') {
      global.gc();
      global.gc();
    }
    const cpu = process.cpuUsage(cpu0);
    const elapsedMs = performance.now() - t0;
    const mem = process.memoryUsage();
    rssPeak = Math.max(rssPeak, mem.rss);
    const ms = (ns: number) => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS);
    return {
      elapsedSeconds: elapsedMs / 1000,
      // How late a 10 ms timer ran (0 = on time).
      eld: {
        p50: ms(eld.percentile(50)),
        p99: ms(eld.percentile(99)),
        max: ms(eld.max),
        mean: ms(eld.mean),
      },
      cpuPercent: elapsedMs > 0 ? ((cpu.user + cpu.system) / 1000 / elapsedMs) * 100 : 0,
      cpuMs: (cpu.user + cpu.system) / 1000,
      rssMiB: mem.rss / MiB,
      rssPeakMiB: rssPeak / MiB,
      heapUsedMiB: mem.heapUsed / MiB,
      externalMiB: mem.external / MiB,
      connections: app.get(TransportService).connections(),
    };
  };

  process.on('message', (raw: unknown) => {
    const msg = raw as ServerRequest;
    if (msg.type === 'reset') {
      eld.reset();
      cpu0 = process.cpuUsage();
      t0 = performance.now();
      rssPeak = process.memoryUsage.rss();
      process.send?.({ type: 'reset-done', id: msg.id });
    } else if (msg.type === 'sample') {
      process.send?.({ type: 'sample', id: msg.id, sample: sample(msg.gc) });
    } else if (msg.type === 'stop') {
      void app.close().finally(() => process.exit(0));
    }
  });
  // Never outlive the benchmark that started us.
  process.on('disconnect', () => void app.close().finally(() => process.exit(0)));

  const ready: ServerReady = {
    type: 'ready',
    base: `http://127.0.0.1:${address.port}`,
    apiKey,
    enrollKey,
    transport: transport ? { kind: transport.kind, port: transport.port } : null,
  };
  process.send?.(ready);
}

main().catch((err: unknown) => {
  process.send?.({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
