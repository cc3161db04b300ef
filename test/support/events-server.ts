// The whole service in a child process, for tests that kill it (SIGKILL) and start it again on the same database:
//   node -r ts-node/register/transpile-only test/support/events-server.ts
// Configured by the environment like the service; prints "FACEID_READY <port>" once listening on 127.0.0.1.
import { createApp } from '../../src/app.factory';
import { loadConfig } from '../../src/config';

async function main(): Promise<void> {
  const app = await createApp({ config: loadConfig(process.env) });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as { port: number };
  process.stdout.write(`FACEID_READY ${port}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`events-server failed: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
