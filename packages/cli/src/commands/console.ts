/** `switchboard console`: the DLQ console in a browser, on loopback by default. */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { type BusConfig, type ConsoleStore, createBusFromConfig, defaultDeadLetterTopic, loadBusConfig, type ParkingLot } from '@switchboard/core';
import { type ConsoleSource, DeadLetterConsole, serveConsole } from '@switchboard/console';
import { UsageError, type GlobalOptions } from '../options.js';
import { openParkingLot, transportRegistry } from '../adapters.js';

interface ConsoleCommandOptions {
  bus?: string[];
  dlq?: string[];
  host: string;
  port: string;
  readOnly?: boolean;
  scanIntervalMs: string;
  tokensFile?: string;
}

/** The DLQs a bus config implies: each concrete subscription's dead-letter topic. */
export function deadLetterTopicsOf(config: BusConfig): string[] {
  const topics = new Set<string>();
  for (const sub of Object.values(config.subscriptions)) {
    const deadLetter = sub.deadLetter ?? config.defaults.deadLetter;
    if (deadLetter === false || sub.pattern) continue;
    topics.add(typeof deadLetter === 'string' ? deadLetter : defaultDeadLetterTopic(sub.topic));
  }
  return [...topics];
}

/**
 * Operator name → token: `--tokens-file` (JSON object), else SWITCHBOARD_CONSOLE_TOKEN (operator
 * "operator"), else a new random token written to ~/.switchboard/console-token (mode 0600). The token
 * itself is never printed.
 */
async function consoleTokens(file: string | undefined): Promise<{ tokens: Record<string, string>; notice: string }> {
  if (file) {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as unknown;
    if (!parsed || typeof parsed !== 'object' || Object.values(parsed).some((v) => typeof v !== 'string')) throw new UsageError(`--tokens-file: a JSON object of operator name → token (${file})`);
    return { tokens: parsed as Record<string, string>, notice: `sign in with a token from ${file}` };
  }
  const fromEnv = process.env.SWITCHBOARD_CONSOLE_TOKEN;
  if (fromEnv) return { tokens: { operator: fromEnv }, notice: 'sign in with the token in SWITCHBOARD_CONSOLE_TOKEN' };
  const dir = join(homedir(), '.switchboard');
  const path = join(dir, 'console-token');
  let token = await readFile(path, 'utf8').then(
    (t) => t.trim(),
    () => '',
  );
  if (token.length < 16) {
    token = randomBytes(24).toString('base64url');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(path, `${token}\n`, { mode: 0o600 });
  }
  await chmod(path, 0o600);
  return { tokens: { operator: token }, notice: `sign in with the token in ${path}` };
}

/** Adds the `console` command to `program`. */
export function addConsoleCommand(program: Command, global: () => GlobalOptions): void {
  program
    .command('console')
    .description("serve the DLQ console: every configured transport's DLQs and the parking lot, with replay, park and discard (runs until SIGINT/SIGTERM)")
    .option('--bus <file...>', 'bus config files, one per transport (default: --config / SWITCHBOARD_CONFIG); a source is named after its file')
    .option('--dlq <source=topic...>', "more dead-letter topics to show, e.g. kafka=payments-dlq (besides each config's subscriptions)")
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', '8686')
    .option('--read-only', 'show everything, allow no action')
    .option('--scan-interval-ms <ms>', 'how often the DLQs are rescanned', '30000')
    .option('--tokens-file <file>', 'JSON object of operator name → token (default SWITCHBOARD_CONSOLE_TOKEN, else a token in ~/.switchboard/console-token)')
    .exitOverride()
    .action(async (options: ConsoleCommandOptions) => {
      const port = Number(options.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: 0 to 65535 (got "${options.port}")`);
      const scanIntervalMs = Number(options.scanIntervalMs);
      if (!Number.isInteger(scanIntervalMs) || scanIntervalMs < 0) throw new UsageError(`--scan-interval-ms: a non-negative integer (got "${options.scanIntervalMs}")`);
      const { tokens, notice } = await consoleTokens(options.tokensFile);
      const registry = await transportRegistry(global());
      const files: Array<string | undefined> = options.bus?.length ? options.bus : [global().config];
      const buses: Array<Awaited<ReturnType<typeof createBusFromConfig>>> = [];
      const sources: ConsoleSource[] = [];
      let lot: (ParkingLot & { close(): Promise<void> }) | undefined;
      let store: (ConsoleStore & { close(): Promise<void> }) | undefined;
      try {
        for (const file of files) {
          const config = await loadBusConfig(file ? { file } : {});
          let name = file ? basename(file, extname(file)) : config.transport.kind;
          while (sources.some((s) => s.name === name)) name = `${name}-${sources.length + 1}`;
          const bus = await createBusFromConfig(config, { registry });
          buses.push(bus);
          sources.push({ name, transport: bus.transport, publisher: bus.publisher, deadLetterTopics: deadLetterTopicsOf(config) });
        }
        for (const extra of options.dlq ?? []) {
          const [name, topic] = extra.split('=', 2);
          const index = sources.findIndex((s) => s.name === name);
          if (index < 0 || !topic) throw new UsageError(`--dlq ${extra}: expected <source>=<topic> with a source among ${sources.map((s) => s.name).join(', ')}`);
          const source = sources[index]!;
          sources[index] = { ...source, deadLetterTopics: [...new Set([...source.deadLetterTopics, topic])] };
        }
        if (global().databaseUrl ?? process.env.DATABASE_URL) {
          lot = await openParkingLot(global());
          const { openPostgresConsoleStore } = await import('@switchboard/postgres');
          store = await openPostgresConsoleStore((global().databaseUrl ?? process.env.DATABASE_URL)!);
        } else console.error('switchboard console: no --database-url / DATABASE_URL: no parking lot, and jobs and the audit trail are kept in memory only');
        const console_ = new DeadLetterConsole({ sources, tokens, ...(lot ? { parkingLot: lot } : {}), ...(store ? { store } : {}), readOnly: Boolean(options.readOnly), scanIntervalMs });
        const { resumed } = await console_.start();
        const served = await serveConsole(console_, { host: options.host, port });
        const loopback = /^(127\.|::1$|localhost$)/.test(options.host);
        console.error(
          `switchboard console: ${served.url} (${sources.map((s) => `${s.name}: ${s.deadLetterTopics.join(', ') || 'no DLQ'}`).join('; ')}; ${notice}${resumed ? `; resumed ${resumed} job(s)` : ''})`,
        );
        if (!loopback) console.error('switchboard console: listening beyond loopback: put it behind TLS');
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await served.close();
        await console_.close();
      } finally {
        for (const bus of buses) await bus.close().catch(() => undefined);
        await lot?.close().catch(() => undefined);
        await store?.close().catch(() => undefined);
      }
    });
}
