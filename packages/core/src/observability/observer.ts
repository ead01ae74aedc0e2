import { describeFailure } from '../util/failure.js';
import { observerWants, type BusEvent, type BusEventType, type BusObserver } from '../ports/events.js';

/** Fans one event out to several observers; a throwing observer does not stop the others. */
export function combineObservers(...observers: (BusObserver | undefined)[]): BusObserver {
  const list = observers.filter((o): o is BusObserver => o !== undefined);
  if (list.length === 1) return list[0]!;
  return {
    wants: (type) => list.some((observer) => observerWants(observer, type)),
    onEvent(event) {
      for (const observer of list) {
        try {
          observer.onEvent(event);
        } catch {
          // An observer's bug must not break message handling.
        }
      }
    },
  };
}

/**
 * The observers of one transport: every bus sharing the transport adds its own (`Transport.observe`)
 * and gets the transport's events; `add` returns the function that removes it again (bus close).
 * Throwing observers are isolated from each other and from the caller.
 */
export class ObserverSet implements BusObserver {
  private readonly observers = new Set<BusObserver>();

  add(observer: BusObserver): () => void {
    this.observers.add(observer);
    return () => void this.observers.delete(observer);
  }

  onEvent(event: BusEvent): void {
    for (const observer of this.observers) {
      try {
        observer.onEvent(event);
      } catch {
        // an observer's bug must not break the transport
      }
    }
  }
}

/** Counters per event type, optionally per topic. Handy in tests and the demo. */
export class CountingObserver implements BusObserver {
  readonly totals = new Map<BusEventType, number>();
  readonly byTopic = new Map<string, Map<BusEventType, number>>();
  private readonly waiters: { predicate: () => boolean; resolve: () => void }[] = [];

  onEvent(event: BusEvent): void {
    const amount = 'count' in event ? event.count : 1;
    this.totals.set(event.type, (this.totals.get(event.type) ?? 0) + amount);
    if ('topic' in event && event.topic !== undefined) {
      let perTopic = this.byTopic.get(event.topic);
      if (!perTopic) this.byTopic.set(event.topic, (perTopic = new Map()));
      perTopic.set(event.type, (perTopic.get(event.type) ?? 0) + amount);
    }
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i]!;
      if (waiter.predicate()) {
        this.waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  count(type: BusEventType, topic?: string): number {
    return (topic === undefined ? this.totals.get(type) : this.byTopic.get(topic)?.get(type)) ?? 0;
  }

  /** Resolves once `count(type, topic) >= n`. */
  waitFor(type: BusEventType, n: number, topic?: string): Promise<void> {
    const predicate = () => this.count(type, topic) >= n;
    if (predicate()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ predicate, resolve }));
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.totals);
  }
}

/** A pino-compatible logger subset: `(fields, message)`. */
export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Logs to the console as one JSON line per event; for examples and quick starts (use pino in production). */
export const consoleLogger: Logger = {
  debug: (fields, message) => console.debug(JSON.stringify({ level: 'debug', msg: message, ...fields })),
  info: (fields, message) => console.info(JSON.stringify({ level: 'info', msg: message, ...fields })),
  warn: (fields, message) => console.warn(JSON.stringify({ level: 'warn', msg: message, ...fields })),
  error: (fields, message) => console.error(JSON.stringify({ level: 'error', msg: message, ...fields })),
};

const PAYLOAD_PREVIEW_BYTES = 512;

/** Bounded, never-throwing error fields for log lines (any thrown value may reach here). */
function errorFields(error: unknown): { errorName: string; errorMessage: string } {
  const { name, message } = describeFailure(error, 2048);
  return { errorName: name, errorMessage: message };
}

function payloadPreview(payload: Uint8Array): string {
  const text = Buffer.from(payload.subarray(0, PAYLOAD_PREVIEW_BYTES)).toString('utf8');
  return payload.length > PAYLOAD_PREVIEW_BYTES ? `${text}…(${payload.length} bytes)` : text;
}

/**
 * Turns bus events into the usual log lines: "failed, will retry" (warn), "retrying (n)" (warn),
 * "final failure" with topic, partition, offset, key and a payload preview (error). Headers are not
 * logged (they may carry credentials or tokens); connection details never reach events.
 */
export function loggingObserver(logger: Logger): BusObserver {
  return {
    onEvent(event) {
      switch (event.type) {
        case 'will-retry':
          logger.warn({ topic: event.topic, group: event.group, messageId: event.messageId, attempt: event.attempt, delayMs: event.delayMs, ...errorFields(event.error) }, 'failed, will retry');
          break;
        case 'retry-attempt':
          logger.warn({ topic: event.topic, group: event.group, messageId: event.messageId, attempt: event.attempt }, `retrying (${event.attempt})`);
          break;
        case 'final-failure':
          logger.error(
            {
              topic: event.source.topic,
              partition: event.source.partition,
              offset: event.source.offset,
              key: event.key,
              messageId: event.messageId,
              attempt: event.attempt,
              reason: event.reason,
              ...errorFields(event.error),
              payload: payloadPreview(event.payload),
            },
            'final failure',
          );
          break;
        case 'publish-failed':
          logger.error({ topic: event.topic, count: event.count, ...errorFields(event.error) }, 'publish failed');
          break;
        case 'no-receivers':
          logger.warn({ topic: event.topic, count: event.count }, 'published to no receivers: message lost');
          break;
        case 'subscription-interrupted':
          logger.warn({ topic: event.topic, transport: event.transport }, 'subscription interrupted');
          break;
        case 'subscription-resumed':
          logger.info({ topic: event.topic, transport: event.transport, gapMs: event.gapMs }, 'subscription resumed');
          break;
        case 'breaker-state':
          logger.warn({ transport: event.transport, state: event.state }, `circuit breaker ${event.state}`);
          break;
        case 'publish-diverted':
          logger.warn({ topic: event.topic, count: event.count, reason: event.reason, ...errorFields(event.error) }, 'publish diverted to the fallback store');
          break;
        case 'fallback-expired':
          logger.error({ count: event.count }, 'fallback records expired and moved aside');
          break;
        case 'untrusted-header':
          logger.warn({ topic: event.topic, transport: event.transport, header: event.header, messageId: event.messageId }, 'untrusted header value ignored');
          break;
        case 'buffer-overflow':
          logger.error({ topic: event.topic, transport: event.transport, dropped: event.dropped, policy: event.policy }, 'subscriber buffer overflow: messages dropped');
          break;
        case 'internal-error':
          logger.error({ topic: event.topic, context: event.context, ...errorFields(event.error) }, 'internal error');
          break;
        default:
          break;
      }
    },
  };
}
