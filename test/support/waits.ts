/**
 * Polls `fn` every 25 ms until it returns something truthy, and returns that; throws naming `what` after `timeoutMs`
 * (a function: read when it throws, so the message says what there was by then).
 * For in-process e2e tests, which wait for what they need to have happened rather than for a fixed time.
 */
export async function until<T>(
  what: string | (() => string),
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
