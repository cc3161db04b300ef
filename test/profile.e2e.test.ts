import { spawn } from 'node:child_process';
import * as path from 'node:path';

// The service as an operator starts it (src/main.ts): a profile's refusals stop the start before anything opens,
// with one log line naming each setting to change.
const ROOT = path.resolve(__dirname, '..');

function start(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const proc = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    // Nothing of the caller's environment that could pick a database or a profile.
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      TS_NODE_TRANSPILE_ONLY: 'true',
      PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, output })));
}

describe('FACEID_PROFILE at start', () => {
  it('production refuses the development SMS outbox, the demo clinic, any origin and plain-http webhooks', async () => {
    const { code, output } = await start({
      FACEID_PROFILE: 'production',
      SMS_ADAPTER: 'dev',
      FACEID_BOOTSTRAP: 'true',
      WS_ALLOWED_ORIGINS: '*',
      WEBHOOK_ALLOW_HTTP: 'true',
    });
    expect(code).toBe(1);
    const fatal = output.split('\n').find((l) => l.includes('"level":"fatal"'));
    expect(fatal).toBeDefined();
    for (const key of ['SMS_ADAPTER', 'FACEID_BOOTSTRAP', 'WS_ALLOWED_ORIGINS', 'WEBHOOK_ALLOW_HTTP'])
      expect(fatal).toContain(key);
    expect(output).not.toContain('Listening on');
  });

  it('development refuses to listen beyond this machine', async () => {
    const { code, output } = await start({ HOST: '0.0.0.0' });
    expect(code).toBe(1);
    expect(output).toMatch(/HOST=\\?"0\.0\.0\.0\\?": expected a loopback address/);
    expect(output).toContain('FACEID_PROFILE=production');
    expect(output).not.toContain('Listening on');
  });
});
