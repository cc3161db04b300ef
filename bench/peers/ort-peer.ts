import { performance } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import { sibling, startWorker } from '../lib/proc';
import type { ChainAnswer } from './ort-chain';
import type { OrtWorkerData, OrtWorkerReply, OrtWorkerRequest } from './ort-worker';

/**
 * The onnxruntime-node peer, driven from the benchmark: one worker thread for latency (one chain in flight, with
 * as many intra-op threads as the engine gives one job) and one single-threaded worker per core for throughput
 * (as the engine runs one job per worker).
 */

export interface OrtRep {
  latencyMs: number[];
  stages: Record<string, number[]>;
  perS: number;
}

class WorkerHandle {
  constructor(private readonly worker: Worker) {}

  static async start(data: OrtWorkerData): Promise<WorkerHandle> {
    const worker = startWorker(sibling(__dirname, 'ort-worker'), data);
    const h = new WorkerHandle(worker);
    await h.next('ready');
    return h;
  }

  next<T extends OrtWorkerReply['type']>(type: T): Promise<Extract<OrtWorkerReply, { type: T }>> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: OrtWorkerReply) => {
        if (m.type === 'failed') {
          cleanup();
          reject(new Error(`onnxruntime peer: ${m.message}`));
        } else if (m.type === type) {
          cleanup();
          resolve(m as Extract<OrtWorkerReply, { type: T }>);
        }
      };
      const onError = (err: Error) => {
        cleanup();
        reject(err);
      };
      const cleanup = () => {
        this.worker.off('message', onMessage);
        this.worker.off('error', onError);
      };
      this.worker.on('message', onMessage);
      this.worker.on('error', onError);
    });
  }

  ask<T extends OrtWorkerReply['type']>(msg: OrtWorkerRequest, type: T): Promise<Extract<OrtWorkerReply, { type: T }>> {
    const reply = this.next(type);
    this.worker.postMessage(msg);
    return reply;
  }

  async close(): Promise<void> {
    this.worker.postMessage({ type: 'close' } satisfies OrtWorkerRequest);
    await Promise.race([new Promise((r) => this.worker.once('exit', r)), new Promise((r) => setTimeout(r, 2000))]);
    await this.worker.terminate();
  }
}

export class OrtPeer {
  private constructor(
    private readonly latency: WorkerHandle,
    private readonly throughput: WorkerHandle[],
    readonly config: { latencyThreads: number; throughputWorkers: number },
  ) {}

  static async start(modelDir: string, frames: Buffer[], cores: number): Promise<OrtPeer> {
    const copies = () => frames.map((f) => Uint8Array.from(f));
    const latencyThreads = Math.min(2, cores);
    const latency = await WorkerHandle.start({ modelDir, threads: latencyThreads, frames: copies() });
    const throughput = await Promise.all(
      Array.from({ length: cores }, () => WorkerHandle.start({ modelDir, threads: 1, frames: copies() })),
    );
    return new OrtPeer(latency, throughput, { latencyThreads, throughputWorkers: cores });
  }

  async rep(seconds: number): Promise<OrtRep> {
    const one = await this.latency.ask({ type: 'run', seconds }, 'done');
    const t0 = performance.now();
    const all = await Promise.all(this.throughput.map((w) => w.ask({ type: 'run', seconds }, 'done')));
    const elapsed = (performance.now() - t0) / 1000;
    const chains = all.reduce((n, r) => n + r.totals.length, 0);
    return { latencyMs: one.totals, stages: one.stages, perS: chains / elapsed };
  }

  async check(): Promise<ChainAnswer | null> {
    return (await this.latency.ask({ type: 'check' }, 'answer')).answer;
  }

  async close(): Promise<void> {
    await Promise.all([this.latency, ...this.throughput].map((w) => w.close()));
  }
}
