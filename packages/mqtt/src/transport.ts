import { randomBytes } from 'node:crypto';
import { connect, type MqttClient, type Packet } from 'mqtt';
import { CapabilityError, ClosedError, ConfigError, PublishError, type BusObserver, type Capabilities, type ConnectionHealth, type Transport } from '@switchboard/core';
import {
  ConnectionState,
  assertGuaranteeSupported,
  endpointOf,
  ObserverSet,
  refuseOversizeMessages,
  utf8BytesIfOver,
  type DeliveryListener,
  type RawPublisher,
  type TransportMessage,
  type TransportPublishOptions,
  type TransportPublishResult,
  type TransportSubscribeSpec,
  type TransportSubscription,
} from '@switchboard/core/transport';
import { encodeProperties, propertiesProblem } from './codec.js';
import type { MqttOptions } from './options.js';
import { clientOptions, connectedWithin, endClient, withoutNagle } from './connection.js';
import { MqttSubscription } from './subscription.js';
import { isGroupName, isPlainTopic, mqttTopicOf, topicProblem } from './topics.js';

/** MQTT 5 reason code of a PUBACK / PUBREC: the broker took the message, and no subscription matched it. */
const NO_MATCHING_SUBSCRIBERS = 16;
const QOS = { none: 0, leader: 1, all: 2 } as const;

/**
 * MQTT 5, declared as it is. A group is a shared subscription (`$share/<group>/<topic>`): its
 * members compete, every group gets every message. Messages are acknowledged (PUBACK) after
 * handling, in the order they came; the broker redelivers what a session did not acknowledge when
 * that session reconnects, never to another member. A group keeps messages while no member is
 * connected only when its members have stable identities (`memberId`): the broker queues them in the
 * members' sessions. No per-key order across members (the broker deals round-robin), no delayed
 * redelivery (retries wait in the member), no replay (a new group starts at new messages), and not
 * persistent unless `brokerPersists` says the broker writes before it acknowledges. Guarantees:
 * `none` = QoS 0, `leader` = QoS 1 (PUBACK), `all` = QoS 2 (PUBCOMP) only with `brokerPersists`.
 * The broker does not slow a fast publisher: beyond a session's queue limit (Mosquitto's
 * `max_queued_messages`) it drops messages for that session, so `backpressure` is false.
 */
export function mqttCapabilities(options: Pick<MqttOptions, 'memberId' | 'brokerPersists' | 'maxMessageBytes'>): Capabilities {
  return Object.freeze<Capabilities>({
    persistent: options.brokerPersists,
    durableGroups: options.memberId !== undefined,
    consumerGroups: true,
    perKeyOrder: false,
    orderings: ['partition'],
    acknowledgements: true,
    delayedRedelivery: false,
    replay: false,
    patternSubscriptions: true,
    duplicatesOnRestart: true,
    backpressure: false,
    deliveryGuarantees: options.brokerPersists ? ['none', 'leader', 'all'] : ['none', 'leader'],
    defaultGuarantee: 'leader',
    maxMessageBytes: options.maxMessageBytes,
  });
}

export class MqttTransport implements Transport {
  readonly kind = 'mqtt';
  readonly capabilities: Capabilities;
  private readonly observer = new ObserverSet();
  private readonly subscriptions = new Set<MqttSubscription>();
  private readonly connection: ConnectionState;
  /** Member indexes in use per session base (group and filter): a second subscription gets its own sessions. */
  private readonly indexes = new Map<string, Set<number>>();
  /** Publish packet ids the broker answered "no matching subscribers" for (read from the acks as they arrive). */
  private readonly unmatched = new Set<number>();
  private closed = false;

  private constructor(
    private readonly options: MqttOptions,
    /** The publishing connection (clean session, no subscriptions). Private: no mqtt.js type reaches the declarations. */
    private readonly client: MqttClient,
  ) {
    this.capabilities = mqttCapabilities(options);
    this.connection = new ConnectionState('publisher', endpointOf(options.url));
    client.on('close', () => this.connection.down());
    client.on('connect', () => this.connection.up());
    withoutNagle(client);
    client.on('error', (error) => {
      if (!this.closed) this.observer.onEvent({ type: 'internal-error', context: 'mqtt: publisher connection', error });
    });
    client.on('packetreceive', (packet: Packet) => {
      if ((packet.cmd === 'puback' || packet.cmd === 'pubrec') && packet.reasonCode === NO_MATCHING_SUBSCRIBERS && packet.messageId !== undefined) {
        this.unmatched.add(packet.messageId);
      }
    });
  }

  /** Connects the publishing connection. Rejects with a clear error (no credentials) when the broker does not answer in time. */
  static async connect(options: MqttOptions): Promise<MqttTransport> {
    const client = connect({ ...clientOptions(options), clientId: `sb-pub-${randomBytes(6).toString('base64url')}`, clean: true });
    try {
      await connectedWithin(client, options.url, options.connectTimeoutMs);
    } catch (error) {
      client.end(true);
      throw error;
    }
    return new MqttTransport(options, client);
  }

  observe(observer: BusObserver): () => void {
    return this.observer.add(observer);
  }

  /** A topic becomes MQTT levels (see {@link topicProblem} in topics.ts). */
  topicProblem(topic: string): string | undefined {
    return isPlainTopic(topic) ? undefined : topicProblem(topic);
  }

  connections(): readonly ConnectionHealth[] {
    return [this.connection.snapshot()];
  }

