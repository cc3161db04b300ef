import { main, mainUsage, parseIntInRange, type MainIo } from './main';

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

  it('lists a group\'s subcommands for --help; refuses a missing or unknown one with exit code 2', async () => {
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

  it('prints a subcommand\'s usage for --help', async () => {
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
