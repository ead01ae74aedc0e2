import { createHash } from 'node:crypto';
import type { SubscriptionStatus } from '@switchboard/core';
import { InterruptionTracker, type DeliveryListener, type TransportSubscribeSpec, type TransportSubscription } from '@switchboard/core/transport';
import { MqttMember, type MemberEvents, type MqttSubscriptionContext } from './member.js';
import { filterOf, sharedFilter } from './topics.js';

/**
 * A subscription: `concurrency` members of the group's shared subscription, each its own MQTT
 * connection and session. MQTT acknowledges a connection's messages in the order they came, so a
 * member handles one message at a time, in that order, and a retry holds its member; the broker
 * deals the group's messages round-robin over the members' sessions.
 */
export class MqttSubscription implements TransportSubscription, MemberEvents {
  private readonly members: MqttMember[] = [];
  private readonly gap: InterruptionTracker;
  private ending: Promise<void> | undefined;

  constructor(
    private readonly context: MqttSubscriptionContext,
    private readonly spec: TransportSubscribeSpec,
    private readonly listener: DeliveryListener,
  ) {
    this.gap = new InterruptionTracker(context.observer, spec.topic, 'mqtt');
  }

  /** Connects every member and subscribes it; resolves once all are live (rejects, closing them, if one cannot). */
  async start(): Promise<void> {
    const { options } = this.context;
    const group = this.spec.group || 'default';
    const filter = filterOf(options.topicPrefix, this.spec.topic, this.spec.pattern);
    const identity = options.memberId ?? `p${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
    const sessionBase = `sb-${identity}-${createHash('sha256').update(`${group}\n${filter}`).digest('base64url').slice(0, 12)}`;
    const count = Math.max(1, this.spec.concurrency);
    for (let i = 0; i < count; i++) {
      const index = this.context.claimIndex(sessionBase);
      this.members.push(
        new MqttMember(this.context, this, this.spec, this.listener, group, sharedFilter(group, filter), `${sessionBase}-${index}`, () => this.context.releaseIndex(sessionBase, index)),
      );
    }
    try {
      await Promise.all(this.members.map((m) => m.start()));
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  status(): SubscriptionStatus {
    return this.gap.status(
      undefined,
      this.members.reduce((sum, m) => sum + m.buffered, 0),
    );
  }

  handedBack(): number {
    return this.members.reduce((sum, m) => sum + m.handedBackCount, 0);
  }

  close(): Promise<void> {
    return this.end(false);
  }

  drain(): Promise<void> {
    return this.end(true);
  }

  /** A member lost its connection (reported once per outage of the subscription). */
  interrupted(error?: unknown): void {
    this.gap.interrupt(error);
  }

  /** A member is connected again: the subscription is live when all are. */
  resumed(): void {
    if (this.members.every((m) => m.connected)) this.gap.resume();
  }

  report(context: string, error: unknown): void {
    this.context.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context, error });
  }

  private end(drain: boolean): Promise<void> {
    if (!drain) for (const m of this.members) m.stopWaiting();
    this.ending ??= Promise.all(this.members.map((m) => m.end(drain))).then(() => undefined);
    return this.ending;
  }
}
