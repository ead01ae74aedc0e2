/**
 * `pnpm failover`: the first seed's acks comparison on a real 3-broker Kafka cluster
 * (`scripts/kafka.sh cluster up`, replication factor 3, min.insync.replicas 2). For acks 0, 1 and all,
 * the same producer publishes 20,000 messages while a consumer group reads them, and the leader of
 * partition 0 is SIGKILLed after a third was sent; then the broker is started again.
 *
 *   pnpm failover [--messages N] [--driver kafkajs|platformatic] [--kill partition-leader|group-coordinator] [--json]
 *
 * `--kill group-coordinator` SIGKILLs the consumer group's coordinator instead of the partition-0 leader.
 *
 * Env: KAFKA_CLUSTER_BROKERS (default 127.0.0.1:19091,127.0.0.1:19092,127.0.0.1:19093).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { DeliveryGuarantee } from '@switchboard/core';
import { runLeaderFailover, type LeaderFailoverReport } from '@switchboard/kafka/testing';

const run = promisify(execFile);
const argv = process.argv.slice(2);
const messagesFlag = argv.indexOf('--messages');
const total = messagesFlag >= 0 ? Number(argv[messagesFlag + 1]) : 20_000;
if (!Number.isInteger(total) || total < 300 || total > 1_000_000) throw new Error('--messages: an integer from 300 to 1000000');
const driverFlag = argv.indexOf('--driver');
const driver = driverFlag >= 0 ? argv[driverFlag + 1] : 'kafkajs';
if (driver !== 'kafkajs' && driver !== 'platformatic') throw new Error('--driver: kafkajs or platformatic');
const killFlag = argv.indexOf('--kill');
const kill = killFlag >= 0 ? argv[killFlag + 1] : 'partition-leader';
if (kill !== 'partition-leader' && kill !== 'group-coordinator') throw new Error('--kill: partition-leader or group-coordinator');
const brokers = (process.env.KAFKA_CLUSTER_BROKERS ?? '127.0.0.1:19091,127.0.0.1:19092,127.0.0.1:19093').split(',');
const script = fileURLToPath(new URL('../../scripts/kafka.sh', import.meta.url));
const cluster = async (...args: string[]) => void (await run('bash', [script, 'cluster', ...args]));

const reports: LeaderFailoverReport[] = [];
for (const guarantee of ['none', 'leader', 'all'] as DeliveryGuarantee[]) {
  process.stderr.write(
    `[failover] acks for "${guarantee}", driver ${driver}: ${total} messages, killing the ${kill === 'partition-leader' ? 'partition-0 leader' : 'group coordinator'} after ${Math.round(total / 3)}...\n`,
  );
  reports.push(
    await runLeaderFailover({
      brokers,
      guarantee,
      total,
      driver,
      kill,
      killBroker: (node) => cluster('kill', String(node)),
      startBroker: (node) => cluster('start', String(node)),
    }),
  );
}

if (argv.includes('--json')) {
  console.log(JSON.stringify(reports, null, 2));
} else {
  const rows = [
    ['guarantee (acks)', 'msg/s', 'acknowledged', 'rejected', 'delivered', 'lost (acked, not delivered)', 'duplicates', 'failover ms', 'consumer interrupted/resumed'],
    ...reports.map((r) => [
      `${r.guarantee} (${r.acks === -1 ? 'all' : r.acks})`,
      String(r.throughput),
      String(r.acknowledged),
      String(r.rejected),
      String(r.delivered),
      String(r.lost),
      String(r.duplicates),
      String(r.failoverMs),
      `${r.consumerInterrupted}/${r.consumerResumed}`,
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  console.log(
    `${kill === 'partition-leader' ? 'Leader of partition 0' : 'The consumer group coordinator'} SIGKILLed after ${Math.round(total / 3)} of ${total} messages; 3 brokers, replication factor 3, min.insync.replicas 2; producer ${driver}.`,
  );
  for (const [i, row] of rows.entries()) {
    console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}
process.exit(0);
