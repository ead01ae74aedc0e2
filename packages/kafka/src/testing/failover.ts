import { CountingObserver, createBus, type DeliveryGuarantee } from '@switchboard/core';
import { createKafkaTransport } from '../index.js';
import { ACKS } from '../transport.js';

export interface LeaderFailoverOptions {
  /** Bootstrap brokers of a cluster of at least 3 (e.g. `scripts/kafka.sh cluster up`). */
  readonly brokers: readonly string[];
  readonly guarantee: DeliveryGuarantee;
  /** SIGKILLs the broker with this node id (as a crash would). */
  readonly killBroker: (nodeId: number) => Promise<void>;
  /** Starts that broker again; resolves once it answers. */
  readonly startBroker: (nodeId: number) => Promise<void>;
  /** Messages in all (default 20000), published in batches of 100 with at most 4 batches in flight. */
  readonly total?: number;
  /** Replicas of the topic (default 3; the brokers' min.insync.replicas applies). */
  readonly replicationFactor?: number;
  /** Bound on each wait, ms (default 60000). */
  readonly waitMs?: number;
  /** The Kafka driver of the producing and the consuming transport (default `kafkajs`). */
  readonly driver?: 'kafkajs' | 'platformatic';
  /**
   * Which broker is SIGKILLed: the leader of partition 0 (default), or the consumer group's
   * coordinator (the leader of the group's `__consumer_offsets` partition), whose loss makes the
   * consumer's commits fail while it finds the new coordinator and rejoins.
   */
  readonly kill?: 'partition-leader' | 'group-coordinator';
}