  /**
   * `none`: QoS 0 (written to the connection, nothing confirmed). `leader`: QoS 1, resolved on
   * PUBACK. `all` (only with `brokerPersists`): QoS 2, resolved on PUBCOMP. The id, key and time travel
   * as MQTT 5 user properties. While disconnected a confirmed publish fails at once (mqtt.js would
   * hold it in memory until the broker is back).
   */
  publish(topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    return this.send(topic, messages, options, false);
  }

  /**
   * Dead letters: QoS 1 (QoS 2 with `brokerPersists`), refused when no subscription matched the dead-letter topic — MQTT
   * keeps nothing for a topic nobody subscribes to, so the message is held and tried again (see
   * `unsettledRetryMs`) instead of being acknowledged with its dead letter lost. Subscribe a group to
   * the dead-letter topic (with a `memberId`, so it keeps letters while it is away).
   */
  deadLetterPublisher(): RawPublisher {
    // The bus asks its dead-letter publisher for `all`: it gets the strongest guarantee offered.
    const guarantee = this.capabilities.deliveryGuarantees.includes('all') ? 'all' : 'leader';
    return { publish: (topic, messages) => this.send(topic, messages, { guarantee }, true) };
  }

  private async send(topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions, needsReceiver: boolean): Promise<TransportPublishResult> {
    if (this.closed) throw new ClosedError('mqtt transport is closed');
    if (!isPlainTopic(topic)) throw new ConfigError([{ path: 'topic', message: topicProblem(topic) }]);
    assertGuaranteeSupported(this, options.guarantee); // `all` needs brokerPersists
    refuseOversizeMessages(topic, messages, this.options.maxMessageBytes);
    const mqttTopic = mqttTopicOf(this.options.topicPrefix, topic);
    if (utf8BytesIfOver(mqttTopic, 65_535) > 0) throw new ConfigError([{ path: 'topic', message: `the MQTT topic of "${topic.slice(0, 40)}…" is over 65535 bytes of UTF-8, the most a packet holds` }]);
    const qos = QOS[options.guarantee];
    // Every message checked before any is written: none of a refused batch goes out.
    const properties = messages.map((message) => {
      const userProperties = encodeProperties(message);
      const problem = propertiesProblem(userProperties);
      if (problem) throw new ConfigError([problem]);
      return userProperties;
    });
    if (qos === 0) {
      for (const [i, message] of messages.entries()) this.client.publish(mqttTopic, payloadOf(message), { qos: 0, properties: { userProperties: properties[i]! } });
      return {};
    }
    if (!this.client.connected) {
      throw new PublishError(`mqtt: not connected to ${endpointOf(this.options.url)}: ${messages.length} message(s) to ${topic} not published`, topic);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new PublishError(`mqtt: ${messages.length} message(s) to ${topic} not acknowledged within ${this.options.publishTimeoutMs} ms`, topic)),
        this.options.publishTimeoutMs,
      );
    });
    let packets: (Packet | undefined)[];
    try {
      packets = await Promise.race([
        Promise.all(messages.map((message, i) => this.client.publishAsync(mqttTopic, payloadOf(message), { qos, properties: { userProperties: properties[i]! } }))),
        timeout,
      ]);
    } catch (error) {
      if (error instanceof PublishError) throw error;
      throw new PublishError(`mqtt: ${messages.length} message(s) to ${topic} not acknowledged: ${(error as Error).message}`, topic, { cause: error });
    } finally {
      clearTimeout(timer);
    }
    let unmatched = 0;
    for (const packet of packets) {
      if (packet?.messageId !== undefined && this.unmatched.delete(packet.messageId)) unmatched++;
    }
    if (needsReceiver && unmatched > 0) {
      throw new PublishError(`mqtt: no subscription matched ${topic} (${unmatched} of ${messages.length}): the broker keeps nothing without one; subscribe a group to it`, topic);
    }
    return { receivers: messages.length - unmatched > 0 ? 1 : 0 };
  }

  /** `concurrency` members of the group's shared subscription; resolves once every one is subscribed. */
  async subscribe(spec: TransportSubscribeSpec, listener: DeliveryListener): Promise<TransportSubscription> {
    if (this.closed) throw new ClosedError('mqtt transport is closed');
    if (!spec.pattern && !isPlainTopic(spec.topic)) throw new CapabilityError([{ path: 'topic', message: `mqtt: ${topicProblem(spec.topic)}` }]);
    const group = spec.group || 'default';
    if (!isGroupName(group)) throw new CapabilityError([{ path: 'group', message: `mqtt: "${group}" cannot name a shared subscription (no "/", "+", "#" or control characters)` }]);
    const subscription = new MqttSubscription(
      {
        options: this.options,
        clientOptions: () => clientOptions(this.options),
        observer: () => this.observer,
        claimIndex: (base) => this.claimIndex(base),
        releaseIndex: (base, index) => this.indexes.get(base)?.delete(index),
      },
      spec,
      listener,
    );
    await subscription.start();
    this.subscriptions.add(subscription);
    const forget = () => this.subscriptions.delete(subscription);
    return {
      close: () => subscription.close().finally(forget),
      drain: () => subscription.drain().finally(forget),
      status: () => subscription.status(),
      handedBack: () => subscription.handedBack(),
    };
  }

  private claimIndex(base: string): number {
    let used = this.indexes.get(base);
    if (!used) this.indexes.set(base, (used = new Set()));
    let index = 0;
    while (used.has(index)) index++;
    used.add(index);
    return index;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    this.subscriptions.clear();
    await endClient(this.client, this.options.publishTimeoutMs);
  }
}

/** The payload as mqtt.js takes it, without a copy. */
function payloadOf(message: TransportMessage): Buffer {
  const body = message.body;
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}
