import { AssignerProtocol, type PartitionAssigner } from 'kafkajs';
import { SUBSCRIPTION_ROUND_ROBIN } from '../client.js';

/**
 * Round-robin partition assignment that respects what each member subscribed to.
 *
 * kafkajs' own RoundRobinAssigner spreads every topic of the group over every member, so two
 * subscriptions sharing a group id but reading different topics (e.g. `product` reads a topic and
 * its `-dlq`) would receive each other's partitions. Java's assignors respect subscriptions; this one
 * does too: a topic's partitions go, round-robin, only to the members subscribed to that topic
 * (kafkajs gives the leader only its own topics, so the union of all members' is used instead).
 * Members of one group must share an assigner: the platformatic driver offers this one under the
 * same name (see {@link SUBSCRIPTION_ROUND_ROBIN}); kafkajs' RoundRobin is offered second, for groups
 * that mix in plain kafkajs consumers.
 */
export const SubscriptionAwareAssigner: PartitionAssigner = ({ cluster }) => ({
  name: SUBSCRIPTION_ROUND_ROBIN,
  version: 0,
  async assign({ members }) {
    const subscribers = new Map<string, string[]>();
    for (const member of [...members].sort((a, b) => a.memberId.localeCompare(b.memberId))) {
      const metadata = AssignerProtocol.MemberMetadata.decode(member.memberMetadata);
      for (const topic of metadata?.topics ?? []) {
        if (!subscribers.has(topic)) subscribers.set(topic, []);
        subscribers.get(topic)!.push(member.memberId);
      }
    }
    // kafkajs hands the leader only its own topics: use every member's, with their metadata loaded.
    const topics = [...subscribers.keys()].sort();
    await (cluster as unknown as { addMultipleTargetTopics(topics: string[]): Promise<void> }).addMultipleTargetTopics(topics);
    const assignment = new Map<string, Record<string, number[]>>(members.map((m) => [m.memberId, {}]));
    for (const topic of topics) {
      const candidates = subscribers.get(topic) ?? [];
      if (candidates.length === 0) continue;
      const partitions = cluster
        .findTopicPartitionMetadata(topic)
        .map((p) => p.partitionId)
        .sort((a, b) => a - b);
      partitions.forEach((partition, i) => {
        const perTopic = assignment.get(candidates[i % candidates.length]!)!;
        (perTopic[topic] ??= []).push(partition);
      });
    }
    return [...assignment].map(([memberId, perTopic]) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment: perTopic, userData: Buffer.alloc(0) }),
    }));
  },
  protocol({ topics }) {
    return { name: SUBSCRIPTION_ROUND_ROBIN, metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
  },
});
