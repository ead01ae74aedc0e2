#!/usr/bin/env node
/**
 * `switchboard`: operate dead letters, the parking lot and the fallback relay.
 * Config comes from the same places as the library (--config file, SWITCHBOARD_CONFIG, SWITCHBOARD__*).
 * Exit codes: 0 done, 1 failed (connection, nothing found...), 2 usage or config error.
 */
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import cliProgress from 'cli-progress';
import {
  type BusConfig,
  ConfigError,
  consoleLogger,
  createBusFromConfig,
  DeadLetterHeaders,
  defaultTransportRegistry,
  FallbackRelay,
  type FallbackStore,
  loadBusConfig,
  type ParkedMessage,
  type ParkingFilter,
  type ParkingLot,
  replayParked,
  replayTo,
  resolveTransportConfig,
  selectParked,
  type AnyTransportFactory,
  type TransportRegistry,
} from '@switchboard/core';
import { describeFailure, redactUrl } from '@switchboard/core/transport';
import { walkTransportDeadLetters, type TransportDeadLetter } from './dlq-source.js';

class UsageError extends Error {}

interface GlobalOptions {
  config?: string;
  json?: boolean;
  ndjson?: boolean;
  databaseUrl?: string;
  parkingTable?: string;
  transportModule?: string[];
}

