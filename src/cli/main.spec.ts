import { COMMANDS, main, mainUsage, parseIntInRange, type Command, type MainIo } from './main';

function capture(): MainIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    out: () => out,
    err: () => err,
  };
}

describe('faceid main', () => {
  it('prints the usage and exits 2 without a command', async () => {
    const io = capture();
    expect(await main([], io)).toBe(2);
    expect(io.err()).toContain('Usage: faceid <command>');
    expect(io.out()).toBe('');
  });

  it('lists every command in the usage', () => {
    for (const name of ['analyze', 'eval', 'bench-engine', 'clinic', 'workstation', 'mis', 'audit']) {
      expect(mainUsage()).toContain(name);
    }
  });

  it("lists a group's subcommands for --help; refuses a missing or unknown one with exit code 2", async () => {
    const help = capture();
    expect(await main(['mis', '--help'], help)).toBe(0);
    expect(help.out()).toContain('Usage: faceid mis <subcommand>');
    for (const sub of ['create', 'rotate', 'revoke', 'list']) expect(help.out()).toMatch(new RegExp(`^  ${sub} `, 'm'));
    const none = capture();
    expect(await main(['mis'], none)).toBe(2);
    expect(none.err()).toContain('faceid mis: no subcommand given');
    const unknown = capture();
    expect(await main(['clinic', 'delete'], unknown)).toBe(2);
    expect(unknown.err()).toContain('unknown subcommand "delete"');
  });

  it("prints a subcommand's usage for --help", async () => {
    const io = capture();
    expect(await main(['workstation', 'create', '--help'], io)).toBe(0);
    expect(io.out()).toContain('Usage: faceid workstation create --clinic CLINIC_ID --name NAME');
  });

  it('exits 0 with the usage on stdout for --help', async () => {
    const io = capture();
    expect(await main(['--help'], io)).toBe(0);
    expect(io.out()).toContain('Usage: faceid <command>');
  });

  it('rejects an unknown command with exit code 2', async () => {
    const io = capture();
    expect(await main(['frobnicate'], io)).toBe(2);
    expect(io.err()).toContain('unknown command "frobnicate"');
    expect(io.err()).toContain('Commands:');
  });

  it.each([
    [['analyze', '--bogus', 'a.jpg']],
    [['eval', '--manifest', 'x.csv', '--nope']],
    [['bench-engine', '--seconds']],
    [['eval', 'stray-positional', '--manifest', 'x.csv']],
    [['mis', 'create', '--clinic']],
    [['audit', 'verify', '--all']],
  ])('rejects bad flags of %j with the command usage and exit code 2', async (argv) => {
    const io = capture();
    expect(await main(argv, io)).toBe(2);
    expect(io.err()).toContain(`Usage: faceid ${argv[0]}`);
  });

  it.each([
    [['analyze'], 'no IMAGE given'],
    [['analyze', '--max-faces', '0', 'a.jpg'], '--max-faces'],
    [['analyze', '--max-faces', '2.5', 'a.jpg'], '--max-faces'],
    [['analyze', '--all-stages', '--track', 'a.jpg'], 'exclude each other'],
    [['eval'], '--manifest CSV is required'],
    [['eval', '--manifest', 'x.csv', '--concurrency', 'many'], '--concurrency'],
    [['bench-engine', '--seconds', '-1'], '--seconds'],
    [['bench-engine', '--seconds', 'abc'], '--seconds'],
    [['mis', 'create', '--name', 'HIS'], '--clinic is required'],
    [['mis', 'rotate', '--clinic', 'c1', '--id', '00000000-0000-4000-8000-000000000000'], '--clinic must be an id'],
    [['clinic', 'create', '--name', ''], '--name must not be empty'],
    [['clinic', 'create', '--name', 'a\u0007b'], 'control characters'],
  ])('validates values before opening the engine: %j', async (argv, message) => {
    const io = capture();
    expect(await main(argv, io)).toBe(2);
    expect(io.err()).toContain(message);
  });

  it('prints a command usage on stdout for <command> --help', async () => {
    const io = capture();
    expect(await main(['eval', '--help'], io)).toBe(0);
    expect(io.out()).toContain('Usage: faceid eval --manifest CSV');
  });
});

