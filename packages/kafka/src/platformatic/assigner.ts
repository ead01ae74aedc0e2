import type { ExtendedGroupProtocolSubscription, GroupPartitionsAssignments } from '@platformatic/kafka';
import type { ClusterMetadata } from '@platformatic/kafka';

/**
 * Round-robin partition assignment (classic group protocol) that respects what each member subscribed
 * to: @platformatic/kafka's own round-robin spreads the leader's topics over every member, so two
 * subscriptions sharing a group id but reading different topics (a topic and its `-dlq`) would receive
 * each other's partitions. The kafkajs driver's assigner does the same, under the same protocol name
 * (SUBSCRIPTION_ROUND_ROBIN), so one group may mix both drivers. Members are taken in member-id order,
 * partitions in number order.
 */
export function subscriptionAwareAssigner(_current: string, members: Map<string, ExtendedGroupProtocolSubscription>, _topics: Set<string>, metadata: ClusterMetadata): GroupPartitionsAssignments[] {
  const memberIds = [...members.keys()].sort();
  const assignments = new Map<string, GroupPartitionsAssignments>(memberIds.map((memberId) => [memberId, { memberId, assignments: new Map() }]));
  const subscribers = new Map<string, string[]>();
  for (const memberId of memberIds) {
    for (const topic of members.get(memberId)?.topics ?? []) {
      let list = subscribers.get(topic);
      if (!list) subscribers.set(topic, (list = []));
      list.push(memberId);
    }
  }
  for (const topic of [...subscribers.keys()].sort()) {
    const candidates = subscribers.get(topic)!;
    const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
    for (let partition = 0; partition < count; partition++) {
      const member = assignments.get(candidates[partition % candidates.length]!)!;
      let assignment = member.assignments.get(topic);
      if (!assignment) member.assignments.set(topic, (assignment = { topic, partitions: [] }));
      assignment.partitions.push(partition);
    }
  }
  return [...assignments.values()];
}
