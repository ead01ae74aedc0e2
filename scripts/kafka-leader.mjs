// Prints the node id leading <topic> <partition> on the cluster at <brokers> (used by `kafka.sh cluster leader`).
import { createRequire } from 'node:module';
const require = createRequire(new URL('../packages/kafka/package.json', import.meta.url));
const { Kafka, logLevel } = require('kafkajs');
const [brokers, topic, partition] = process.argv.slice(2);
const admin = new Kafka({ clientId: 'switchboard-leader', brokers: brokers.split(','), logLevel: logLevel.NOTHING }).admin();
await admin.connect();
try {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  const leader = topics[0]?.partitions.find((p) => p.partitionId === Number(partition))?.leader;
  if (leader === undefined || leader < 0) throw new Error(`no leader for ${topic} partition ${partition}`);
  console.log(leader);
} finally {
  await admin.disconnect();
}
