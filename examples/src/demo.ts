/**
 * `pnpm demo`: the same order/notification application on every configured transport, side by side.
 *
 *   pnpm demo                       memory, plus each broker whose address is set (KAFKA_BROKERS, RABBITMQ_URL, REDIS_URL, NATS_URL, DATABASE_URL, MQTT_URL)
 *   pnpm demo --all                 memory, kafka, rabbitmq, redis at their default loopback addresses
 *   pnpm demo --only kafka,redis    just those
 *   pnpm demo --messages 5000       load size (default 2000)
 *   pnpm demo --json                the rows as JSON
 */
import { TRANSPORT_KINDS, formatTable, runOn, type ComparisonRow, type TransportKind } from './compare.js';

function parseArgs(argv: readonly string[]) {
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith(`${flag}=`))?.split('=')[1];
  };
  const only = value('--only')?.split(',').filter(Boolean);
  for (const kind of only ?? []) if (!(TRANSPORT_KINDS as readonly string[]).includes(kind)) throw new Error(`--only: unknown transport "${kind}" (allowed: ${TRANSPORT_KINDS.join(', ')})`);
  const messages = Number(value('--messages') ?? 2000);
  if (!Number.isInteger(messages) || messages < 1 || messages > 1_000_000) throw new Error('--messages: an integer from 1 to 1000000');
  const configured: TransportKind[] = ['memory'];
  if (process.env.KAFKA_BROKERS) configured.push('kafka');
  if (process.env.RABBITMQ_URL) configured.push('rabbitmq');
  if (process.env.REDIS_URL) configured.push('redis', 'redis-streams');
  if (process.env.NATS_URL) configured.push('nats');
  if (process.env.DATABASE_URL) configured.push('postgres');
  if (process.env.MQTT_URL) configured.push('mqtt');
  const kinds = (only as TransportKind[] | undefined) ?? (argv.includes('--all') ? [...TRANSPORT_KINDS] : configured);
  return { kinds, messages, json: argv.includes('--json') };
}

const { kinds, messages, json } = parseArgs(process.argv.slice(2));
const print = json ? () => {} : (line: string) => console.log(line);
print(`Switchboard demo: ${messages} orders keyed by 50 products (1% flaky once, 0.4% malformed), then 50 mails while the notifier is offline.`);
const rows: ComparisonRow[] = [];
for (const [i, kind] of kinds.entries()) {
  const row = await runOn(kind, { messages, story: i === 0 || kinds.length === 1, print });
  rows.push(row);
  print(`  ${kind}: ${row.error ? row.error : 'done'}`);
}
if (json) {
  console.log(JSON.stringify(rows, null, 2));
} else {
  print('');
  print(formatTable(rows));
  if (kinds.length === 1 && kinds[0] === 'memory') {
    print(
      '\nOnly the in-memory transport ran. Start the brokers (bash scripts/brokers.sh up) and run `pnpm demo --all` to compare Kafka, RabbitMQ, Redis Pub/Sub, Redis Streams, NATS JetStream, the PostgreSQL queue and MQTT.',
    );
  }
  print(
    "\nWhy: Redis Pub/Sub keeps nothing, so mails sent while nobody listens are lost; Kafka keeps a log per partition, so a key keeps its order and a group resumes where it committed; RabbitMQ keeps the group queue but spreads it over concurrent handlers round-robin, so order per key is not promised; Redis Streams keeps the stream and each group's position, and orders by key within one member (not across members of a group); NATS JetStream keeps the subject in a stream and each group's durable consumer, with the same per-member order; the PostgreSQL queue keeps rows per group and claims a key only when its earlier messages are done, so per-key order holds across the members of a group; MQTT keeps a static member's messages in its broker sessions while it is away, and deals a group's messages round-robin over its members' sessions, so order per key is not promised.",
  );
}
process.exit(rows.some((r) => r.transport === 'memory' && r.error) ? 1 : 0);
