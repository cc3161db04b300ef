/**
 * The IPC loop of a zeroing test's server child (ws-zeroing-server.ts, enroll-zeroing-server.ts): it answers `scan`,
 * `close-app` and `stop`, reports failures as `{ type: 'error', message }`, and cleans up and exits when the test
 * process goes away or boot fails.
 */
export interface ZeroingChild<Req extends { type: string }, Rep> {
  send(msg: Rep): void;
  /** Boots the app; its answer is the `ready` report. */
  boot(): Promise<Rep>;
  scan(msg: Req): Rep;
  closeApp(): Promise<void>;
  /** Before exit on `stop`: drop what the child holds (heap pins). */
  release(): void;
  /** Removes the temporary folder. */
  cleanup(): void;
}

export function serveZeroingChild<Req extends { type: string }, Rep>(c: ZeroingChild<Req, Rep>): void {
  const fail = (message: string) => c.send({ type: 'error', message } as Rep);
  process.on('message', (msg: Req) => {
    void (async () => {
      try {
        if (msg.type === 'scan') c.send(c.scan(msg));
        else if (msg.type === 'close-app') {
          await c.closeApp();
          c.send({ type: 'close-app' } as Rep);
        } else if (msg.type === 'stop') {
          c.release();
          c.cleanup();
          process.exit(0);
        }
      } catch (err) {
        fail((err as Error)?.stack ?? String(err));
      }
    })();
  });
  process.on('disconnect', () => {
    // The test process went away: do not linger.
    c.cleanup();
    process.exit(1);
  });
  c.boot().then(c.send, (err: Error) => {
    fail(`boot failed: ${err?.stack ?? err}`);
    c.cleanup();
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100).unref();
  });
}