export interface LeaderFailoverReport {
  readonly guarantee: DeliveryGuarantee;
  readonly driver: 'kafkajs' | 'platformatic';
  readonly acks: 0 | 1 | -1;
  /** Node id of the broker SIGKILLed after a third of the messages were sent, and what it was. */
  readonly killedNode: number;
  readonly killed: 'partition-leader' | 'group-coordinator';
  readonly sent: number;
  /** Publishes that resolved: the guarantee was met (for acks 0: handed to the socket). */
  readonly acknowledged: number;
  /** Publishes that rejected (the caller knows they may not have landed). */
  readonly rejected: number;
  /** Distinct messages the consumer received. */
  readonly delivered: number;
  /** Acknowledged but never delivered: what the guarantee failed to keep. */
  readonly lost: number;
  readonly duplicates: number;
  /** Acknowledged messages per second over the run. */
  readonly throughput: number;
  /** Longest pause in acknowledgements after the kill, ms: how long publishing stalled. */
  readonly failoverMs: number;
  /** Consumer events during the run. */
  readonly consumerInterrupted: number;
  readonly consumerResumed: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * The first seed's failover, measured: a producer publishes `total` messages with one guarantee while a
 * consumer group reads them; after a third were sent, the leader of partition 0 is SIGKILLed. When the
 * producer is done, the broker is started again and the run waits until every replica is back in sync
 * (so runs can follow each other). Bounded in count and time.
 */
export async function runLeaderFailover(options: LeaderFailoverOptions): Promise<LeaderFailoverReport> {
  const total = options.total ?? 20_000;
  const waitMs = options.waitMs ?? 60_000;
  const transportOptions = {
    brokers: [...options.brokers],
    partitions: 3,
    replicationFactor: options.replicationFactor ?? 3,
    retries: 10,
    connectTimeoutMs: 3000,
    requestTimeoutMs: 5000,
    publishTimeoutMs: 30_000,
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 1000,
  };
  const driver = options.driver ?? 'kafkajs';
  const producerTransport = await createKafkaTransport({ ...transportOptions, driver });
  const consumerCounts = new CountingObserver();
  const consumerBus = createBus({ transport: await createKafkaTransport({ ...transportOptions, driver }), observer: consumerCounts });
  const bus = createBus({ transport: producerTransport, publisher: { guarantee: options.guarantee } });
  const topic = `sb-failover.${options.guarantee}.${driver}.${Date.now().toString(36)}`;
  const kill = options.kill ?? 'partition-leader';
  const group = `failover-${options.guarantee}-${kill}-${Date.now().toString(36)}`;
  let killedNode = -1;
  try {
    await producerTransport.ensureTopic(topic);
    const admin = producerTransport.admin;
    const received = new Map<string, number>();
    await consumerBus.subscriber.subscribe(
      topic,
      (m) => {
        received.set(m.id, (received.get(m.id) ?? 0) + 1);
      },
      { group, startFrom: 'earliest', concurrency: 3 },
    );

    // After the subscribe: the group has a coordinator (and __consumer_offsets exists) by then.
    await until(
      async () => {
        try {
          if (kill === 'partition-leader') {
            killedNode = (await admin.describePartitions([topic])).find((p) => p.partition === 0)?.leader ?? -1;
          } else {
            killedNode = await admin.groupCoordinator(group);
          }
        } catch {
          killedNode = -1; // metadata not propagated to this broker yet (__consumer_offsets: before the first group)
        }
        return killedNode >= 0;
      },
      waitMs,
      kill === 'partition-leader' ? 'the leader of partition 0' : "the group coordinator (leader of the group's __consumer_offsets partition)",
    );

    const acknowledged = new Set<string>();
    const ackTimes: number[] = [];
    let rejected = 0;
    let inFlight = 0;
    let killedAt = 0;
    const started = Date.now();
    const pending: Promise<void>[] = [];
    for (let sent = 0; sent < total; sent += 100) {
      if (killedAt === 0 && sent >= total / 3) {
        killedAt = Date.now();
        await options.killBroker(killedNode);
      }
      await until(() => inFlight < 4, waitMs * 2, 'a publish slot');
      const batch = Array.from({ length: Math.min(100, total - sent) }, (_, j) => ({ id: `m-${sent + j}`, key: `k-${(sent + j) % 30}`, value: sent + j }));
      inFlight++;
      pending.push(
        bus.publisher.publish(topic, batch).then(
          () => {
            for (const m of batch) acknowledged.add(m.id);
            ackTimes.push(Date.now());
            inFlight--;
          },
          () => {
            rejected += batch.length;
            inFlight--;
          },
        ),
      );
    }
    await Promise.all(pending);
    const seconds = (Date.now() - started) / 1000;
    // Everything acknowledged arrives, or nothing new arrives for 10 s.
    let lastCount = -1;
    let lastChange = Date.now();
    await until(
      () => {
        if (received.size !== lastCount) {
          lastCount = received.size;
          lastChange = Date.now();
        }
        return [...acknowledged].every((id) => received.has(id)) || Date.now() - lastChange > 10_000;
      },
      waitMs * 2,
      'deliveries',
    );
    const afterKill = [killedAt, ...ackTimes.filter((t) => t >= killedAt).sort((a, b) => a - b)];
    const failoverMs = afterKill.slice(1).reduce((longest, t, i) => Math.max(longest, t - afterKill[i]!), 0);
    const deliveries = [...received.values()].reduce((sum, n) => sum + n, 0);
    return {
      guarantee: options.guarantee,
      driver,
      acks: ACKS[options.guarantee],
      killedNode,
      killed: kill,
      sent: total,
      acknowledged: acknowledged.size,
      rejected,
      delivered: received.size,
      lost: [...acknowledged].filter((id) => !received.has(id)).length,
      duplicates: deliveries - received.size,
      throughput: Math.round(acknowledged.size / seconds),
      failoverMs,
      consumerInterrupted: consumerCounts.count('subscription-interrupted'),
      consumerResumed: consumerCounts.count('subscription-resumed'),
    };
  } finally {
    await bus.close().catch(() => undefined);
    await consumerBus.close().catch(() => undefined);
    if (killedNode >= 0) {
      await options.startBroker(killedNode);
      await waitForFullIsr(options.brokers, waitMs);
    }
    await deleteTopic(options.brokers, topic);
  }
}

/** Removes the run's topic (best effort). */
async function deleteTopic(brokers: readonly string[], topic: string): Promise<void> {
  const transport = await createKafkaTransport({ brokers: [...brokers], connectTimeoutMs: 3000, createTopics: false }).catch(() => undefined);
  if (!transport) return;
  try {
    await transport.admin.deleteTopics([topic]);
  } catch {
    // best effort
  } finally {
    await transport.close();
  }
}

/** Waits until every partition of every topic has all its replicas in sync again. */
async function waitForFullIsr(brokers: readonly string[], waitMs: number): Promise<void> {
  const transport = await createKafkaTransport({ brokers: [...brokers], connectTimeoutMs: 3000, createTopics: false });
  try {
    await until(
      async () => {
        try {
          return (await transport.admin.describePartitions()).every((p) => p.isr.length === p.replicas.length);
        } catch {
          return false;
        }
      },
      waitMs,
      'every replica back in sync',
    );
  } finally {
    await transport.close();
  }
}

export { coordinatorPartition } from '../topics.js';
