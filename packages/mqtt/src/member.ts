import { connect, type IClientOptions, type IPublishPacket, type ISubscriptionMap, type MqttClient } from 'mqtt';
import type { BusObserver, SourceMetadata } from '@switchboard/core';
import { TransportDelivery, afterListener, matchesTopicPattern, type DeliveryListener, type TransportMessage, type TransportSubscribeSpec } from '@switchboard/core/transport';
import { decodeMessage, type UserProperties } from './codec.js';
import { connectedWithin, endClient, withoutNagle } from './connection.js';
import { sessionExpiryOf, type MqttOptions } from './options.js';
import { topicOf } from './topics.js';

/** What a subscription needs from its transport. */
export interface MqttSubscriptionContext {
  readonly options: MqttOptions;
  /** Client options every connection shares (URL, credentials, timeouts), without identity or session. */
  clientOptions(): IClientOptions;
  observer(): BusObserver;
  /** A member index free for this (group, filter) in this transport (so two subscriptions never share a session). */
  claimIndex(sessionBase: string): number;
  releaseIndex(sessionBase: string, index: number): void;
}

/** What a member tells the subscription it belongs to. */
export interface MemberEvents {
  /** The member's connection was lost. */
  interrupted(): void;
  /** The member is connected and subscribed again. */
  resumed(): void;
  report(context: string, error: unknown): void;
}

/**
 * Given to mqtt.js' `handleMessage` callback: read on, but do not acknowledge (mqtt.js then sends no
 * PUBACK and goes on with the next packet; checked against mqtt 5.16, the version this package pins).
 */
const DEFERRED = new Error('switchboard: acknowledged after handling');

/** A message a member received and has not acknowledged yet. */
interface Received {
  readonly packet: IPublishPacket;
  /** Sends its PUBACK (nothing for QoS 0); once. */
  readonly done: () => void;
}

/**
 * One member: an MQTT connection with its own session in the group's shared subscription. With a
 * `memberId` the session outlives the process (what the broker queued for it waits for it); without
 * one it lasts `sessionExpirySec` after a lost connection (a reconnect resumes it, unacknowledged
 * messages come again) and ends when the member closes.
 */
export class MqttMember {
  private readonly client: MqttClient;
  private readonly queue: Received[] = [];
  private running = false;
  private state: 'active' | 'closing' | 'draining' | 'ended' = 'active';
  private idle: (() => void) | undefined;
  private waiting: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  private readonly static: boolean;
  /** Packet ids of QoS 1 messages received in this session and not acknowledged yet. */
  private readonly holding = new Set<number>();
  /** Packet ids acknowledged while the connection was down (mqtt.js sends the PUBACK on reconnect; the broker may send the message again first). */
  private readonly ackedOffline = new Set<number>();
  /** Counts the sessions this member had: +1 at each CONNACK without a session present. */
  private session = 0;
  private subscribed = false;
  /** While a member without an identity closes: the topic of its own marker message, and what to call when it arrived. */
  private barrier: { topic: string; passed: () => void; received: () => void } | undefined;
  handedBackCount = 0;

