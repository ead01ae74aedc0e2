import type { Consumer, JsMsg } from '@nats-io/jetstream';
import type { BusObserver, SourceMetadata, SubscriptionStatus } from '@switchboard/core';
import {
  InterruptionTracker,
  OrderedLanes,
  ReadWindow,
  TransportDelivery,
  afterListener,
  matchesTopicPattern,
  withDeadline,
  type DeliveryListener,
  type TransportMessage,
  type TransportSubscribeSpec,
  type TransportSubscription,
} from '@switchboard/core/transport';
import { decodeMessage } from './codec.js';
import type { NatsOptions } from './options.js';
import { topicOf } from './subjects.js';

/** What a subscription needs from its transport. */
export interface NatsSubscriptionContext {
  readonly options: NatsOptions;
  /** The durable consumer of the subscription's group (created again if it was deleted). */
  consumer(recreate: boolean): Promise<Consumer>;
  observer(): BusObserver;
  /** Whether the connection is up (a fetch can end quietly while it is down). */
  connected(): boolean;
}

/** A message this member holds: fetched, running, or waiting for an in-process retry. */
interface HeldMessage {
  readonly msg: JsMsg;
  readonly message: TransportMessage;
  readonly topic: string;
  /** Its stream sequence (read once from the reply subject). */
  readonly seq: number;
  /** The attempt its next (or current) handler call is. */
  attempt: number;
  /** The server's delivery count of this delivery (metadata). */
  readonly count: number;
}

/**
 * One member of a group on one subject filter: fetches at most `prefetch` messages it has not
 * settled (backpressure), hands them to the listener in ordered lanes, acknowledges after success
 * or a confirmed dead letter. Attempts are the server's
 * delivery counts, never a header. A retry is, with `ordering: 'none'`, a `nak` with the delay (the
 * server redelivers it, to any member, holding nothing here); with `partition` or `key` the message
 * stays held and its key lane waits, so later messages of the key do not pass it; it is refreshed
 * (`working`) meanwhile, like every held message, every third of `ackWaitMs`, so only a crashed or
 * frozen member's messages are redelivered. Closing hands back (`nak`, no delay) what it did not settle.
 */
export class NatsSubscription implements TransportSubscription {
  private readonly window: ReadWindow;
  private readonly held = new Map<number, HeldMessage>();
  private readonly lanes: OrderedLanes<HeldMessage>;
  private readonly group: string;
  private state: 'active' | 'closing' | 'draining' | 'ended' = 'active';
  private ending: Promise<void> | undefined;
  private reading: Promise<void> | undefined;
  /** The fetch under way, stopped by a close that cannot wait for it (the server is not answering). */
  private fetching: { stop(): void } | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private readonly gap: InterruptionTracker;
  /** The group's lag from the last consumer info: not yet delivered plus delivered and not acknowledged. */
  private lag: number | undefined;
  private lagTicker: NodeJS.Timeout | undefined;
  private handedBackCount = 0;
  /** Settlements not yet written (see {@link settle}): the messages, and -1 (ack) or a nak's delay. */
  private settling: JsMsg[] = [];
  private settlingDelays: number[] = [];

  constructor(
    private readonly context: NatsSubscriptionContext,
    private readonly spec: TransportSubscribeSpec,
    private readonly listener: DeliveryListener,
    private readonly stream: string,
    private readonly subjectPrefix: string,
    private consumer: Consumer,
  ) {
    this.group = spec.group || 'default';
    this.gap = new InterruptionTracker(context.observer, spec.topic, 'nats');
    this.window = new ReadWindow(Math.max(context.options.prefetch, spec.concurrency));
    this.lanes = new OrderedLanes<HeldMessage>(
      spec.ordering,
      spec.concurrency,
      (held) => this.run(held),
      (error) => this.report('nats: handling a message', error),
    );
  }

  start(): void {
    this.reading = this.readLoop();
    this.ticker = setInterval(() => {
      for (const held of this.held.values()) held.msg.working();
    }, this.context.options.ackWaitMs / 3);
    this.lagTicker = setInterval(() => void this.readLag(), this.context.options.lagIntervalMs);
    void this.readLag();
  }

