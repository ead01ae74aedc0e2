import { createBus, type Bus, type SubscriptionDefaults } from '../bus/bus.js';
import { DeadLetterHeaders, defaultDeadLetterTopic } from '../pipeline/dead-letter.js';
import { jsonCodec, type Codec } from '../ports/codec.js';
import type { Message } from '../ports/message.js';
import type { Middleware, Publisher, Subscriber, Transport } from '../ports/ports.js';
import { createMemoryTransport } from '../transports/memory/memory-transport.js';

/** A message as published through the harness: what went on the wire, the body decoded. */
export interface PublishedMessage<T = unknown> {
  readonly topic: string;
  readonly id: string;
  readonly key?: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The body decoded with the harness codec (undefined when it does not decode). */
  readonly value: T;
}

/** A message a pipeline gave up: its dead letter, with why. */
export interface DeadLetteredMessage<T = unknown> extends PublishedMessage<T> {
  /** The topic it failed on. */
  readonly originalTopic: string;
  readonly reason: string;
  readonly errorMessage: string;
  readonly attempts: number;
}

/** What a handler call did (recorded by the harness's middleware, around every handler of its bus). */
export interface HandlerCall<T = unknown> {
  readonly message: Message<T>;
  readonly outcome: 'handled' | 'failed';
  readonly error?: unknown;
}

/**
 * A bus on the in-memory transport for application tests, with spies: what was published, which
 * handler calls succeeded or threw, what was dead-lettered. Every wait is bounded and, when it runs
 * out, says what it saw instead. Bind `bus` where the application takes its ports (e.g.
 * `switchboardModule(harness.bus, config)` with inversify).
 */
export interface TestHarness {
  readonly bus: Bus;
  readonly publisher: Publisher;
  readonly subscriber: Subscriber;
  /** Everything published to `topic` so far, in order. */
  published<T = unknown>(topic: string): readonly PublishedMessage<T>[];
  /** The first message of `topic` a handler finished without throwing (and `matching` accepts). */
  handled<T = unknown>(topic: string, matching?: (message: Message<T>) => boolean, timeoutMs?: number): Promise<Message<T>>;
  /** The first handler call on `topic` that threw (and `matching` accepts), with its error. */
  failed<T = unknown>(topic: string, matching?: (message: Message<T>) => boolean, timeoutMs?: number): Promise<HandlerCall<T>>;
  /** The first dead letter of a message that failed on `topic` (and `matching` accepts). */
  deadLettered<T = unknown>(topic: string, matching?: (letter: DeadLetteredMessage<T>) => boolean, timeoutMs?: number): Promise<DeadLetteredMessage<T>>;
  close(): Promise<void>;
}

export interface TestHarnessOptions {
  /** Subscription defaults of the bus (retry policy, concurrency, …); the harness adds its spy middleware first. */
  readonly defaults?: SubscriptionDefaults;
  /** How published bodies are decoded for `published()` / `deadLettered()`. Default JSON. */
  readonly codec?: Codec;
  /** Bound of each wait, ms. Default 5000. */
  readonly timeoutMs?: number;
}

/** Creates a {@link TestHarness}. */
export function createTestHarness(options: TestHarnessOptions = {}): TestHarness {
  const codec = options.codec ?? jsonCodec;
  const defaultTimeout = options.timeoutMs ?? 5000;
  const published: PublishedMessage[] = [];
  const calls: (HandlerCall & { topic: string })[] = [];
  const waiters = new Set<() => void>();
  const changed = () => {
    for (const waiter of [...waiters]) waiter();
  };
  const memory = createMemoryTransport();
  // The transport as the bus sees it, with publishes recorded (dead letters go through it too).
  const transport = new Proxy(memory, {
    get(target, property) {
      if (property === 'publish') {
        const publish: Transport['publish'] = (topic, messages, publishOptions) => {
          for (const m of messages) {
            let value: unknown;
            try {
              value = codec.decode(m.body);
            } catch {
              value = undefined;
            }
            published.push({ topic, id: m.id, ...(m.key !== undefined ? { key: m.key } : {}), headers: m.headers, value });
          }
          changed();
          return target.publish(topic, messages, publishOptions);
        };
        return publish;
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const spy: Middleware = async (message, next) => {
    try {
      await next();
      calls.push({ topic: message.source.topic, message, outcome: 'handled' });
    } catch (error) {
      calls.push({ topic: message.source.topic, message, outcome: 'failed', error });
      throw error;
    } finally {
      changed();
    }
  };
  const defaults = options.defaults ?? {};
  const bus = createBus({ transport, defaults: { ...defaults, use: [spy, ...(defaults.use ?? [])] } });

  function waitFor<R>(find: () => R | undefined, timeoutMs: number, describe: () => string): Promise<R> {
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<R>((resolve, reject) => {
      const check = () => {
        const result = find();
        if (result === undefined) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(result);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`));
      }, timeoutMs);
      waiters.add(check);
    });
  }
  const ids = (list: readonly { id: string }[]) => (list.length === 0 ? 'none' : list.map((m) => m.id).join(', '));
  const letterOf = (m: PublishedMessage): DeadLetteredMessage => ({
    ...m,
    originalTopic: m.headers[DeadLetterHeaders.originalTopic] ?? '',
    reason: m.headers[DeadLetterHeaders.reason] ?? '',
    errorMessage: m.headers[DeadLetterHeaders.errorMessage] ?? '',
    attempts: Number(m.headers[DeadLetterHeaders.attempts] ?? 0),
  });

  return {
    bus,
    publisher: bus.publisher,
    subscriber: bus.subscriber,
    published: <T>(topic: string) => published.filter((m) => m.topic === topic) as PublishedMessage<T>[],
    handled: <T>(topic: string, matching: (message: Message<T>) => boolean = () => true, timeoutMs = defaultTimeout) =>
      waitFor(
        () => calls.find((c) => c.topic === topic && c.outcome === 'handled' && matching(c.message as Message<T>))?.message as Message<T> | undefined,
        timeoutMs,
        () =>
          `a handled message on "${topic}"${matching.length > 0 ? ' that matches' : ''}; handled so far: ${ids(calls.filter((c) => c.topic === topic && c.outcome === 'handled').map((c) => c.message))}; failed: ${ids(calls.filter((c) => c.topic === topic && c.outcome === 'failed').map((c) => c.message))}`,
      ),
    failed: <T>(topic: string, matching: (message: Message<T>) => boolean = () => true, timeoutMs = defaultTimeout) =>
      waitFor(
        () => calls.find((c) => c.topic === topic && c.outcome === 'failed' && matching(c.message as Message<T>)) as HandlerCall<T> | undefined,
        timeoutMs,
        () => `a failed handler call on "${topic}"; handled so far: ${ids(calls.filter((c) => c.topic === topic && c.outcome === 'handled').map((c) => c.message))}`,
      ),
    deadLettered: <T>(topic: string, matching: (letter: DeadLetteredMessage<T>) => boolean = () => true, timeoutMs = defaultTimeout) => {
      const dlq = defaultDeadLetterTopic(topic);
      const letters = () => published.filter((m) => m.topic === dlq).map(letterOf) as DeadLetteredMessage<T>[];
      return waitFor(
        () => letters().find(matching),
        timeoutMs,
        () => `a dead letter of "${topic}" (on "${dlq}"); dead-lettered so far: ${ids(letters())}`,
      );
    },
    close: () => bus.close(),
  };
}
