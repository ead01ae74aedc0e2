/** `switchboard dlq list | show | replay | purge`, on the parking lot or a transport DLQ. */
import type { Command } from 'commander';
import { DeadLetterHeaders, type ParkedMessage, replayParked, replayTo, selectParked } from '@switchboard/core';
import { walkTransportDeadLetters, type TransportDeadLetter } from '../dlq-source.js';
import { UsageError, type FilterOptions, type GlobalOptions, addFilters, filterFrom, requireDlqTopic } from '../options.js';
import { openParkingLot, withBus } from '../adapters.js';
import { letterTable, parkedTable, print, progressBar } from '../output.js';

/** Adds the `dlq` commands to `program`. */
export function addDlqCommands(program: Command, global: () => GlobalOptions): void {
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
}