  /** The group's lag: messages not yet delivered to any member plus those delivered and not acknowledged. */
  private async readLag(): Promise<void> {
    try {
      const info = await this.consumer.info(); // not cached: a request to the server
      this.lag = info.num_pending + info.num_ack_pending;
    } catch {
      // unreachable or deleted: the fetch loop reports it; the last figure stays
    }
  }

  status(): SubscriptionStatus {
    return this.gap.status(this.lag, this.lanes.pending);
  }

  handedBack(): number {
    return this.handedBackCount;
  }

  close(): Promise<void> {
    return this.end('closing');
  }

  drain(): Promise<void> {
    return this.end('draining');
  }

  /** The connection was lost (reported once per outage). */
  interrupted(error?: unknown): void {
    if (this.state === 'active') this.gap.interrupt(error);
  }

  /** The connection is back. */
  resumed(): void {
    if (this.state === 'active') this.gap.resume();
  }

  private async readLoop(): Promise<void> {
    const { options } = this.context;
    for (let backoff = 100; this.state === 'active'; ) {
      const free = this.window.room(this.held.size);
      if (free === 0) {
        await this.window.changed();
        continue;
      }
      try {
        const batch = await this.consumer.fetch({ max_messages: free, expires: options.fetchExpiresMs });
        this.fetching = batch;
        for await (const msg of batch) this.accept(msg);
        this.fetching = undefined;
        if (this.context.connected()) this.resumed(); // a fetch that ended well: the consumer answers again
        backoff = 100;
      } catch (error) {
        if (this.state !== 'active') return;
        const missing = /consumer not found|stream not found/i.test(String((error as Error)?.message));
        this.interrupted(error);
        if (missing) {
          // Deleted under us: created again (with the group's start position: what is in the stream
          // now was not handled by this group, so duplicates rather than loss).
          this.consumer = await this.context.consumer(true).catch((e: unknown) => (this.report('nats: creating the consumer again', e), this.consumer));
        } else this.report('nats: fetching', error);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }

  private accept(msg: JsMsg): void {
    if (this.state !== 'active') {
      msg.nak();
      this.handedBackCount++;
      return;
    }
    const info = msg.info;
    this.resumed();
    const topic = topicOf(this.subjectPrefix, msg.subject) ?? msg.subject;
    if (this.spec.pattern && !matchesTopicPattern(this.spec.topic, topic)) {
      msg.ack(); // under the widened filter of a `#` pattern, not matched by the core pattern: not ours
      return;
    }
    const { message, rejected } = decodeMessage(msg.data, msg.headers, `${this.stream}:${info.streamSequence}`, Math.floor(Number(info.timestampNanos) / 1e6));
    for (const { header, value } of rejected) {
      this.context.observer().onEvent({ type: 'untrusted-header', topic: this.spec.topic, transport: 'nats', header, value, messageId: message.id });
    }
    const held: HeldMessage = { msg, message, topic, seq: info.streamSequence, attempt: info.deliveryCount, count: info.deliveryCount };
    this.held.set(held.seq, held);
    this.lanes.push(message.key, held);
  }

  private run(held: HeldMessage): Promise<number | void> | number | void {
    if (this.state === 'closing' || this.state === 'ended') return; // stays held: handed back at the end
    const source: SourceMetadata = {
      transport: 'nats',
      topic: held.topic,
      group: this.group,
      offset: String(held.seq),
      ...(this.spec.pattern ? { pattern: this.spec.topic } : {}),
    };
    const delivery = new NatsDelivery(this, held, source, this.spec.ordering === 'none');
    return afterListener(this.listener, delivery, () => this.afterDelivery(delivery));
  }

  private afterDelivery(delivery: NatsDelivery): number | void {
    if (delivery.outcome === 'acked' || delivery.outcome === 'redelivered') return;
    if (this.state === 'closing' || this.state === 'ended') return; // unsettled or waiting: handed back
    if (delivery.outcome === 'retry') return delivery.delayMs;
    return 0; // left unsettled while active: handled again in its key's turn
  }

  /**
   * Acknowledges: queued and written with the other settlements of this event-loop turn (see
   * {@link settle}), not waited for by the handler lane (a confirmation per message would bound a
   * lane to one message per round trip). An ack the server never gets brings the message back after
   * `ackWaitMs` (duplicates, never loss).
   */
  acknowledge(held: HeldMessage): boolean {
    this.release(held);
    this.settle(held.msg, -1);
    return true;
  }

  /** Gives the message back to the server, redelivered after `delayMs` (to any member). */
  redeliver(held: HeldMessage, delayMs: number): void {
    this.release(held);
    this.settle(held.msg, delayMs);
  }

  /**
   * Queues an ack (`delayMs` -1) or a nak, in order. The queue is written at the end of the current
   * event-loop turn (setImmediate), all in one go: the client then sends them in one socket write,
   * where an ack written alone costs a write of its own (a write per message was a third of the
   * consumer's CPU). Closing writes what is queued before it hands anything back.
   */
  private settle(msg: JsMsg, delayMs: number): void {
    this.settling.push(msg);
    this.settlingDelays.push(delayMs);
    if (this.settling.length === 1) setImmediate(this.writeSettlements);
  }

  private readonly writeSettlements = (): void => {
    const messages = this.settling;
    const delays = this.settlingDelays;
    if (messages.length === 0) return;
    this.settling = [];
    this.settlingDelays = [];
    for (let i = 0; i < messages.length; i++) {
      try {
        if (delays[i]! < 0) messages[i]!.ack();
        else messages[i]!.nak(delays[i]);
      } catch (error) {
        // The connection is closed: the server redelivers it after ackWaitMs (a duplicate, never a loss).
        this.report('nats: acknowledging', error);
      }
    }
  };

  private release(held: HeldMessage): void {
    this.held.delete(held.seq);
    this.window.wake();
  }

  private report(context: string, error: unknown): void {
    this.context.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context, error });
  }