interface FilterOptions {
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

function parseTime(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const relative = /^(\d+)([smhd])$/.exec(value);
  if (relative) return Date.now() - Number(relative[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[relative[2] as 's' | 'm' | 'h' | 'd'];
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw new UsageError(`${flag}: expected an ISO time or a duration like 30m, 2h, 1d (got "${value}")`);
  return at;
}

function filterFrom(options: FilterOptions): ParkingFilter {
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

async function openParkingLot(global: GlobalOptions): Promise<ParkingLot & { close(): Promise<void> }> {
  const url = global.databaseUrl ?? process.env.DATABASE_URL;
  if (!url) throw new UsageError('the parking lot needs --database-url or DATABASE_URL (postgres://...)');
  const { openPostgresParkingLot } = await import('@switchboard/postgres');
  return openPostgresParkingLot(url, global.parkingTable);
}

async function openStore(url: string, name: string | undefined): Promise<FallbackStore & { close(): Promise<void> }> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { openPostgresFallbackStore } = await import('@switchboard/postgres');
    return openPostgresFallbackStore(url, name);
  }
  if (/^rediss?:\/\//.test(url)) {
    const redis = (await optionalImport('@switchboard/redis-pubsub')) as { openRedisFallbackStore(url: string, key?: string): Promise<FallbackStore & { close(): Promise<void> }> } | undefined;
    if (!redis) throw new UsageError('a redis:// store needs the package @switchboard/redis-pubsub (npm install @switchboard/redis-pubsub)');
    return redis.openRedisFallbackStore(url, name);
  }
  throw new UsageError(`--store: expected postgres:// or redis:// (got "${redactUrl(url)}")`);
}

/** The first-party adapters the CLI uses when they are installed (optional peer dependencies). */
const FIRST_PARTY_ADAPTERS = ['@switchboard/kafka', '@switchboard/rabbitmq', '@switchboard/redis-pubsub'];

/**
 * Imports `name` as the application in the working directory has it installed (else as installed next
 * to the CLI), or undefined when that package itself is not installed; any other failure is reported.
 */
async function optionalImport(name: string): Promise<Record<string, unknown> | undefined> {
  try {
    let resolved: string | undefined;
    try {
      resolved = pathToFileURL(createRequire(join(process.cwd(), 'package.json')).resolve(name)).href;
    } catch {
      resolved = undefined;
    }
    return (await import(resolved ?? name)) as Record<string, unknown>;
  } catch (error) {
    const code = (error as { code?: string } | undefined)?.code;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((error as Error).message).includes(`'${name}'`)) return undefined;
    throw new Error(`${name} is installed but failed to load: ${describeFailure(error, 500).message}`, { cause: error });
  }
}

/**
 * The transports the CLI can connect: memory, the installed first-party adapters, and the packages
 * named in --transport-module / SWITCHBOARD_TRANSPORT_MODULES (each exporting `transportFactory`).
 */
async function transportRegistry(global: GlobalOptions): Promise<TransportRegistry> {
  const extra = [
    ...(global.transportModule ?? []),
    ...(process.env.SWITCHBOARD_TRANSPORT_MODULES ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
  const factories: AnyTransportFactory[] = [];
  for (const name of [...FIRST_PARTY_ADAPTERS, ...extra]) {
    const module = await optionalImport(name);
    if (!module) {
      if (extra.includes(name)) throw new UsageError(`--transport-module: ${name} is not installed`);
      continue;
    }
    const factory = module.transportFactory as AnyTransportFactory | undefined;
    if (!factory) throw new UsageError(`${name} exports no transportFactory`);
    factories.push(factory);
  }
  return defaultTransportRegistry.with(factories);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A message body as JSON output shows it: the decoded JSON value when the bytes are JSON, the text
 * when they are UTF-8, base64 otherwise; `encoding` says which. Never `{"type":"Buffer","data":[…]}`.
 */
export function bodyForJson(bytes: Uint8Array): { encoding: 'json'; value: unknown } | { encoding: 'utf8' | 'base64'; value: string } {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return { encoding: 'base64', value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') };
  }
  try {
    return { encoding: 'json', value: JSON.parse(text) as unknown };
  } catch {
    return { encoding: 'utf8', value: text };
  }
}

/** JSON.stringify replacer: bytes are read before their toJSON() turns them into number arrays. */
function bytesAsBodies(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  return raw instanceof Uint8Array ? bodyForJson(raw) : value;
}

/** `--json`: one document; `--ndjson` (lists): one compact JSON value per line; else the text form. */
function print(global: GlobalOptions, data: unknown, text: () => string): void {
  if (global.ndjson && Array.isArray(data)) {
    for (const item of data) process.stdout.write(`${JSON.stringify(item, bytesAsBodies)}\n`);
    return;
  }
  if (global.json || global.ndjson) process.stdout.write(`${JSON.stringify(data, bytesAsBodies, 2)}\n`);
  else process.stdout.write(`${text()}\n`);
}

/** Left-aligned columns, two spaces apart; `empty` when there are no rows. */
function table(header: readonly string[], rows: readonly string[][], empty: string): string {
  if (rows.length === 0) return empty;
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  return all.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')).join('\n');
}

function parkedTable(messages: readonly ParkedMessage[]): string {
  return table(
    ['id', 'message id', 'topic', 'error', 'reason', 'attempts', 'parked at', 'replayed'],
    messages.map((m) => [
      m.id,
      m.messageId,
      m.originalTopic,
      `${m.errorName}: ${m.errorMessage}`.slice(0, 60),
      m.reason,
      String(m.attempts),
      new Date(m.parkedAt).toISOString(),
      m.replayedAt ? `${m.replayCount}x` : '-',
    ]),
    'no parked messages match',
  );
}

function letterTable(letters: readonly TransportDeadLetter[]): string {
  return table(
    ['message id', 'original topic', 'error', 'reason', 'attempts', 'last failure'],
    letters.map((l) => [l.id, l.originalTopic, `${l.errorName}: ${l.errorMessage}`.slice(0, 60), l.reason, String(l.attempts), new Date(l.lastFailureAt).toISOString()]),
    'no dead letters match',
  );
}

async function withBus<R>(global: GlobalOptions, run: (bus: Awaited<ReturnType<typeof createBusFromConfig>>, config: BusConfig) => Promise<R>): Promise<R> {
  const config = await loadBusConfig(global.config ? { file: global.config } : {});
  const bus = await createBusFromConfig(config, { registry: await transportRegistry(global) });
  try {
    return await run(bus, config);
  } finally {
    await bus.close();
  }
}

function progressBar(global: GlobalOptions, total: number): { update(done: number): void; stop(): void } {
  if (global.json || global.ndjson || total < 2) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { format: 'replaying [{bar}] {value}/{total} {eta_formatted} left', stream: process.stderr, noTTYOutput: true, notTTYSchedule: 2000 },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return { update: (done) => bar.update(done), stop: () => bar.stop() };
}

function addFilters(command: Command): Command {
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

function requireDlqTopic(options: FilterOptions): string {
  if (!options.dlqTopic) throw new UsageError('--source transport needs --dlq-topic <topic>');
  return options.dlqTopic;
}

export function buildProgram(): Command {
  const program = new Command('switchboard')
    .description('Operate Switchboard dead letters, the parking lot and the fallback relay.')
    .option('--config <file>', 'bus config file (JSON/YAML); default SWITCHBOARD_CONFIG and SWITCHBOARD__* variables')
    .option('--database-url <url>', 'parking lot database (default DATABASE_URL)')
    .option('--parking-table <name>', 'parking lot table (default switchboard_parked)')
    .option('--transport-module <package...>', 'extra adapter packages exporting transportFactory (also SWITCHBOARD_TRANSPORT_MODULES, comma-separated)')
    .option('--json', 'machine-readable output: one JSON document; bodies decoded ({ encoding: json|utf8|base64, value })')
    .option('--ndjson', 'like --json, but lists as one JSON value per line (for streams of letters)')
    .showHelpAfterError()
    .exitOverride();
  const global = () => program.opts<GlobalOptions>();
  const dlq = program.command('dlq').description('list, show, replay or purge dead letters').exitOverride();

  addFilters(dlq.command('list').description('list dead letters'))
    .exitOverride()
    .action(async (options: FilterOptions) => {
      const filter = filterFrom(options);
      if (options.source === 'parking') {
        const lot = await openParkingLot(global());
        try {
          const messages = await lot.list(filter);
          print(global(), messages, () => parkedTable(messages));
        } finally {
          await lot.close();
        }
        return;
      }
      const dlqTopic = requireDlqTopic(options);
      const letters = await withBus(global(), (bus) => walkTransportDeadLetters(bus.transport, dlqTopic, { filter, ids: [], limit: filter.limit!, idleMs: Number(options.idleMs), mode: 'browse' }));
      print(global(), letters, () => letterTable(letters));
    });

  addFilters(dlq.command('show').description('show one dead letter with its headers and payload').argument('<id>', 'parking-lot id, or message id with --source transport'))
    .exitOverride()
    .action(async (id: string, options: FilterOptions) => {
      let found: ParkedMessage | TransportDeadLetter | undefined;
      if (options.source === 'parking') {
        const lot = await openParkingLot(global());
        try {
          found = await lot.get(id);
        } finally {
          await lot.close();
        }
      } else {
        const dlqTopic = requireDlqTopic(options);
        [found] = await withBus(global(), (bus) => walkTransportDeadLetters(bus.transport, dlqTopic, { filter: {}, ids: [id], limit: 1, idleMs: Number(options.idleMs), mode: 'browse' }));
      }
      if (!found) {
        console.error(`switchboard: no dead letter ${id}`);
        process.exitCode = 1;
        return;
      }
      const payload = Buffer.from('payload' in found ? found.payload : found.body).toString('utf8');
      print(global(), found, () => `${JSON.stringify({ ...found, payload: undefined, body: undefined }, null, 2)}\npayload: ${payload}`);
    });

  addFilters(dlq.command('replay').description('send dead letters back to their original topic').argument('[ids...]', 'ids to replay (default: everything the filters match)'))
    .option('--dry-run', 'show what would be replayed, send nothing')
    .option('--rate <perSecond>', 'replay at most this many messages per second')
    .exitOverride()
    .action(async (ids: string[], options: FilterOptions & { dryRun?: boolean; rate?: string }) => {
      const filter = filterFrom(options);
      const rate = options.rate === undefined ? undefined : Number(options.rate);
      if (rate !== undefined && !(rate > 0)) throw new UsageError(`--rate: a positive number (got "${options.rate}")`);
      if (options.source === 'parking') {
        const lot = await openParkingLot(global());
        try {
          const selection = ids.length > 0 ? ids : filter;
          if (options.dryRun) {
            const planned = await selectParked(lot, selection);
            print(global(), { dryRun: true, messages: planned }, () => `dry run: would replay ${planned.length} message(s)\n${parkedTable(planned)}`);
            return;
          }
          const replayed = await withBus(global(), async (bus) => {
            const bar = progressBar(global(), ids.length || filter.limit!);
            try {
              return await replayParked(lot, bus.publisher, selection, { ...(rate ? { ratePerSecond: rate } : {}), onProgress: (done) => bar.update(done) });
            } finally {
              bar.stop();
            }
          });
          if (replayed.length === 0) process.exitCode = 1;
          print(global(), { replayed: replayed.map((m) => m.id) }, () => `replayed ${replayed.length} message(s) to their original topics`);
        } finally {
          await lot.close();
        }
        return;
      }
      const dlqTopic = requireDlqTopic(options);
      const letters = await withBus(global(), async (bus) => {
        const interval = rate ? 1000 / rate : 0;
        return walkTransportDeadLetters(bus.transport, dlqTopic, { filter, ids, limit: filter.limit!, idleMs: Number(options.idleMs), mode: options.dryRun ? 'browse' : 'replay' }, async (letter) => {
          if (!letter.originalTopic) throw new Error(`dead letter ${letter.id} has no x-dlq-original-topic header: cannot replay it`);
          if (interval) await new Promise((resolve) => setTimeout(resolve, interval));
          await replayTo(bus.publisher, letter.originalTopic, letter.headers[DeadLetterHeaders.originalGroup], {
            id: letter.id,
            ...(letter.key !== undefined ? { key: letter.key } : {}),
            headers: { ...letter.headers },
            payload: letter.body,
          });
        });
      });
      if (letters.length === 0) process.exitCode = 1;
      print(
        global(),
        { dryRun: Boolean(options.dryRun), messages: letters.map((l) => l.id) },
        () => `${options.dryRun ? 'dry run: would replay' : 'replayed'} ${letters.length} dead letter(s)\n${letterTable(letters)}`,
      );
    });

  addFilters(dlq.command('purge').description('delete dead letters (parking lot rows, or consume them from the transport DLQ)').argument('[ids...]', 'ids to purge'))
    .option('--dry-run', 'show what would be deleted')
    .exitOverride()
    .action(async (ids: string[], options: FilterOptions & { dryRun?: boolean }) => {
      const filter = filterFrom(options);
      if (options.source === 'parking') {
        const lot = await openParkingLot(global());
        try {
          const targets = await selectParked(lot, ids.length > 0 ? ids : filter);
          const deleted = options.dryRun ? 0 : await lot.delete(targets.map((m) => m.id));
          print(global(), { dryRun: Boolean(options.dryRun), ids: targets.map((m) => m.id), deleted }, () =>
            options.dryRun ? `dry run: would delete ${targets.length} message(s)` : `deleted ${deleted} message(s)`,
          );
        } finally {
          await lot.close();
        }
        return;
      }
      const dlqTopic = requireDlqTopic(options);
      const letters = await withBus(global(), (bus) =>
        walkTransportDeadLetters(bus.transport, dlqTopic, { filter, ids, limit: filter.limit!, idleMs: Number(options.idleMs), mode: options.dryRun ? 'browse' : 'purge' }),
      );
      print(global(), { dryRun: Boolean(options.dryRun), ids: letters.map((l) => l.id) }, () => `${options.dryRun ? 'dry run: would purge' : 'purged'} ${letters.length} dead letter(s)`);
    });

  program
    .command('relay')
    .description('drain a fallback store back to the configured transport (runs until SIGINT/SIGTERM)')
    .requiredOption('--store <url>', 'fallback store: postgres://... or redis://...')
    .option('--name <name>', 'table (postgres) or stream key (redis) of the store')
    .option('--once', 'drain once and exit')
    .option('--lease-ms <ms>', 'relay lease time to live; a crashed relay is replaced after this long', '15000')
    .option('--batch-size <n>', 'records read and sent per round', '500')
    .exitOverride()
    .action(async (options: { store: string; name?: string; once?: boolean; leaseMs: string; batchSize: string }) => {
      const leaseMs = Number(options.leaseMs);
      const batchSize = Number(options.batchSize);
      if (!Number.isInteger(leaseMs) || leaseMs < 100) throw new UsageError(`--lease-ms: an integer of at least 100 (got "${options.leaseMs}")`);
      if (!Number.isInteger(batchSize) || batchSize < 1) throw new UsageError(`--batch-size: a positive integer (got "${options.batchSize}")`);
      const config = await loadBusConfig(global().config ? { file: global().config! } : {});
      const { factory, options: transportOptions } = resolveTransportConfig(config, await transportRegistry(global()));
      const transport = await factory.create(transportOptions);
      const store = await openStore(options.store, options.name);
      const relay = new FallbackRelay({
        store,
        transport,
        leaseMs,
        batchSize,
        observer: { onEvent: (e) => e.type === 'relayed' && !global().json && !global().ndjson && consoleLogger.info({ topic: e.topic, count: e.count, lagMs: e.lagMs }, 'relayed') },
      });
      try {
        if (options.once) {
          const result = await relay.drainOnce();
          print(global(), result, () => `relayed ${result.relayed} message(s); store ${result.empty ? 'empty' : 'not empty'}`);
          if (result.failed) process.exitCode = 1;
          return;
        }
        relay.start();
        console.error(`switchboard relay ${relay.owner}: draining to ${transport.kind}; Ctrl-C to stop`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await relay.stop();
      } finally {
        await store.close();
        await transport.close();
      }
    });
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
