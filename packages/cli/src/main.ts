#!/usr/bin/env node
/**
 * `switchboard`: operate dead letters, the parking lot, the fallback and outbox relays; write the AsyncAPI document.
 * Config comes from the same places as the library (--config file, SWITCHBOARD_CONFIG, SWITCHBOARD__*).
 * Exit codes: 0 done, 1 failed (connection, nothing found...), 2 usage or config error.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '@switchboard/core';
import { UsageError, type GlobalOptions } from './options.js';
import { addDlqCommands } from './commands/dlq.js';
import { addRelayCommand } from './commands/relay.js';
import { addAsyncApiCommand } from './commands/asyncapi.js';
import { addConsoleCommand } from './commands/console.js';

export function buildProgram(): Command {
  const program = new Command('switchboard')
    .description('Operate Switchboard dead letters (CLI and browser console), the parking lot and the relays.')
    .option('--config <file>', 'bus config file (JSON/YAML); default SWITCHBOARD_CONFIG and SWITCHBOARD__* variables')
    .option('--database-url <url>', 'parking lot database (default DATABASE_URL)')
    .option('--parking-table <name>', 'parking lot table (default switchboard_parked)')
    .option('--transport-module <package...>', 'extra adapter packages exporting transportFactory (also SWITCHBOARD_TRANSPORT_MODULES, comma-separated)')
    .option('--json', 'machine-readable output: one JSON document; bodies decoded ({ encoding: json|utf8|base64, value })')
    .option('--ndjson', 'like --json, but lists as one JSON value per line (for streams of letters)')
    .showHelpAfterError()
    .exitOverride();
  const global = () => program.opts<GlobalOptions>();
  addDlqCommands(program, global);
  addRelayCommand(program, global);
  addAsyncApiCommand(program, global);
  addConsoleCommand(program, global);
  return program;
}

export async function main(argv: readonly string[] = process.argv): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? 0 : 2;
    if (error instanceof UsageError || error instanceof ConfigError) {
      console.error(`switchboard: ${error.message}`);
      return 2;
    }
    console.error(`switchboard: ${(error as Error).message ?? error}`);
    return 1;
  }
}

/**
 * Exits with `code` once everything written to stdout and stderr has been handed to the OS: a pipe to
 * a slow reader gets the whole output (process.exit alone drops what is still queued). A reader that
 * went away (EPIPE, `| head`) ends the wait.
 */
export async function exitAfterFlush(code: number): Promise<never> {
  const flushed = (stream: NodeJS.WriteStream) =>
    new Promise<void>((resolve) => {
      stream.once('error', () => resolve());
      stream.write('', () => resolve());
    });
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

// Run by bin/switchboard.js (or `node dist/cli/main.js` directly).
if (isMainModule()) main().then(exitAfterFlush);

function isMainModule(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}