  constructor(
    private readonly context: MqttSubscriptionContext,
    private readonly subscription: MemberEvents,
    private readonly spec: TransportSubscribeSpec,
    private readonly listener: DeliveryListener,
    private readonly group: string,
    private readonly filter: string,
    readonly clientId: string,
    private readonly release: () => void,
  ) {
    const { options } = context;
    this.static = options.memberId !== undefined;
    this.client = connect({
      ...context.clientOptions(),
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: sessionExpiryOf(options), receiveMaximum: options.prefetch },
    });
    this.client.handleMessage = (packet, done) => this.receive(packet, done);
    withoutNagle(this.client);
    this.client.on('error', (error) => {
      if (this.state !== 'ended') this.subscription.report(`mqtt: member ${clientId}`, error);
    });
    this.client.on('close', () => {
      if (this.state === 'active') this.subscription.interrupted();
    });
    this.client.on('connect', (connack) => {
      if (!connack.sessionPresent) {
        this.session++;
        this.holding.clear();
        this.ackedOffline.clear();
      }
      if (!this.subscribed || this.state === 'ended') return; // the first connect: start() subscribes
      if (!this.static && this.state !== 'active') return; // closing without an identity: it unsubscribed on purpose
      // Subscribed again on every reconnect, and live (resumed) once the broker confirmed it: a new
      // session has no subscription, and a session a broker restored from its store may have lost
      // it (Mosquitto 2.0.11 loses shared subscriptions there). Subscribing again is idempotent.
      const again = { [this.filter]: { qos: 1 } } as ISubscriptionMap;
      this.client.subscribe(again, (error) => {
        if (error) this.subscription.report(`mqtt: member ${clientId}: subscribing again`, error);
        else this.subscription.resumed();
      });
    });
  }

  get connected(): boolean {
    return this.client.connected;
  }

  get buffered(): number {
    return this.queue.length;
  }

  /** Resolves once connected and subscribed (QoS 1). Every reconnect subscribes again (see the `connect` listener). */
  async start(): Promise<void> {
    const { options } = this.context;
    await connectedWithin(this.client, options.url, options.connectTimeoutMs);
    await this.client.subscribeAsync(this.filter, { qos: 1 });
    this.subscribed = true;
  }

  /**
   * mqtt.js hands each message here and reads the next packet once `callback` is called. It is called
   * at once, so the connection keeps reading (PINGRESP included: a handler longer than the keep-alive
   * must not cost the connection); for QoS 1 / 2 with {@link DEFERRED}, so mqtt.js does not send the
   * PUBACK itself. The member sends it when the message is settled, in the order the messages came
   * (one at a time), as MQTT requires. The broker sends at most `prefetch` unacknowledged messages.
   */
  private receive(packet: IPublishPacket, callback: (error?: Error) => void): void {
    if (packet.qos === 0) {
      callback();
    } else {
      callback(DEFERRED);
    }
    const messageId = packet.messageId;
    if (this.barrier && packet.topic === this.barrier.topic) {
      if (packet.qos > 0) sendPacket(this.client, { cmd: 'puback', messageId, reasonCode: 0 });
      this.barrier.passed();
      return;
    }
    this.barrier?.received();
    const session = this.session;
    let acked = packet.qos === 0 || messageId === undefined;
    if (!acked) {
      if (this.holding.has(messageId!)) return; // the broker sent it again after a reconnect: the copy held here acknowledges it
      if (packet.dup && this.ackedOffline.delete(messageId!)) return; // handled while the connection was down: its PUBACK is on its way
      this.ackedOffline.delete(messageId!); // a new message under an id acknowledged before
      this.holding.add(messageId!);
    }
    const ack = () => {
      if (acked) return;
      acked = true;
      // A packet id belongs to its session: after a new one (the old expired), it may name another message.
      if (session !== this.session) return;
      this.holding.delete(messageId!);
      if (!this.client.connected) this.ackedOffline.add(messageId!);
      sendPacket(this.client, { cmd: 'puback', messageId, reasonCode: 0 });
    };
    if (this.state === 'ended' || this.state === 'closing') {
      this.handedBackCount++;
      return; // not acknowledged: it stays in the session
    }
    this.queue.push({ packet, done: ack });
    if (!this.running) void this.pump();
  }

  /** Handles the queue one message at a time, in the order received. */
  private async pump(): Promise<void> {
    this.running = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        if (this.state === 'closing' || this.state === 'ended') {
          this.handedBackCount += 1 + this.queue.length;
          this.queue.length = 0;
          break;
        }
        await this.handle(next);
      }
    } finally {
      this.running = false;
      this.idle?.();
    }
  }

  /** Runs the listener until the message is settled; its `ack` sends the PUBACK (in order: one message at a time). */
  private async handle(received: Received): Promise<void> {
    const { packet } = received;
    const { options } = this.context;
    const topic = topicOf(options.topicPrefix, packet.topic) ?? packet.topic;
    if (this.spec.pattern && !matchesTopicPattern(this.spec.topic, topic)) {
      received.done(); // under a widened filter, or a dead-letter topic the core pattern leaves out: not ours
      return;
    }
    const { message, rejected } = decodeMessage(packet.payload as Uint8Array, packet.properties?.userProperties as UserProperties | undefined, Date.now());
    for (const { header, value } of rejected) {
      this.context.observer().onEvent({ type: 'untrusted-header', topic: this.spec.topic, transport: 'mqtt', header, value, messageId: message.id });
    }
    const source: SourceMetadata = { transport: 'mqtt', topic, group: this.group, ...(this.spec.pattern ? { pattern: this.spec.topic } : {}) };
    for (let pause = options.unsettledRetryMs; ; pause = Math.min(pause * 2, 30_000)) {
      const delivery = new MqttDelivery(message, packet.dup ? 2 : 1, source, received.done);
      const running = afterListener(this.listener, delivery, () => delivery.acked);
      if (running === true || (running !== false && (await running))) return;
      // Unsettled: its dead letter could not be published. It stays held (MQTT has no hand-back but
      // the session) and is tried again after a pause, unless the member is closing.
      if (this.state === 'closing' || this.state === 'ended') {
        this.handedBackCount++;
        return;
      }
      await this.pause(pause);
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.waiting = { timer: setTimeout(resolve, ms), resolve };
    }).finally(() => (this.waiting = undefined));
  }

  /** close() of a static member: a pause before trying an unsettled message again ends now. (A member without an identity drains: see {@link end}.) */
  stopWaiting(): void {
    if (!this.static) return;
    if (this.state === 'active' || this.state === 'draining') this.state = 'closing';
    if (this.waiting) {
      clearTimeout(this.waiting.timer);
      this.waiting.resolve();
    }
  }

  /**
   * Ends the member. A static member (`memberId`) keeps its session: a close leaves what was not
   * handled unacknowledged in it (it comes back when the member returns), a drain handles what was
   * received first. A member without one has no later self to come back to, so it stops the broker
   * sending (unsubscribe), handles everything it was sent — a close as a drain — and then ends its
   * session.
   */
  async end(drain: boolean): Promise<void> {
    if (this.state === 'ended') return;
    if (this.static) {
      if (this.state === 'active') this.state = drain ? 'draining' : 'closing';
      await this.whenIdle();
    } else {
      if (this.state === 'active') this.state = 'draining';
      if (this.client.connected) await this.receiveEverythingSent();
      await this.whenIdle();
    }
    this.state = 'ended';
    const expire = this.static ? {} : { properties: { sessionExpiryInterval: 0 } };
    await endClient(this.client, 2000, { reasonCode: 0, ...expire });
    this.release();
  }

  /**
   * Stops the broker dealing this member more messages and takes in everything it had dealt it
   * already (queued in the session beyond `prefetch` included), before a member without an identity
   * ends its session: unsubscribes, then sends itself a marker on a topic of its own and waits for
   * it — the broker delivers a session's messages in order, so the marker comes after every earlier
   * one. Bounded: it gives up once nothing arrived for `publishTimeoutMs` while the member was idle
   * (the connection lost meanwhile, say).
   */
  private async receiveEverythingSent(): Promise<void> {
    const { options } = this.context;
    const topic = [options.topicPrefix, '_switchboard', 'close', this.clientId].filter(Boolean).join('/');
    const arrived = new Promise<void>((resolve) => {
      let quiet: NodeJS.Timeout | undefined;
      const rearm = () => {
        clearTimeout(quiet);
        quiet = setTimeout(() => (this.running || this.queue.length > 0 ? rearm() : resolve()), options.publishTimeoutMs);
      };
      this.barrier = {
        topic,
        passed: () => {
          clearTimeout(quiet);
          resolve();
        },
        received: rearm,
      };
      rearm();
    });
    // The quiet bound holds while these wait for the broker too: on a connection that carries nothing
    // any more (not yet known as lost) their acknowledgements never come.
    const sent = (async () => {
      await this.client.subscribeAsync(topic, { qos: 1 });
      await this.client.unsubscribeAsync(this.filter);
      await this.client.publishAsync(topic, Buffer.alloc(0), { qos: 1 });
    })();
    sent.catch(() => undefined); // reported below when it fails in time; ignored after the bound
    try {
      await Promise.race([sent.then(() => arrived), arrived]);
    } catch (error) {
      this.barrier?.passed();
      this.subscription.report(`mqtt: member ${this.clientId}: closing`, error);
    } finally {
      this.barrier = undefined;
    }
  }

  private whenIdle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.idle = () => {
        this.idle = undefined;
        resolve();
      };
    });
  }
}

/** One delivery of a received message; `ack` acknowledges it (PUBACK) once. */
class MqttDelivery extends TransportDelivery {
  acked = false;

  constructor(
    message: TransportMessage,
    attempt: number,
    source: SourceMetadata,
    private readonly done: () => void,
  ) {
    super(message, attempt, source);
  }

  ack(): boolean {
    if (this.acked) return false;
    this.acked = true;
    this.done();
    return true;
  }

  /** Not declared (`delayedRedelivery` false): MQTT redelivers only to a reconnecting session. */
  async retryLater(): Promise<boolean> {
    return false;
  }
}

/**
 * mqtt.js' own packet sender (private in its types): writes the packet now, or keeps it for the
 * next connection while reconnecting. Used for the deferred PUBACKs only.
 */
function sendPacket(client: MqttClient, packet: { cmd: 'puback'; messageId: number | undefined; reasonCode: number }): void {
  (client as unknown as { _sendPacket(packet: object): void })._sendPacket(packet);
}
