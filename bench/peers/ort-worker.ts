/**
 * A worker thread running the onnxruntime chain (ort-chain.ts) on the benchmark's frames, so that onnxruntime's
 * run(), which computes on the calling thread, never blocks the benchmark's own event loop.
 */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { OrtChain, type ChainTimings } from './ort-chain';

export interface OrtWorkerData {
  modelDir: string;
  threads: number;
  frames: Uint8Array[];
}

export type OrtWorkerRequest = { type: 'run'; seconds: number } | { type: 'check' } | { type: 'close' };

export type OrtWorkerReply =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'done'; totals: number[]; stages: Record<keyof ChainTimings, number[]> }
  | { type: 'answer'; answer: Awaited<ReturnType<OrtChain['run']>> };

const STAGES: Array<keyof ChainTimings> = ['decode', 'detect', 'landmarks', 'align', 'embedding', 'liveness', 'total'];

const zero = (): ChainTimings => ({
  decode: 0,
  detect: 0,
  landmarks: 0,
  align: 0,
  embedding: 0,
  liveness: 0,
  total: 0,
});

async function main(): Promise<void> {
  const data = workerData as OrtWorkerData;
  const port = parentPort!;
  const send = (m: OrtWorkerReply) => port.postMessage(m);
  const chain = await OrtChain.open(data.modelDir, data.threads);
  // Warm-up: the first runs allocate and pick kernels.
  for (let i = 0; i < 5; i++) await chain.run(data.frames[i % data.frames.length], zero());
  send({ type: 'ready' });

  port.on('message', (msg: OrtWorkerRequest) => {
    void (async () => {
      if (msg.type === 'run') {
        const stages = Object.fromEntries(STAGES.map((k) => [k, [] as number[]])) as Record<
          keyof ChainTimings,
          number[]
        >;
        const end = performance.now() + msg.seconds * 1000;
        for (let i = 0; performance.now() < end; i++) {
          const t = zero();
          await chain.run(data.frames[i % data.frames.length], t);
          for (const k of STAGES) stages[k].push(t[k]);
        }
        send({ type: 'done', totals: stages.total, stages });
      } else if (msg.type === 'check') {
        send({ type: 'answer', answer: await chain.run(data.frames[0], zero()) });
      } else if (msg.type === 'close') {
        await chain.close();
        port.close();
      }
    })().catch((err: Error) => send({ type: 'failed', message: err.message }));
  });
}

main().catch((err: Error) =>
  parentPort?.postMessage({ type: 'failed', message: err.message } satisfies OrtWorkerReply),
);
