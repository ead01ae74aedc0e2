import type { Capabilities } from '../../ports/capabilities.js';
import { ClosedError, ConfigError } from '../../ports/errors.js';
import { OrderedLanes, hashKey } from '../../kit/lanes.js';
import { TransportDelivery, withIdOnWire, type SourceMetadata, type TransportMessage } from '../../ports/message.js';
import type { DeliveryListener, Transport, TransportPublishOptions, TransportPublishResult, TransportSubscribeSpec, TransportSubscription } from '../../ports/ports.js';
import { compileTopicPattern } from '../../util/topic-pattern.js';
import { refuseOversizeMessages } from '../../kit/message-size.js';

/**
 * The embedded transport: a product feature, not a mock (Watermill's gochannel in spirit).
 *
 * A {@link MemoryBroker} holds the state; each {@link MemoryTransport} is a connection to one broker
 * (several connections may share a broker, like clients of one server). Model, like RabbitMQ queues
 * kept in process memory:
 * - a (topic or pattern, group) pair owns a queue, created by the group's first subscribe; it receives every
 *   message published afterwards and keeps it while no member is subscribed, for as long as the
 *   broker lives. A message published when no group matches reaches nobody (reported as 0 receivers);
 * - members of a group compete: a keyed message goes to the member chosen by its key's hash, an unkeyed
 *   one round-robin; every group gets every message;
 * - order within a member follows the subscription's ordering: `partition` (default) gives each of
 *   `concurrency` lanes the keys that hash to it and a retry pauses its lane; `key` runs keys side by
 *   side and a retry pauses only its key; `none` orders nothing. Unsettled deliveries are handed back
 *   to the group.
 * Publishing resolves when the message is enqueued ("none" and "leader"; nothing is durable). A
 * group whose subscribers fall behind by more than `highWaterMark` messages makes publishers wait
 * until it is down to half of that, so memory stays bounded (a group with no subscriber buffers
 * without limit: nobody would ever drain it).
 */
export const MEMORY_CAPABILITIES: Capabilities = Object.freeze<Capabilities>({
  persistent: false,
  durableGroups: true,
  consumerGroups: true,
  perKeyOrder: true,
  orderings: ['partition', 'key', 'none'],
  acknowledgements: true,
  delayedRedelivery: true,
  delayedDelivery: true,
  replay: false,
  patternSubscriptions: true,
  duplicatesOnRestart: false,
  deliveryGuarantees: ['none', 'leader'],
  defaultGuarantee: 'leader',
  backpressure: true,
});

interface Entry {
  readonly topic: string;
  readonly message: TransportMessage;
  attempt: number;
}

interface Member {
  readonly group: GroupQueue;
  readonly lanes: OrderedLanes<Entry>;
  accepting: boolean;
  /** Deliveries given back to the group because this member left before handling them. */
  handedBack: number;
  /** Source metadata per topic, shared by its deliveries (it is read-only). */
  readonly sources: Map<string, SourceMetadata>;
}

interface GroupQueue {
  readonly name: string;
  readonly matches: (topic: string) => boolean;
  readonly backlog: Entry[];
  readonly members: Member[];
  nextMember: number;
  /** Entries handed to members and not finished yet. */
  queued: number;
  /** Publishers waiting for `queued` to fall to half the high-water mark. */
  readonly waiters: (() => void)[];
}

/** In-process broker state: group queues by topic and by pattern. */
export class MemoryBroker {
  private readonly exactGroups = new Map<string, Map<string, GroupQueue>>();
  private readonly patternGroups = new Map<string, GroupQueue>();

  /** Names messages published without an id on the wire (see {@link TransportMessage.localId}). */
  private sequence = 0;

  /** @param highWaterMark messages a subscribed group may have waiting before publishers wait. */
  constructor(readonly highWaterMark = 10_000) {}

  /**
   * Enqueues `messages` for every matching group. Returns the number of groups reached and, when a
   * group is over the high-water mark, a promise that resolves once it has caught up.
   */
  publish(topic: string, published: readonly TransportMessage[]): { receivers: number; backpressure?: Promise<void> } {
    // A local id does not travel on a broker; here neither: the broker names the message, as Kafka's
    // offset does (the same name in every group).
    const messages = published.some((m) => m.localId) ? published.map((m) => (m.localId ? { ...withIdOnWire(m), id: `${topic}-${this.sequence++}` } : m)) : published;
    let receivers = 0;
    let waits: Promise<void>[] | undefined;
    const enqueue = (group: GroupQueue) => {
      receivers++;
      for (const message of messages) this.dispatch(group, { topic, message, attempt: 1 });
      if (group.queued > this.highWaterMark) (waits ??= []).push(new Promise((resolve) => group.waiters.push(resolve)));
    };
    const exact = this.exactGroups.get(topic);
    if (exact) for (const group of exact.values()) enqueue(group);
    for (const group of this.patternGroups.values()) if (group.matches(topic)) enqueue(group);
    return waits ? { receivers, backpressure: Promise.all(waits).then(() => undefined) } : { receivers };
  }

