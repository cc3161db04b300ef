import { main } from '../../src/cli/main';

/** What one `faceid` command did: its exit code and its captured output. */
export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** Runs the admin CLI's entry (main()) in this process with `env`, capturing stdout and stderr. */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  let out = '';
  let err = '';
  const code = await main(argv, {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env,
  });
  return { code, out, err };
}

/** The output of a command that must succeed, parsed as JSON (checked field by field). */
export function cliJson(r: CliRun): any {
  expect(r).toMatchObject({ code: 0 });
  return JSON.parse(r.out);
}

/** The output of a `--json` listing: one JSON value per line. */
export function cliLines(r: CliRun): any[] {
  return r.out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}
