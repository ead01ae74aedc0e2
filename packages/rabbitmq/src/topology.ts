import type { Channel, RecoveringChannelModel } from 'amqplib';
import { ConfigError } from '@switchboard/core';
import { matchesTopicPattern, type TransportSubscribeSpec } from '@switchboard/core/transport';
import type { RabbitOptions, RabbitRoute } from './options.js';
import { amqpNameProblem, queueNameFor } from './names.js';

/**
 * The RabbitMQ topology of a transport: which exchange a topic is routed through, the arguments of the
 * queues it declares, the group queues with their bindings, and the shared channel for passive
 * checks. Every declare is idempotent: declaring again what exists changes nothing.
 */
export class RabbitTopology {
  private checking: Promise<Channel> | undefined;
  /** The main topic exchange, the route of every topic without one of its own (and of patterns). */
  private readonly mainRoute: RabbitRoute;
  /** The configured routes, resolved once: a queue route with the default exchange and its queue's name as routing key. */
  private readonly routes: ReadonlyMap<string, RabbitRoute>;

  constructor(
    private readonly options: RabbitOptions,
    private readonly model: RecoveringChannelModel,
  ) {
    this.mainRoute = Object.freeze({ exchange: options.exchange, type: 'topic' });
    this.routes = new Map(
      Object.entries(options.routes).map(([topic, route]): [string, RabbitRoute] => [
        topic,
        Object.freeze(route.type === 'queue' ? { ...route, exchange: '', routingKey: queueNameFor(topic, route.group) } : route),
      ]),
    );
  }

  /**
   * Route of a core topic: its configured route, else the main topic exchange with the topic as routing
   * key. A queue route comes with its routing key: the name of its group's queue. Shared: read-only.
   */
  routeFor(topic: string): RabbitRoute {
    return this.routes.get(topic) ?? this.mainRoute;
  }

  /**
   * Refuses a topic or a group RabbitMQ cannot name a queue or a binding after (see
   * {@link amqpNameProblem}), and a subscription that its topic's route would never feed: on a topic routed straight to a
   * group's queue (`type: 'queue'`), anything but that group's own subscription; a pattern matching
   * a topic routed elsewhere than the main exchange (a pattern's queue is bound there only).
   */
  checkSubscribable(spec: TransportSubscribeSpec): void {
    const badTopic = amqpNameProblem(spec.pattern ? 'the binding pattern' : 'the topic', spec.topic);
    if (badTopic) throw new ConfigError([{ path: 'topic', message: badTopic }]);
    const badQueue = amqpNameProblem("the group's queue", queueNameFor(spec.topic, spec.group));
    if (badQueue) throw new ConfigError([{ path: 'group', message: badQueue }]);
    if (spec.pattern) {
      this.checkPattern(spec.topic);
      return;
    }
    const route = this.routeOfSubscription(spec);
    if (route.type !== 'queue') return;
    const group = spec.group === '' ? 'default' : spec.group;
    if (group === route.group && !spec.ephemeral) return;
    const who = spec.ephemeral ? 'a request/reply or broadcast subscription' : `group "${group}"`;
    throw new ConfigError([
      {
        path: `transport.routes.${spec.topic}`,
        message: `routes "${spec.topic}" straight to the queue of group "${route.group}" (type "queue"): ${who} would receive nothing. Subscribe with group "${route.group}", or route the topic through an exchange to give each group its copy`,
      },
    ]);
  }

  private checkPattern(pattern: string): void {
    const { exchange } = this.mainRoute;
    for (const [topic, route] of this.routes) {
      const throughMain = route.exchange === exchange && route.type === 'topic' && (route.routingKey ?? topic) === topic;
      if (throughMain || !matchesTopicPattern(pattern, topic)) continue;
      const where = route.type === 'queue' ? `straight to the queue of group "${route.group}"` : `through exchange "${route.exchange}" (type "${route.type}")`;
      throw new ConfigError([
        {
          path: `transport.routes.${topic}`,
          message: `the pattern "${pattern}" matches "${topic}", which is routed ${where}: a pattern subscription is bound to the main exchange "${exchange}" only and would never receive it. Subscribe to "${topic}" by name, or route it through the main exchange`,
        },
      ]);
    }
  }

  /** Arguments of the queues this transport declares (queue type, expiry). */
  queueArguments(): Record<string, unknown> {
    const args: Record<string, unknown> = {};
    if (this.options.queueType === 'quorum') args['x-queue-type'] = 'quorum';
    if (this.options.queueExpiresMs !== undefined) args['x-expires'] = this.options.queueExpiresMs;
    return args;
  }

  /** Declares the group queue of `spec` with its bindings (and its DLQ for quorum delivery limits) on `channel`. */
  async declareGroupQueue(channel: Channel, spec: TransportSubscribeSpec): Promise<string> {
    const queue = queueNameFor(spec.topic, spec.group);
    const route = this.routeOfSubscription(spec);
    if (route.type !== 'queue') await channel.assertExchange(route.exchange, route.type, { durable: true });
    if (spec.ephemeral) {
      // Owned by this subscription: a classic queue deleted with its last consumer (so also when the
      // process dies), and after a minute unused should it never get one.
      await channel.assertQueue(queue, { durable: false, autoDelete: true, arguments: { 'x-expires': 60_000 } });
      await this.bindGroupQueue(channel, spec, queue);
      return queue;
    }
    const args = this.queueArguments();
    if (this.options.deliveryLimit !== undefined) {
      const dlq = `${queue}-dlq`;
      await channel.assertQueue(dlq, { durable: true, arguments: this.queueArguments() });
      Object.assign(args, {
        'x-delivery-limit': this.options.deliveryLimit,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': dlq,
        'x-dead-letter-strategy': 'at-least-once',
        'x-overflow': 'reject-publish',
      });
    }
    await channel.assertQueue(queue, { durable: true, arguments: args });
    await this.bindGroupQueue(channel, spec, queue);
    return queue;
  }

  /** The exchange a subscription's queue is bound to: the main one for patterns, else the topic's route. */
  routeOfSubscription(spec: TransportSubscribeSpec): RabbitRoute {
    return spec.pattern ? this.mainRoute : this.routeFor(spec.topic);
  }

  /** Binds `queue` for `spec` (idempotent: binding again what exists changes nothing). */
  async bindGroupQueue(channel: Channel, spec: TransportSubscribeSpec, queue: string): Promise<void> {
    const route = this.routeOfSubscription(spec);
    if (route.type === 'queue') return; // the default exchange reaches every queue by its name
    if (route.type === 'headers') {
      const binding = route.headers?.[spec.group || 'default'] ?? route.headers?.default ?? { 'x-match': 'all' };
      await channel.bindQueue(queue, route.exchange, '', binding);
    } else {
      await channel.bindQueue(queue, route.exchange, route.type === 'fanout' ? '' : (route.routingKey ?? spec.topic));
    }
  }

  /**
   * A channel for topology checks (passive declares), shared by this transport's subscriptions and
   * opened again after the broker closed it (a failed passive check closes its channel).
   */
  topologyChannel(): Promise<Channel> {
    this.checking ??= this.model.createChannel().then(
      (channel) => {
        channel.on('error', () => undefined);
        channel.on('close', () => (this.checking = undefined));
        return channel;
      },
      (error: unknown) => {
        this.checking = undefined;
        throw error;
      },
    );
    return this.checking;
  }
}