  /** True while the broker keeps a queue for `group` of `topic` (a group outlives its members unless ephemeral). */
  hasGroup(topic: string, group: string): boolean {
    return this.exactGroups.get(topic)?.has(group) ?? false;
  }

  /** Adds a member to the spec's group queue; it receives the group's backlog at once. */
  join(spec: TransportSubscribeSpec, listener: DeliveryListener): TransportSubscription {
    const group = this.groupFor(spec);
    const member: Member = {
      group,
      accepting: true,
      handedBack: 0,
      sources: new Map(),
      lanes: new OrderedLanes<Entry>(spec.ordering, spec.concurrency, (entry) => this.deliver(member, entry, listener, spec)),
    };
    group.members.push(member);
    for (const entry of group.backlog.splice(0)) this.dispatch(group, entry);

    const leave = () => {
      member.accepting = false;
      const index = group.members.indexOf(member);
      if (index >= 0) group.members.splice(index, 1);
    };
    let closing: Promise<void> | undefined;
    let draining: Promise<void> | undefined;
    return {
      // Also ends a drain under way: what it had not started is handed back.
      close: () =>
        (closing ??= (async () => {
          leave();
          const unstarted = member.lanes.takePending();
          member.handedBack += unstarted.length;
          this.finished(group, unstarted.length);
          await member.lanes.whenIdle(false);
          for (const entry of unstarted) this.dispatch(group, entry);
          if (spec.ephemeral && group.members.length === 0 && !spec.pattern) this.exactGroups.get(spec.topic)?.delete(spec.group);
        })()),
      drain: () =>
        (draining ??=
          closing ??
          (async () => {
            leave();
            await member.lanes.whenIdle(true);
          })()),
      handedBack: () => member.handedBack,
    };
  }

  private groupFor(spec: TransportSubscribeSpec): GroupQueue {
    if (spec.pattern) {
      const id = `${spec.topic}\u0000${spec.group}`;
      let group = this.patternGroups.get(id);
      if (!group) {
        const regex = compileTopicPattern(spec.topic);
        group = { name: spec.group, matches: (t) => regex.test(t), backlog: [], members: [], nextMember: 0, queued: 0, waiters: [] };
        this.patternGroups.set(id, group);
      }
      return group;
    }
    let groups = this.exactGroups.get(spec.topic);
    if (!groups) this.exactGroups.set(spec.topic, (groups = new Map()));
    let group = groups.get(spec.group);
    if (!group) {
      group = { name: spec.group, matches: (t) => t === spec.topic, backlog: [], members: [], nextMember: 0, queued: 0, waiters: [] };
      groups.set(spec.group, group);
    }
    return group;
  }

  private dispatch(group: GroupQueue, entry: Entry): void {
    const members = group.members;
    if (members.length === 0) {
      group.backlog.push(entry);
      return;
    }
    const key = entry.message.key;
    const member = members.length === 1 ? members[0]! : members[(key === undefined ? group.nextMember++ : hashKey(key)) % members.length]!;
    group.queued++;
    member.lanes.push(key, entry);
  }

  /** `count` entries left the members' lanes: wake publishers once the group is down to half the mark. */
  private finished(group: GroupQueue, count: number): void {
    group.queued -= count;
    if (group.waiters.length > 0 && group.queued <= this.highWaterMark / 2) for (const resolve of group.waiters.splice(0)) resolve();
  }

  /**
   * Runs one delivery. Returns a delay when the listener asked for a delayed retry (the lane waits).
   * Synchronous when the listener is (a handler that returns no promise): no promise per message.
   */
  private deliver(member: Member, entry: Entry, listener: DeliveryListener, spec: TransportSubscribeSpec): Promise<number | void> | number | void {
    let source = member.sources.get(entry.topic);
    if (!source) member.sources.set(entry.topic, (source = Object.freeze({ transport: 'memory', topic: entry.topic, group: spec.group, ...(spec.pattern ? { pattern: spec.topic } : {}) })));
    const delivery = new MemoryDelivery(entry, source);
    const running = listener(delivery);
    if (running !== undefined) return running.then(() => this.afterDelivery(member, entry, delivery));
    return this.afterDelivery(member, entry, delivery);
  }

