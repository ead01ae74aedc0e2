/** Options and filters shared by the commands. */
import { type Command, Option } from 'commander';
import type { ParkingFilter } from '@switchboard/core';

export class UsageError extends Error {}

export interface GlobalOptions {
  config?: string;
  json?: boolean;
  ndjson?: boolean;
  databaseUrl?: string;
  parkingTable?: string;
  transportModule?: string[];
}

export interface FilterOptions {
  source: 'parking' | 'transport';
  dlqTopic?: string;
  topic?: string;
  errorName?: string;
  since?: string;
  until?: string;
  limit: string;
  includeReplayed?: boolean;
  idleMs: string;
}

export function parseTime(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const relative = /^(\d+)([smhd])$/.exec(value);
  if (relative) return Date.now() - Number(relative[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[relative[2] as 's' | 'm' | 'h' | 'd'];
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw new UsageError(`${flag}: expected an ISO time or a duration like 30m, 2h, 1d (got "${value}")`);
  return at;
}

export function filterFrom(options: FilterOptions): ParkingFilter {
  const limit = Number(options.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit: a positive integer (got "${options.limit}")`);
  return {
    ...(options.topic !== undefined ? { topic: options.topic } : {}),
    ...(options.errorName !== undefined ? { errorName: options.errorName } : {}),
    ...(options.since !== undefined ? { since: parseTime(options.since, '--since')! } : {}),
    ...(options.until !== undefined ? { until: parseTime(options.until, '--until')! } : {}),
    ...(options.includeReplayed ? { includeReplayed: true } : {}),
    limit,
  };
}

export function addFilters(command: Command): Command {
  return command
    .addOption(new Option('--source <source>', "parking lot (database) or the transport's DLQ").choices(['parking', 'transport']).default('parking'))
    .option('--dlq-topic <topic>', 'dead-letter topic to read (--source transport)')
    .option('--topic <topic>', 'original topic')
    .option('--error-name <name>', 'error name, e.g. NonRetryableError')
    .option('--since <time>', 'failed at or after (ISO time or 30m / 2h / 1d ago)')
    .option('--until <time>', 'failed before (ISO time or duration ago)')
    .option('--limit <n>', 'at most this many', '100')
    .option('--include-replayed', 'parking lot: include messages already replayed')
    .option('--idle-ms <ms>', 'transport: stop reading after this long without a message', '2000');
}

export function requireDlqTopic(options: FilterOptions): string {
  if (!options.dlqTopic) throw new UsageError('--source transport needs --dlq-topic <topic>');
  return options.dlqTopic;
}