/** Every command as it is typed: `analyze`, `workstation revoke`, ... */
const EVERY_COMMAND: Array<{ argv: string[]; command: Command }> = COMMANDS.flatMap((c) =>
  'subcommands' in c
    ? c.subcommands.map((sub) => ({ argv: [c.name, sub.name], command: sub }))
    : [{ argv: [c.name], command: c }],
);

describe("every command's --help", () => {
  it.each(EVERY_COMMAND.map(({ argv, command }) => [argv.join(' '), argv, command] as const))(
    '%s: starts with exactly one "Usage: faceid ...", names every option in its synopsis and its option list',
    async (name, argv, command) => {
      const io = capture();
      expect(await main([...argv, '--help'], io)).toBe(0);
      const help = io.out();
      expect(io.err()).toBe('');
      expect(help.startsWith(`Usage: faceid ${name}`)).toBe(true);
      expect(help.match(/Usage:/g)).toHaveLength(1);
      const blank = help.indexOf('\n\n');
      const synopsis = help.slice(0, blank);
      // A synopsis continued on more lines lines up under the first word after the command.
      const column = `Usage: faceid ${name} `.length;
      for (const line of synopsis.split('\n').slice(1)) expect(line).toMatch(new RegExp(`^ {${column}}\\S`));
      const optionList = help.slice(help.indexOf('\nOptions:\n'));
      for (const option of Object.keys(command.options)) {
        expect({ option, inSynopsis: synopsis.includes(`--${option}`) }).toEqual({ option, inSynopsis: true });
        expect({ option, listed: new RegExp(`^  (-\\w, )?--${option}\\b`, 'm').test(optionList) }).toEqual({
          option,
          listed: true,
        });
      }
      // Nothing listed or shown that the command does not take.
      const named = [...help.matchAll(/^ {2}(?:-\w, )?--([a-z][a-z0-9-]*)/gm)].map((m) => m[1]);
      expect(named.filter((o) => o !== 'help' && !(o in command.options))).toEqual([]);
      expect(
        [...synopsis.matchAll(/--([a-z][a-z0-9-]*)/g)].map((m) => m[1]).filter((o) => !(o in command.options)),
      ).toEqual([]);
      expect(help).toMatch(/^ {2}-h, --help {2,}Show this help\.$/m);
      // The same text after a usage error, on stderr.
      const bad = capture();
      expect(await main([...argv, '--no-such-option'], bad)).toBe(2);
      expect(bad.err()).toContain(`\n\n${help}`);
      expect(bad.err().match(/Usage:/g)).toHaveLength(1);
    },
  );

  it("a group's --help starts with one Usage: and lists each subcommand (with its other names)", async () => {
    for (const group of COMMANDS.filter((c) => 'subcommands' in c)) {
      const io = capture();
      expect(await main([group.name, '--help'], io)).toBe(0);
      expect(io.out().startsWith(`Usage: faceid ${group.name} <subcommand>`)).toBe(true);
      expect(io.out().match(/Usage:/g)).toHaveLength(1);
    }
    const ws = capture();
    await main(['workstation', '--help'], ws);
    expect(ws.out()).toMatch(/^ {2}list \(keys\) {2,}List the workstations/m);
  });

  it('the usage lines the issue named: simulate (once "Usage:", aligned), bench-engine (--threads, --peer)', async () => {
    const simulate = capture();
    await main(['simulate', '--help'], simulate);
    expect(simulate.out().split('\n').slice(0, 2)).toEqual([
      'Usage: faceid simulate --url WS_URL --token TOKEN [--photo FILE] [--fps N] [--mode KIND | --still]',
      '                       [--camera-label TEXT] [--no-hello] [--seed N]',
    ]);
    const bench = capture();
    await main(['bench-engine', '--help'], bench);
    expect(bench.out().split('\n')[0]).toBe(
      'Usage: faceid bench-engine [--json] [--seconds S] [--threads N] [--image FILE] [--peer]',
    );
  });
});

describe('parseIntInRange', () => {
  it('accepts whole numbers in range only', () => {
    expect(parseIntInRange('16', 1, 64)).toBe(16);
    expect(parseIntInRange(' 3 ', 1, 64)).toBe(3);
    expect(parseIntInRange('65', 1, 64)).toBeUndefined();
    expect(parseIntInRange('1e1', 1, 64)).toBeUndefined();
    expect(parseIntInRange('', 1, 64)).toBeUndefined();
    expect(parseIntInRange('0x10', 1, 64)).toBeUndefined();
  });
});
