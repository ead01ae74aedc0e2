/** `switchboard relay`: drains a fallback store back to the configured transport. */
import type { Command } from 'commander';
import { consoleLogger, FallbackRelay, loadBusConfig, resolveTransportConfig } from '@switchboard/core';
import { UsageError, type GlobalOptions } from '../options.js';
import { openStore, transportRegistry } from '../adapters.js';
import { print } from '../output.js';

/** Adds the `relay` command to `program`. */
export function addRelayCommand(program: Command, global: () => GlobalOptions): void {
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
}
