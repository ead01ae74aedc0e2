import { ConfigError, NonRetryableError, RemoteError, RequestTimeoutError, ClosedError } from '../ports/errors.js';
import { newMessageId, type Message } from '../ports/message.js';
import type { Publisher, SubscribeOptions, Subscriber, Subscription, Transport } from '../ports/ports.js';

/** The headers of request/reply. A request carries both; a reply carries the correlation id (and the error name when the replier threw). */
export const ReplyHeaders = {
  replyTo: 'x-reply-to',
  correlationId: 'x-correlation-id',
  error: 'x-reply-error',
} as const;

/**
 * Replies only ever go to topics under this prefix: `x-reply-to` is set by whoever publishes the
 * request, so a forged one can never make a replier publish to a business topic.
 */
export const REPLY_TOPIC_PREFIX = 'sb.reply.';
const REPLY_TOPIC = /^sb\.reply\.[A-Za-z0-9_-]{1,64}$/;

export function isReplyTopic(topic: string): boolean {
  return REPLY_TOPIC.test(topic);
}

export interface RequestOptions {
  /** Rejects with {@link RequestTimeoutError} when no reply came within this long (1 ms – 10 min). */
  readonly timeoutMs: number;
  readonly key?: string;
  readonly headers?: Record<string, string>;
}

/** Sends requests and waits for their replies, on one reply topic of its own. */
export interface Requester {
  /** This requester's reply topic (`sb.reply.<id>`). */
  readonly replyTopic: string;
  /** Resolves with the reply; rejects with {@link RemoteError} (the replier threw), {@link RequestTimeoutError} or {@link ClosedError}. */
  request<Res = unknown, Req = unknown>(topic: string, value: Req, options: RequestOptions): Promise<Message<Res>>;
  /** Requests waiting for a reply now. */
  pending(): number;
  /** Replies that came after their request timed out (or for no request of ours), dropped. */
  lateReplies(): number;
  /** Rejects what is pending with ClosedError, clears its timers, closes the reply subscription. */
  close(): Promise<void>;
}