  private end(mode: 'closing' | 'draining'): Promise<void> {
    if (mode === 'closing' && this.state === 'draining') this.state = 'closing';
    this.ending ??= (async () => {
      if (this.state === 'active') this.state = mode;
      clearInterval(this.ticker);
      clearInterval(this.lagTicker);
      // The fetch in flight runs to its end (at most fetchExpiresMs): what the server sends meanwhile
      // is handed back at once. Stopping it would drop those messages in the client, to come again
      // only after ackWaitMs.
      this.window.wake();
      // While the server does not answer, the fetch never ends (the client waits for the connection):
      // past its expiry and a second it is stopped. What it would still deliver comes again after ackWaitMs.
      const fetchEnds = this.context.options.fetchExpiresMs + 1000;
      await withDeadline(this.reading ?? Promise.resolve(), Date.now() + fetchEnds, () => new Error('fetch did not end')).catch(() => {
        this.fetching?.stop();
        this.fetching = undefined;
      });
      if (this.state === 'draining') await this.lanes.whenIdle(true);
      else {
        this.lanes.takePending();
        await this.lanes.whenIdle(false);
      }
      this.state = 'ended';
      this.writeSettlements(); // the acks first: what they settle is not handed back
      // What was not settled goes back to the server at once (JetStream counts the delivery).
      for (const held of this.held.values()) held.msg.nak();
      this.handedBackCount += this.held.size;
      this.held.clear();
    })();
    return this.ending;
  }
}

/** One delivery of a held message; settles once. */
class NatsDelivery extends TransportDelivery {
  outcome: 'acked' | 'retry' | 'redelivered' | undefined;
  delayMs = 0;
  readonly deliveryCount: number;

  constructor(
    private readonly subscription: NatsSubscription,
    private readonly held: HeldMessage,
    source: SourceMetadata,
    /** `ordering: 'none'`: a retry goes back to the server (`nak` with the delay). */
    private readonly serverRedelivery: boolean,
  ) {
    super(held.message, held.attempt, source);
    this.deliveryCount = held.count;
  }

  ack(): boolean {
    if (this.outcome) return false;
    this.outcome = 'acked';
    return this.subscription.acknowledge(this.held);
  }

  async retryLater(delayMs: number, nextAttempt = this.attempt + 1): Promise<boolean> {
    if (this.outcome) return false;
    this.delayMs = Math.max(0, delayMs);
    if (this.serverRedelivery) {
      this.outcome = 'redelivered';
      this.subscription.redeliver(this.held, this.delayMs);
      return true;
    }
    this.outcome = 'retry';
    this.held.attempt = nextAttempt;
    return true;
  }
}
