import WebSocket from 'ws';
import { createSession } from './api';
import { sleep } from './proc';
import type { BenchServer } from './server-handle';
import type { MemoryLevel, MemoryResult } from './types';

/**
 * Memory of the gateway with idle sessions: each one created, connected and `ready`, then sending nothing (the
 * server must run with a SESSION_TIMEOUT_MS longer than the phase). RSS is read inside the server after two
 * garbage collections.
 */

const CONNECT_CONCURRENCY = 20;

function openIdleSession(server: BenchServer, iin: string): Promise<WebSocket> {
  return createSession(server.base, server.apiKey, iin).then(
    (answer) =>
      new Promise<WebSocket>((resolve, reject) => {
        if (!answer.ok) return reject(new Error(answer.code));
        const ws = new WebSocket(answer.session.wsUrl, answer.session.protocols, { perMessageDeflate: false });
        const timer = setTimeout(() => {
          ws.terminate();
          reject(new Error('no ready within 15 s'));
        }, 15_000);
        ws.on('message', (data, isBinary) => {
          if (!isBinary && (JSON.parse(data.toString()) as { type: string }).type === 'ready') {
            clearTimeout(timer);
            resolve(ws);
          }
        });
        ws.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      }),
  );
}

export async function runMemory(
  server: BenchServer,
  patients: string[],
  levels: number[],
  progress: (line: string) => void,
): Promise<MemoryResult> {
  // One patient per idle session: a new face token supersedes the patient's earlier unused one, and the sessions
  // running now count against the patient's face attempts.
  if (patients.length < Math.max(...levels)) {
    throw new Error(`${Math.max(...levels)} idle sessions need as many enrolled patients; ${patients.length} given.`);
  }
  const sockets: WebSocket[] = [];
  let failures = 0;
  const baselineRssMiB = (await server.sample(true)).rssMiB;
  const out: MemoryLevel[] = [];
  // The next patient not used yet (a session that failed to open does not give its patient back; past the last
  // patient, which only failures lead to, they are taken again from the first).
  let patient = 0;
  try {
    for (const level of levels) {
      let next = sockets.length;
      const worker = async () => {
        while (next < level) {
          next++;
          try {
            sockets.push(await openIdleSession(server, patients[patient++ % patients.length]));
          } catch {
            failures++;
          }
        }
      };
      await Promise.all(Array.from({ length: CONNECT_CONCURRENCY }, worker));
      await sleep(500);
      const s = await server.sample(true);
      out.push({
        sessions: level,
        open: s.connections,
        rssMiB: round1(s.rssMiB),
        heapUsedMiB: round1(s.heapUsedMiB),
        externalMiB: round1(s.externalMiB),
      });
      progress(`memory (${server.transport}): ${s.connections} idle sessions open, RSS ${s.rssMiB.toFixed(0)} MiB`);
    }
  } finally {
    for (const ws of sockets) ws.terminate();
  }
  const end = Date.now() + 5000;
  while (Date.now() < end && (await server.sample()).connections > 0) await sleep(100);
  const first = out[0];
  const last = out[out.length - 1];
  const added = last.open - first.open;
  return {
    transport: server.transport,
    baselineRssMiB: round1(baselineRssMiB),
    levels: out,
    perSessionKiB: added > 0 ? Math.round(((last.rssMiB - first.rssMiB) * 1024) / added) : NaN,
    failures,
  };
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
