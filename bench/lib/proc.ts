import { fork, type ChildProcess } from 'node:child_process';
import { Worker } from 'node:worker_threads';

/**
 * Starting the benchmark's own processes and threads from TypeScript sources or compiled JavaScript alike:
 * when this file runs as .ts (ts-node), children load ts-node's transpile-only hook first.
 */

const RUNNING_TS = __filename.endsWith('.ts');

function tsHook(): string[] {
  return RUNNING_TS ? ['-r', require.resolve('ts-node/register/transpile-only')] : [];
}

/** Resolves `name` (without extension) next to `dir` as .ts or .js, whichever this run uses. */
export function sibling(dir: string, name: string): string {
  return `${dir}/${name}${RUNNING_TS ? '.ts' : '.js'}`;
}

export interface ForkOptions {
  env?: NodeJS.ProcessEnv;
  /** Extra node options, e.g. --expose-gc. */
  nodeArgs?: string[];
  /** Keep the last lines of the child's stdout/stderr for error messages instead of printing them. */
  quiet?: boolean;
}

export interface Child {
  proc: ChildProcess;
  /** The last lines the child printed (quiet mode). */
  tail(): string;
}

/** Forks a script with an IPC channel that carries Buffers (structured clone: 'advanced' serialization). */
export function forkScript(file: string, options: ForkOptions = {}): Child {
  const lines: string[] = [];
  const proc = fork(file, [], {
    execArgv: [...(options.nodeArgs ?? []), ...tsHook()],
    env: options.env ?? process.env,
    serialization: 'advanced',
    stdio: options.quiet ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      lines.push(line.length > 400 ? `${line.slice(0, 400)}...` : line);
      if (lines.length > 30) lines.shift();
    }
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  return { proc, tail: () => lines.join('\n') };
}

/** Sends a message and waits for the first reply that `match` accepts; rejects if the child exits first. */
export function request<T>(
  child: ChildProcess,
  message: unknown,
  match: (m: unknown) => m is T,
  timeoutMs = 120_000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`No answer from child ${child.pid} within ${timeoutMs} ms.`));
    }, timeoutMs);
    const onMessage = (m: unknown) => {
      if (!match(m)) return;
      cleanup();
      resolve(m);
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`Child ${child.pid} exited (${signal ?? code}) before answering.`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
    if (message !== undefined) child.send(message as never);
  });
}

/** A worker thread on a .ts or .js file (ts-node registers itself inside the worker first). */
export function startWorker(file: string, workerData: unknown): Worker {
  if (!file.endsWith('.ts')) return new Worker(file, { workerData });
  const hook = require.resolve('ts-node/register/transpile-only');
  const code = `require(${JSON.stringify(hook)}); require(${JSON.stringify(file)});`;
  return new Worker(code, { eval: true, workerData });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