  /** What a settled (or unsettled) delivery leaves: done, a held retry (its delay), or an entry handed back. */
  private afterDelivery(member: Member, entry: Entry, delivery: MemoryDelivery): number | void {
    if (delivery.settled === 'ack') return this.finished(member.group, 1);
    entry.attempt = delivery.nextAttempt;
    if (typeof delivery.settled === 'number' && member.accepting) return delivery.settled; // stays queued in its lane
    // Unsettled, or a retry while this member is leaving: hand it back to the group, on a later turn
    // of the event loop (a listener that keeps leaving a delivery unsettled must not starve it).
    if (!member.accepting) member.handedBack++;
    this.finished(member.group, 1);
    setImmediate(() => this.dispatch(member.group, entry));
  }
}

/** One delivery of a memory entry; settles once (ack, or a retry delay). */
class MemoryDelivery extends TransportDelivery {
  settled: 'ack' | number | undefined;
  /** The attempt the next delivery carries. */
  nextAttempt: number;

  constructor(entry: Entry, source: SourceMetadata) {
    super(entry.message, entry.attempt, source);
    this.nextAttempt = entry.attempt + 1;
  }

  /** Settles at once: there is nothing to wait for in memory. */
  ack(): boolean {
    if (this.settled !== undefined) return false;
    this.settled = 'ack';
    return true;
  }

  async retryLater(delayMs: number, nextAttempt = this.attempt + 1): Promise<boolean> {
    if (this.settled !== undefined) return false;
    this.settled = Math.max(0, delayMs);
    this.nextAttempt = nextAttempt;
    return true;
  }
}

/** A connection to a {@link MemoryBroker}. Closing it closes its subscriptions, not the broker. */
export class MemoryTransport implements Transport {
  readonly kind = 'memory';
  readonly capabilities: Capabilities;
  private readonly subscriptions = new Set<TransportSubscription>();
  private closed = false;
  private readonly maxMessageBytes: number | undefined;
  /** Delayed publishes waiting for their time (in this process: gone when the transport closes, like everything memory holds). */
  private readonly delayed = new Set<ReturnType<typeof setTimeout>>();

  constructor(
    readonly broker: MemoryBroker = new MemoryBroker(),
    options: MemoryTransportOptions = {},
  ) {
    this.maxMessageBytes = options.maxMessageBytes;
    this.capabilities = options.maxMessageBytes === undefined ? MEMORY_CAPABILITIES : Object.freeze({ ...MEMORY_CAPABILITIES, maxMessageBytes: options.maxMessageBytes });
  }

  async publish(topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    if (this.closed) throw new ClosedError('memory transport is closed');
    refuseOversizeMessages(topic, messages, this.maxMessageBytes);
    const wait = (options.deliverAt ?? 0) - Date.now();
    if (wait > 0) {
      const timer = setTimeout(() => {
        this.delayed.delete(timer);
        if (!this.closed) this.broker.publish(topic, messages);
      }, wait);
      this.delayed.add(timer);
      return {};
    }
    const { receivers, backpressure } = this.broker.publish(topic, messages);
    if (backpressure) await backpressure;
    return { receivers };
  }

  async subscribe(spec: TransportSubscribeSpec, listener: DeliveryListener): Promise<TransportSubscription> {
    if (this.closed) throw new ClosedError('memory transport is closed');
    const inner = this.broker.join(spec, listener);
    const tracked: TransportSubscription = {
      close: () => inner.close().finally(() => this.subscriptions.delete(tracked)),
      drain: () => inner.drain().finally(() => this.subscriptions.delete(tracked)),
      handedBack: () => inner.handedBack?.() ?? 0,
    };
    this.subscriptions.add(tracked);
    return tracked;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.delayed) clearTimeout(timer);
    this.delayed.clear();
    await Promise.all([...this.subscriptions].map((s) => s.close()));
  }
}

export interface MemoryTransportOptions {
  /**
   * Refuse messages over this many bytes (body + headers + key) with a `MessageTooLargeError`, as a
   * broker's size limit would: to try an application's handling of oversize messages without a broker.
   * Default: no limit.
   */
  readonly maxMessageBytes?: number;
}

/** Creates an in-memory transport: on a broker of its own, or connected to `broker`; `options` may come first when there is no broker to give. */
export function createMemoryTransport(broker?: MemoryBroker, options?: MemoryTransportOptions): MemoryTransport;
export function createMemoryTransport(options: MemoryTransportOptions): MemoryTransport;
export function createMemoryTransport(first?: MemoryBroker | MemoryTransportOptions, options?: MemoryTransportOptions): MemoryTransport {
  if (first === undefined || first instanceof MemoryBroker) return new MemoryTransport(first, options);
  if (options !== undefined) throw new ConfigError([{ path: 'broker', message: 'a MemoryBroker (or leave it out), then the options' }]);
  return new MemoryTransport(undefined, first);
}
