#!/usr/bin/env node
/**
 * The `faceid` command line: analyze, eval, bench-engine, simulate, and the admin commands (clinic, workstation,
 * enrollment-key, enroll, mis, audit, calibrate) that work on the service's database.
 * Exit codes: 0 success, 1 a command failed (or some input did), 2 usage error.
 * Results go to stdout; progress, warnings and errors to stderr.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { analyzeCommand } from './analyze';
import { benchEngineCommand } from './bench-engine';
import { simulateCommand } from './simulate';
import { evalCommand } from './eval';
import { padEvalCommand } from './pad-eval';
import { auditGroup } from './audit';
import { clinicGroup, workstationGroup } from './clinics';
import { enrollCommand, enrollmentKeyGroup } from './enrollment';
import { misGroup } from './mis';
import { calibrateCommand } from './calibrate';

export { parseIntInRange } from './analyze';

export type OptionValues = Record<string, string | boolean | undefined>;

/** What a command may do with the outside world; main wires it to the process. */
export interface CommandIo {
  /** Writes one line (a newline is added) to stdout. */
  out(line: string): void;
  /** Writes text as is to stderr (add your own newline). */
  err(text: string): void;
  /** True when stderr is a terminal (progress may overwrite its line). */
  errIsTTY: boolean;
  /** Prints `message` and the command's usage to stderr; returns exit code 2 for the command to return. */
  usageError(message: string): number;
  /** The environment the configuration is read from (admin commands open the service's database with it). */
  env: NodeJS.ProcessEnv;
}

export interface Command {
  name: string;
  /** Other names it answers to (a group's subcommand renamed, the old name kept for scripts). */
  aliases?: readonly string[];
  summary: string;
  /**
   * Usage text: the synopsis, from `faceid <command>` on, then a blank line, the description and the options. main()
   * prints it after "Usage: "; a synopsis continued on more lines indents them as if that prefix were not there.
   */
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  allowPositionals: boolean;
  run(values: OptionValues, positionals: string[], io: CommandIo): Promise<number>;
}

/** Commands under one name: `faceid mis create ...`. Each subcommand's name is the word after the group's. */
export interface CommandGroup {
  name: string;
  summary: string;
  subcommands: readonly Command[];
}

export const COMMANDS: readonly (Command | CommandGroup)[] = [
  analyzeCommand,
  evalCommand,
  benchEngineCommand,
  simulateCommand,
  padEvalCommand,
  clinicGroup,
  workstationGroup,
  enrollmentKeyGroup,
  enrollCommand,
  misGroup,
  auditGroup,
  calibrateCommand,
];

const isGroup = (c: Command | CommandGroup): c is CommandGroup => 'subcommands' in c;

export function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: faceid <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `faceid <command> --help` for the options of a command.',
    '',
  ].join('\n');
}

/** A command's usage as printed: "Usage: " before the synopsis, its continuation lines indented to match. */
export function commandUsage(command: Pick<Command, 'usage'>): string {
  const text = command.usage.trim();
  const end = text.indexOf('\n\n');
  const synopsis = end < 0 ? text : text.slice(0, end);
  const rest = end < 0 ? '' : text.slice(end);
  const prefix = 'Usage: ';
  return `${prefix}${synopsis.split('\n').join(`\n${' '.repeat(prefix.length)}`)}${rest}\n`;
}

const subcommandLabel = (c: Command) => (c.aliases?.length ? `${c.name} (${c.aliases.join(', ')})` : c.name);

export function groupUsage(group: CommandGroup): string {
  const width = Math.max(...group.subcommands.map((c) => subcommandLabel(c).length));
  return [
    `Usage: faceid ${group.name} <subcommand> [options]`,
    '',
    `${group.summary}`,
    '',
    'Subcommands:',
    ...group.subcommands.map((c) => `  ${subcommandLabel(c).padEnd(width)}  ${c.summary}`),
    '',
    `Run \`faceid ${group.name} <subcommand> --help\` for its options.`,
    '',
  ].join('\n');
}

export interface MainIo {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown; isTTY?: boolean };
  /** Default: process.env. */
  env?: NodeJS.ProcessEnv;
}

/** Parses argv (without node and the script) and runs the command; resolves to the exit code. */
export async function main(argv: readonly string[], io: MainIo = process): Promise<number> {
  const [name, ...args] = argv;
  let rest = args;
  if (name === undefined) {
    io.stderr.write(mainUsage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(mainUsage());
    return 0;
  }
  const found = COMMANDS.find((c) => c.name === name);
  if (!found) {
    io.stderr.write(`faceid: unknown command "${name}".\n\n${mainUsage()}`);
    return 2;
  }
  let command: Command;
  if (isGroup(found)) {
    const [sub, ...subRest] = rest;
    if (sub === '--help' || sub === '-h' || sub === 'help') {
      io.stdout.write(groupUsage(found));
      return 0;
    }
    const subcommand = found.subcommands.find((c) => c.name === sub || (sub !== undefined && c.aliases?.includes(sub)));
    if (!subcommand) {
      const what = sub === undefined ? 'no subcommand given' : `unknown subcommand "${sub}"`;
      io.stderr.write(`faceid ${found.name}: ${what}.\n\n${groupUsage(found)}`);
      return 2;
    }
    // The subcommand is named in full ("mis create") in messages.
    command = { ...subcommand, name: `${found.name} ${subcommand.name}` };
    rest = subRest;
  } else {
    command = found;
  }
  const usage = commandUsage(command);
  const usageError = (message: string): number => {
    io.stderr.write(`faceid ${command.name}: ${message}\n\n${usage}`);
    return 2;
  };
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(usage);
    return 0;
  }
  let parsed: { values: OptionValues; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...rest],
      options: command.options,
      allowPositionals: command.allowPositionals,
      strict: true,
    }) as { values: OptionValues; positionals: string[] };
  } catch (err) {
    return usageError((err as Error).message);
  }
  const commandIo: CommandIo = {
    out: (line) => void io.stdout.write(`${line}\n`),
    err: (text) => void io.stderr.write(text),
    errIsTTY: io.stderr.isTTY === true,
    usageError,
    env: io.env ?? process.env,
  };
  try {
    return await command.run(parsed.values, parsed.positionals, commandIo);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    io.stderr.write(`faceid ${command.name}: ${e?.code ? `[${e.code}] ` : ''}${e?.message ?? String(err)}\n`);
    return 1;
  }
}

if (require.main === module) {
  // A closed pipe (e.g. `faceid analyze ... | head`) is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`faceid: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
