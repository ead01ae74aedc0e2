/** `switchboard relay`: drains a fallback store back to the configured transport, or (`--outbox`) publishes a transactional outbox. */
import type { Command } from 'commander';
import { type BusObserver, consoleLogger, FallbackRelay, loadBusConfig, OutboxRelay, resolveTransportConfig } from '@switchboard/core';
import { UsageError, type GlobalOptions } from '../options.js';
import { openOutboxStore, openStore, transportRegistry } from '../adapters.js';
import { print } from '../output.js';

/** Adds the `relay` command to `program`. */
export function addRelayCommand(program: Command, global: () => GlobalOptions): void {
  program
    .command('relay')
    .description('drain a fallback store back to the configured transport, or publish a transactional outbox (--outbox); runs until SIGINT/SIGTERM')
    .requiredOption('--store <url>', 'fallback store: postgres://... or redis://...; with --outbox: postgres://..., mysql://... or mariadb://...')
    .option('--outbox', 'publish the transactional outbox in --store (several relays share it)')
    .option('--name <name>', 'table (postgres, mysql) or stream key (redis) of the store')
    .option('--once', 'drain once and exit')
    .option('--lease-ms <ms>', 'relay lease time to live; a crashed relay is replaced after this long', '15000')
    .option('--batch-size <n>', 'records read and sent per round', '500')
    .exitOverride()
    .action(async (options: { store: string; outbox?: boolean; name?: string; once?: boolean; leaseMs: string; batchSize: string }) => {
      const leaseMs = Number(options.leaseMs);
      const batchSize = Number(options.batchSize);
      if (!Number.isInteger(leaseMs) || leaseMs < 100) throw new UsageError(`--lease-ms: an integer of at least 100 (got "${options.leaseMs}")`);
      if (!Number.isInteger(batchSize) || batchSize < 1) throw new UsageError(`--batch-size: a positive integer (got "${options.batchSize}")`);
      const config = await loadBusConfig(global().config ? { file: global().config! } : {});
      const { factory, options: transportOptions } = resolveTransportConfig(config, await transportRegistry(global()));
      const transport = await factory.create(transportOptions);
      const observer: BusObserver = {
        onEvent: (e) => e.type === 'relayed' && !global().json && !global().ndjson && consoleLogger.info({ topic: e.topic, count: e.count, lagMs: e.lagMs }, 'relayed'),
      };
      const store = options.outbox ? await openOutboxStore(options.store, options.name) : await openStore(options.store, options.name);
      const relay = options.outbox
        ? new OutboxRelay({ store: store as Awaited<ReturnType<typeof openOutboxStore>>, publisher: transport, leaseMs, batchSize, observer })
        : new FallbackRelay({ store: store as Awaited<ReturnType<typeof openStore>>, transport, leaseMs, batchSize, observer });
      try {
        if (options.once && relay instanceof OutboxRelay) {
          const result = await relay.drainOnce();
          const depth = relay.health().depth;
          print(global(), { ...result, depth }, () => `published ${result.relayed} message(s) of the outbox; ${depth} left`);
          if (result.failed) process.exitCode = 1;
          return;
        }
        if (options.once && relay instanceof FallbackRelay) {
          const result = await relay.drainOnce();
          print(global(), result, () => `relayed ${result.relayed} message(s); store ${result.empty ? 'empty' : 'not empty'}`);
          if (result.failed) process.exitCode = 1;
          return;
        }
        relay.start();
        console.error(`switchboard relay ${relay.owner}: ${options.outbox ? 'publishing the outbox' : 'draining'} to ${transport.kind}; Ctrl-C to stop`);
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
}