interface Waiting {
  readonly resolve: (reply: Message<unknown>) => void;
  readonly reject: (error: unknown) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

interface BusParts {
  readonly transport: Transport;
  readonly publisher: Publisher;
  readonly subscriber: Subscriber;
}

/** The options of a reply subscription: its own group where the transport has groups, no DLQ, and ephemeral (its broker-side state goes when it closes). */
function replySubscriptionOptions(transport: Transport, group: string): SubscribeOptions<unknown> {
  const caps = transport.capabilities;
  return {
    ...(caps.consumerGroups ? { group } : {}),
    ordering: caps.orderings.includes('none') ? 'none' : caps.orderings[0]!,
    concurrency: caps.orderings.includes('none') ? 64 : 1,
    deadLetter: false,
    retry: { maxAttempts: 1 },
    ephemeral: true,
  };
}

/** Reply topics of the requesters open on each bus (by its subscriber). */
const liveByBus = new WeakMap<object, Set<string>>();

function liveReplyTopics(bus: BusParts): Set<string> {
  let live = liveByBus.get(bus.subscriber);
  if (!live) liveByBus.set(bus.subscriber, (live = new Set()));
  return live;
}

/**
 * A requester on `bus`: subscribes to its reply topic `sb.reply.<id>` (its own group there) before it
 * resolves, so no reply can be missed. One per process is enough (requests are told apart by their
 * correlation ids).
 */
export async function createRequester(bus: BusParts, options: { readonly id?: string } = {}): Promise<Requester> {
  const replyTopic = `${REPLY_TOPIC_PREFIX}${options.id ?? newMessageId().replace(/[^A-Za-z0-9_-]/g, '')}`;
  if (!isReplyTopic(replyTopic)) throw new Error(`requester id: letters, digits, _ and - only, at most 64 (got "${options.id}")`);
  // Two live requesters with one id would share the reply group: each would get some of the other's
  // replies, drop them as unknown, and its own requests would time out.
  const live = liveReplyTopics(bus);
  if (live.has(replyTopic)) throw new ConfigError([{ path: 'id', message: `a requester with id "${options.id}" is open on this bus already: close it first, or give each its own id` }]);
  live.add(replyTopic);
  const waiting = new Map<string, Waiting>();
  let late = 0;
  let closed = false;
  let subscription: Subscription;
  try {
    subscription = await bus.subscriber.subscribe(
      replyTopic,
      (reply) => {
        const id = reply.headers[ReplyHeaders.correlationId];
        const entry = id === undefined ? undefined : waiting.get(id);
        if (!entry) {
          late++;
          return;
        }
        waiting.delete(id!);
        clearTimeout(entry.timer);
        const errorName = reply.headers[ReplyHeaders.error];
        if (errorName === undefined) entry.resolve(reply);
        else entry.reject(new RemoteError(errorName, String((reply.value as { error?: { message?: unknown } } | undefined)?.error?.message ?? 'the replier failed')));
      },
      replySubscriptionOptions(bus.transport, replyTopic),
    );
  } catch (error) {
    live.delete(replyTopic);
    throw error;
  }
  return {
    replyTopic,
    async request<Res, Req>(topic: string, value: Req, requestOptions: RequestOptions): Promise<Message<Res>> {
      if (closed) throw new ClosedError('requester is closed');
      const timeoutMs = (requestOptions as RequestOptions | undefined)?.timeoutMs;
      if (timeoutMs === undefined || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 600_000) {
        throw new ConfigError([{ path: 'timeoutMs', message: `an integer from 1 to 600000, required (got ${timeoutMs})` }]);
      }
      const correlationId = newMessageId();
      const reply = new Promise<Message<unknown>>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(correlationId);
          reject(new RequestTimeoutError(topic, timeoutMs));
        }, timeoutMs);
        waiting.set(correlationId, { resolve, reject, timer });
      });
      // The reply can come before the publish call returns (its confirm is slower than the replier):
      // a rejection then must not count as unhandled; the caller still gets it through `reply`.
      reply.catch(() => undefined);
      try {
        await bus.publisher.publish(topic, {
          ...(requestOptions.key !== undefined ? { key: requestOptions.key } : {}),
          headers: { ...requestOptions.headers, [ReplyHeaders.replyTo]: replyTopic, [ReplyHeaders.correlationId]: correlationId },
          value,
        });
      } catch (error) {
        const entry = waiting.get(correlationId);
        if (entry) clearTimeout(entry.timer);
        waiting.delete(correlationId);
        throw error;
      }
      return reply as Promise<Message<Res>>;
    },
    pending: () => waiting.size,
    lateReplies: () => late,
    async close() {
      if (closed) return;
      closed = true;
      live.delete(replyTopic);
      for (const entry of waiting.values()) {
        clearTimeout(entry.timer);
        entry.reject(new ClosedError('requester closed before the reply came'));
      }
      waiting.clear();
      await subscription.close();
    },
  };
}

/**
 * Answers requests on `topic`: the handler's return value is the reply; when it throws, the reply is
 * an error reply (`x-reply-error` = the error's name, `{ error: { name, message } }`) and the request
 * counts as handled: the requester gets the failure at once instead of waiting out its timeout. A
 * request without `x-reply-to` / `x-correlation-id`, or whose `x-reply-to` is not a reply topic
 * (`sb.reply.*`), is dead-lettered as non-retryable (never answered elsewhere). `options` are the
 * subscription's (group, concurrency, ordering...).
 */
export function serveRequests<Req = unknown, Res = unknown>(
  bus: BusParts,
  topic: string,
  handler: (request: Message<Req>) => Res | Promise<Res>,
  options: SubscribeOptions<Req> = {},
): Promise<Subscription> {
  return bus.subscriber.subscribe<Req>(
    topic,
    async (request) => {
      const replyTo = request.headers[ReplyHeaders.replyTo];
      const correlationId = request.headers[ReplyHeaders.correlationId];
      if (replyTo === undefined || correlationId === undefined) throw new NonRetryableError(`a request needs ${ReplyHeaders.replyTo} and ${ReplyHeaders.correlationId}`);
      if (!isReplyTopic(replyTo)) throw new NonRetryableError(`${ReplyHeaders.replyTo} is not a reply topic (${REPLY_TOPIC_PREFIX}*): refused`);
      let reply: { headers: Record<string, string>; value: unknown };
      try {
        reply = { headers: { [ReplyHeaders.correlationId]: correlationId }, value: await handler(request) };
      } catch (error) {
        const name = error instanceof Error ? error.name : 'Error';
        const message = error instanceof Error ? error.message : String(error);
        reply = { headers: { [ReplyHeaders.correlationId]: correlationId, [ReplyHeaders.error]: name || 'Error' }, value: { error: { name, message } } };
      }
      await bus.publisher.publish(replyTo, { headers: reply.headers, value: reply.value ?? null });
    },
    options,
  );
}
