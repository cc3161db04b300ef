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
    for (const name of ['analyze', 'eval', 'bench-engine']) expect(mainUsage()).toContain(name);
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
