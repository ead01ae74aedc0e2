import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createBus, type Bus, type SubscriptionDefaults } from '../bus/bus.js';
import type { Capabilities } from '../ports/capabilities.js';
import { bytesCodec, jsonCodec } from '../ports/codec.js';
import { DeadLetterHeaders, TRUNCATED_HEADERS_HEADER } from '../pipeline/dead-letter.js';
import { NonRetryableError } from '../ports/errors.js';
import type { Message, TransportMessage } from '../ports/message.js';
import { CountingObserver } from '../observability/observer.js';
import type { BusEvent } from '../ports/events.js';
import type { SubscribeOptions, Transport } from '../ports/ports.js';
import * as fc from 'fast-check';
import { Recorder, gate, uniqueName, waitUntil } from './recorder.js';
import { forgedControlHeaders, hostileThrownValues } from './hostile.js';
import { replayTo } from '../operations/dead-letter-consumer.js';
import { testTracing } from './tracing.js';

/** Counts like {@link CountingObserver} and prints what a passing run never shows (internal errors, interruptions), so a failure in CI can be diagnosed from its log. */
class ReportingObserver extends CountingObserver {
  override onEvent(event: BusEvent): void {
    super.onEvent(event);
    if (event.type === 'internal-error') console.warn(`[conformance] internal error on ${event.topic ?? '-'}: ${event.context}: ${String((event.error as Error)?.message ?? event.error)}`);
    else if (event.type === 'subscription-interrupted') console.warn(`[conformance] subscription to ${event.topic} interrupted`);
  }
}

/** Reads dead letters of one DLQ destination, as they arrive. */
export interface DeadLetterReader {
  readonly letters: Recorder<TransportMessage>;
  close(): Promise<void>;
}

/** A message as a foreign producer writes it. */
export interface RawMessage {
  readonly id: string;
  readonly key?: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
}

/** What an adapter gives the suite. */
export interface ConformanceTarget {
  /** Shown in test names, e.g. "kafka". */
  readonly name: string;
  /** The capabilities the adapter declares; scenarios needing an absent one skip, saying which. */
  readonly capabilities: Capabilities;
  /** A fresh, connected transport (its own connections). The suite closes it. */
  createTransport(): Promise<Transport>;
  /** Makes topics exist before use where the broker needs it (e.g. Kafka partitions). Optional. */
  prepareTopics?(topics: readonly string[]): Promise<void>;
  /**
   * Opens a reader on `deadLetterTopic` before anything is dead-lettered. Default: a raw subscription on
   * the transport. Transports whose DLQ lives elsewhere (Redis: a stream) provide their own.
   */
  openDeadLetterReader?(transport: Transport, deadLetterTopic: string): Promise<DeadLetterReader>;
  /**
   * Publishes with the broker's own client, as a producer that does not use Switchboard would: the
   * headers reach the wire exactly as given (forged `x-sb-*` control headers included), with a
   * timestamp field set to `rawTimestamp` where the wire format has one. Default: `transport.publish`.
   */
  publishRaw?(transport: Transport, topic: string, message: RawMessage): Promise<void>;
  /**
   * The adapter reads control values (attempt, topic, timestamp) from message headers (RabbitMQ): the
   * suite then expects forged ones to be reported as `untrusted-header`. Others keep them in their own
   * bookkeeping and ignore such headers entirely.
   */
  readonly readsControlHeaders?: boolean;
  /**
   * Subscription defaults of every bus the suite opens, e.g. `{ ordering: 'key' }` to run every scenario
   * with side-by-side handling. Scenarios that set an option themselves override it.
   */
  readonly defaults?: SubscriptionDefaults;
  /** Bound for each wait on the broker, ms. Default 20000. */
  readonly waitMs?: number;
  /** Per-test timeout, ms. Default 60000. */
  readonly testTimeoutMs?: number;
}

async function defaultDeadLetterReader(transport: Transport, topic: string): Promise<DeadLetterReader> {
  const letters = new Recorder<TransportMessage>();
  const subscription = await transport.subscribe(
    {
      topic,
      pattern: false,
      group: transport.capabilities.consumerGroups ? 'dlq-reader' : '',
      concurrency: 1,
      ordering: transport.capabilities.orderings[0] ?? 'partition',
      startFrom: transport.capabilities.replay ? 'earliest' : 'latest',
    },
    async (delivery) => {
      letters.add({ id: delivery.id, ...(delivery.key !== undefined ? { key: delivery.key } : {}), headers: delivery.headers, body: delivery.body, timestamp: delivery.timestamp });
      await delivery.ack();
    },
  );
  return { letters, close: () => subscription.close() };
}

const text = (m: TransportMessage | Message) => Buffer.from('body' in m ? m.body : m.payload).toString('utf8');

/**
 * THE conformance suite: every transport runs it, the in-memory one included. Call it inside a test
 * file of the adapter; it declares its own `describe`.
 */
export function runConformanceSuite(target: ConformanceTarget): void {
  const caps = target.capabilities;
  const waitMs = target.waitMs ?? 20_000;
  const timeout = target.testTimeoutMs ?? 60_000;
  const openReader = target.openDeadLetterReader ?? defaultDeadLetterReader;
  /** A scenario that needs capabilities: skipped, visibly, with the missing capability as the reason. */
  const needs = (required: (keyof Capabilities)[], title: string, scenario: () => Promise<void>) => {
    const missing = required.filter((c) => !caps[c]);
    if (missing.length === 0) it(title, { timeout }, scenario);
    else it.skip(`${title} — skipped: transport lacks capability ${missing.join(', ')}`, scenario);
  };
  const groupOf = (name: string): { group?: string } => (caps.consumerGroups ? { group: name } : {});
  const startFrom: SubscribeOptions['startFrom'] = caps.replay ? 'earliest' : 'latest';

  describe(`conformance: ${target.name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    async function openBus(observer: CountingObserver = new ReportingObserver()): Promise<Bus & { counts: CountingObserver }> {
      const transport = await target.createTransport();
      const bus = createBus({ transport, observer, ...(target.defaults ? { defaults: target.defaults } : {}) });
      cleanups.push(() => bus.close());
      return Object.assign(bus, { counts: observer });
    }

    /** Opens a reader on `<topic>-dlq` before anything is dead-lettered; closed after the test. */
    async function openDeadLetters(bus: Bus, topic: string): Promise<DeadLetterReader> {
      const dlqTopic = `${topic}-dlq`;
      await target.prepareTopics?.([dlqTopic]);
      const reader = await openReader(bus.transport, dlqTopic);
      cleanups.push(() => reader.close());
      return reader;
    }

    async function topics(...names: string[]): Promise<string[]> {
      const unique = names.map((n) => uniqueName(`sb-conf.${n}`));
      await target.prepareTopics?.(unique);
      return unique;
    }

    it('declares the capabilities the adapter claims', { timeout }, async () => {
      const bus = await openBus();
      expect(bus.transport.capabilities).toEqual(caps);
      expect(caps.deliveryGuarantees).toContain(caps.defaultGuarantee);
    });

    it('delivers payload, key, headers, id and timestamp intact', { timeout }, async () => {
      const bus = await openBus();
      const [topic, rawTopic] = await topics('intact', 'intact-raw');
      const received = new Recorder<Message<{ text: string; n: number; nested: { list: number[] } }>>();
      const raw = new Recorder<Message<Uint8Array>>();
      await bus.subscriber.subscribe(topic!, (m) => received.add(m as never), { ...groupOf('g'), startFrom });
      await bus.subscriber.subscribe(rawTopic!, (m) => raw.add(m as never), { ...groupOf('g'), startFrom, codec: bytesCodec });
      const value = { text: '결제 완료 ✓', n: 42, nested: { list: [1, 2, 3] } };
      const headers = { 'trace-id': 'abc-123', 'x-unicode': '한국어' };
      const timestamp = Date.now() - 5000;
      const receipt = await bus.publisher.publish(topic!, { id: 'msg-intact-1', key: 'product-7', headers, value, timestamp });
      const bytes = new Uint8Array([0, 1, 2, 253, 254, 255]);
      await bus.publisher.publish(rawTopic!, { payload: bytes });
      expect(receipt.ids).toEqual(['msg-intact-1']);
      expect(receipt.status).toBe('delivered');
      const [message] = await received.waitFor(1, waitMs, 'messages');
      expect(message!.id).toBe('msg-intact-1');
      expect(message!.key).toBe('product-7');
      expect(message!.value).toEqual(value);
      expect(message!.headers).toMatchObject(headers);
      expect(message!.timestamp).toBe(timestamp);
      expect(message!.attempt).toBe(1);
      expect(message!.source.transport).toBe(bus.transport.kind);
      expect(message!.source.topic).toBe(topic);
      expect(Buffer.from(message!.payload).equals(Buffer.from(jsonCodec.encode(value)))).toBe(true);
      const [rawMessage] = await raw.waitFor(1, waitMs, 'raw messages');
      expect(Buffer.from(rawMessage!.value).equals(Buffer.from(bytes))).toBe(true);
    });

    it('keeps topics isolated', { timeout }, async () => {
      const bus = await openBus();
      const [a, b] = await topics('iso-a', 'iso-b');
      const onA = new Recorder<Message>();
      const onB = new Recorder<Message>();
      await bus.subscriber.subscribe(a!, (m) => onA.add(m), { ...groupOf('g'), startFrom });
      await bus.subscriber.subscribe(b!, (m) => onB.add(m), { ...groupOf('g'), startFrom });
      await bus.publisher.publish(a!, [{ value: 'a1' }, { value: 'a2' }, { value: 'a3' }]);
      await bus.publisher.publish(b!, [{ value: 'b1' }, { value: 'b2' }]);
      await onA.waitFor(3, waitMs);
      await onB.waitFor(2, waitMs);
      expect(onA.items.map((m) => m.value).sort()).toEqual(['a1', 'a2', 'a3']);
      expect(onB.items.map((m) => m.value).sort()).toEqual(['b1', 'b2']);
      expect(onA.items.every((m) => m.source.topic === a)).toBe(true);
    });

    it('receives everything from many concurrent publishers', { timeout }, async () => {
      const bus = await openBus();
      const second = await openBus();
      const [topic] = await topics('many-pub');
      const received = new Recorder<Message>();
      await bus.subscriber.subscribe(topic!, (m) => received.add(m), { ...groupOf('g'), startFrom, concurrency: 4 });
      const publishers = 10;
      const perPublisher = 20;
      const sent: string[] = [];
      await Promise.all(
        Array.from({ length: publishers }, async (_, p) => {
          const via = p % 2 === 0 ? bus : second;
          for (let i = 0; i < perPublisher; i++) {
            const id = `p${p}-m${i}`;
            sent.push(id);
            await via.publisher.publish(topic!, { id, value: { p, i } });
          }
        }),
      );
      await received.waitFor(publishers * perPublisher, waitMs, 'messages');
      const ids = received.items.map((m) => m.id);
      expect(new Set(ids)).toEqual(new Set(sent));
      expect(ids.length).toBe(sent.length); // no duplicates without a restart
    });

    it('gives every message to each of many concurrent subscribers (one group each)', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('many-sub');
      const recorders = Array.from({ length: 4 }, () => new Recorder<Message>());
      await Promise.all(recorders.map((r, i) => bus.subscriber.subscribe(topic!, (m) => r.add(m), { ...groupOf(`group-${i}`), startFrom })));
      const messages = Array.from({ length: 20 }, (_, i) => ({ id: `m-${i}`, value: i }));
      await bus.publisher.publish(topic!, messages);
      for (const r of recorders) {
        await r.waitFor(20, waitMs);
        expect(new Set(r.items.map((m) => m.id)).size).toBe(20);
      }
    });

    needs(['consumerGroups'], 'consumer groups: members of a group compete, every group gets every message', async () => {
      const bus = await openBus();
      const [topic] = await topics('groups');
      const memberA1 = new Recorder<Message>();
      const memberA2 = new Recorder<Message>();
      const groupB = new Recorder<Message>();
      const union = new Recorder<Message>();
      await bus.subscriber.subscribe(topic!, (m) => (memberA1.add(m), union.add(m)), { group: 'A', startFrom });
      await bus.subscriber.subscribe(topic!, (m) => (memberA2.add(m), union.add(m)), { group: 'A', startFrom });
      await bus.subscriber.subscribe(topic!, (m) => groupB.add(m), { group: 'B', startFrom });
      const total = 40;
      await bus.publisher.publish(
        topic!,
        Array.from({ length: total }, (_, i) => ({ id: `g-${i}`, value: i })),
      );
      await union.waitFor(total, waitMs, 'deliveries to group A');
      await groupB.waitFor(total, waitMs, 'deliveries to group B');
      expect(new Set(union.items.map((m) => m.id)).size).toBe(total);
      expect(union.count).toBe(total); // each message to one member of A
      expect(memberA1.count).toBeGreaterThan(0);
      expect(memberA2.count).toBeGreaterThan(0);
      expect(new Set(groupB.items.map((m) => m.id)).size).toBe(total);
    });

    needs(['perKeyOrder'], 'keeps per-key order with concurrent handlers', async () => {
      const bus = await openBus();
      const [topic] = await topics('order');
      const received = new Recorder<Message<{ key: string; seq: number }>>();
      await bus.subscriber.subscribe<{ key: string; seq: number }>(
        topic!,
        async (m) => {
          if (m.value.seq % 3 === 0) await new Promise((resolve) => setImmediate(resolve));
          received.add(m);
        },
        { ...groupOf('g'), startFrom, concurrency: 4 },
      );
      const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
      const perKey = 30;
      const batch = [];
      for (let seq = 0; seq < perKey; seq++) for (const key of keys) batch.push({ key, value: { key, seq } });
      for (let i = 0; i < batch.length; i += 25) await bus.publisher.publish(topic!, batch.slice(i, i + 25));
      await received.waitFor(keys.length * perKey, waitMs);
      for (const key of keys) {
        const seqs = received.items.filter((m) => m.value.key === key).map((m) => m.value.seq);
        expect(seqs).toEqual(Array.from({ length: perKey }, (_, i) => i));
      }
    });

    /**
     * 12 keys, concurrency 4; the first message of key "slow" fails once and backs off 2 s. Returns
     * the handling log: which message, which attempt, and the most handlers seen running at once.
     */
    async function orderingRun(ordering: 'key' | 'none'): Promise<{ log: { id: string; key: string; attempt: number }[]; maxRunning: number }> {
      const bus = await openBus();
      const [topic] = await topics(`ordering-${ordering}`);
      const log: { id: string; key: string; attempt: number }[] = [];
      const done = new Recorder<string>();
      let running = 0;
      let maxRunning = 0;
      await bus.subscriber.subscribe<{ seq: number }>(
        topic!,
        async (m) => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          try {
            await new Promise((resolve) => setTimeout(resolve, 5)); // handlers overlap where allowed
            log.push({ id: m.id, key: m.key!, attempt: m.attempt });
            if (m.id === 'slow-0' && m.attempt === 1) throw new Error('fails once');
            done.add(m.id);
          } finally {
            running--;
          }
        },
        { ...groupOf('g'), ...(startFrom ? { startFrom } : {}), concurrency: 4, ordering, retry: { maxAttempts: 2, initialIntervalMs: 2000, maxIntervalMs: 2000 } },
      );
      const keys = Array.from({ length: 11 }, (_, k) => `key-${k}`);
      const batch = [0, 1, 2].map((seq) => ({ id: `slow-${seq}`, key: 'slow', value: { seq } }));
      for (let seq = 0; seq < 3; seq++) for (const key of keys) batch.push({ id: `${key}-${seq}`, key, value: { seq } });
      await bus.publisher.publish(topic!, batch);
      await done.waitFor(batch.length, waitMs, 'handled messages');
      return { log, maxRunning };
    }

    const needsOrdering = (ordering: 'key' | 'none', title: string, scenario: () => Promise<void>) => {
      if (caps.orderings.includes(ordering)) it(title, { timeout }, scenario);
      else it.skip(`${title} — skipped: transport does not offer ordering "${ordering}"`, scenario);
    };

    needsOrdering('key', 'ordering "key": a retry backing off holds only its key; other keys flow, each key keeps its order', async () => {
      const { log, maxRunning } = await orderingRun('key');
      const retryAt = log.findIndex((e) => e.id === 'slow-0' && e.attempt === 2);
      expect(retryAt).toBeGreaterThan(0);
      // Every other key finished all its messages during the 2 s backoff.
      const otherKeysLate = log.slice(retryAt).filter((e) => e.key !== 'slow');
      expect(otherKeysLate).toEqual([]);
      // The slow key's later messages waited for its retry: per-key order, also across the retry.
      for (const key of new Set(log.map((e) => e.key))) {
        const firstHandlings = log.filter((e) => e.key === key && !(e.id === 'slow-0' && e.attempt === 1)).map((e) => e.id);
        expect(firstHandlings).toEqual([0, 1, 2].map((seq) => `${key}-${seq}`));
      }
      expect(maxRunning).toBeGreaterThan(1);
      expect(maxRunning).toBeLessThanOrEqual(4);
    });

    needsOrdering('none', 'ordering "none": a retry backing off holds nothing, not even later messages of its key', async () => {
      const { log, maxRunning } = await orderingRun('none');
      const retryAt = log.findIndex((e) => e.id === 'slow-0' && e.attempt === 2);
      expect(log.slice(retryAt).map((e) => e.id)).toEqual(['slow-0']);
      expect(maxRunning).toBeLessThanOrEqual(4);
    });

    it('refuses an ordering it does not offer, naming the field', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('ordering-refused');
      for (const ordering of ['partition', 'key', 'none'] as const) {
        if (caps.orderings.includes(ordering)) continue;
        await expect(bus.subscriber.subscribe(topic!, () => {}, { ...groupOf('g'), ordering })).rejects.toThrow(/ordering/);
      }
      await expect(bus.subscriber.subscribe(topic!, () => {}, { ...groupOf('g'), ordering: 'random' as never })).rejects.toThrow(/ordering/);
    });

    needs(['patternSubscriptions'], 'routes pattern subscriptions (`*` one segment)', async () => {
      const bus = await openBus();
      const base = uniqueName('sb-conf-pattern');
      const matching = [`${base}.eu.created`, `${base}.us.created`];
      const other = `${base}.eu.deleted`;
      await target.prepareTopics?.([...matching, other]);
      const received = new Recorder<Message>();
      await bus.subscriber.subscribe(`${base}.*.created`, (m) => received.add(m), { ...groupOf('g'), pattern: true, startFrom });
      // Someone receives the non-matching topic, so its publish is routable (RabbitMQ rejects an unroutable one under "all").
      const elsewhere = new Recorder<Message>();
      await bus.subscriber.subscribe(other, (m) => elsewhere.add(m), { ...groupOf('other-listener'), startFrom });
      await bus.publisher.publish(other, { value: 'deleted' });
      await elsewhere.waitFor(1, waitMs);
      for (const topic of matching) await bus.publisher.publish(topic, { value: topic });
      await received.waitFor(2, waitMs);
      expect(received.items.map((m) => m.value).sort()).toEqual([...matching].sort());
      expect(received.items.every((m) => m.source.topic !== other)).toBe(true);
    });

    it('calls a failing handler exactly maxAttempts times with the configured backoff, then dead-letters it with the standard headers', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('poison');
      const reader = await openDeadLetters(bus, topic!);
      const calls: { at: number; attempt: number }[] = [];
      const retry = { maxAttempts: 3, initialIntervalMs: 200, multiplier: 2, maxIntervalMs: 1000 };
      await bus.subscriber.subscribe(
        topic!,
        (m) => {
          calls.push({ at: performance.now(), attempt: m.attempt });
          throw new Error('inventory service timed out');
        },
        { ...groupOf('g'), startFrom, retry },
      );
      await bus.publisher.publish(topic!, { id: 'poison-1', key: 'product-1', headers: { origin: 'test' }, value: { productId: 1 } });
      const [letter] = await reader.letters.waitFor(1, waitMs, 'dead letters');
      expect(calls.map((c) => c.attempt)).toEqual([1, 2, 3]);
      expect(calls[1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(200 - 15);
      expect(calls[2]!.at - calls[1]!.at).toBeGreaterThanOrEqual(400 - 15);
      expect(letter!.id).toBe('poison-1');
      expect(letter!.key).toBe('product-1');
      expect(JSON.parse(text(letter!))).toEqual({ productId: 1 });
      const h = letter!.headers;
      expect(h.origin).toBe('test');
      expect(h[DeadLetterHeaders.originalTopic]).toBe(topic);
      expect(h[DeadLetterHeaders.attempts]).toBe('3');
      expect(h[DeadLetterHeaders.reason]).toBe('retries-exhausted');
      expect(h[DeadLetterHeaders.retryable]).toBe('true');
      expect(h[DeadLetterHeaders.errorName]).toBe('Error');
      expect(h[DeadLetterHeaders.errorMessage]).toBe('inventory service timed out');
      expect(h[DeadLetterHeaders.errorStack]).toContain('inventory service timed out');
      expect(JSON.parse(h[DeadLetterHeaders.source]!)).toMatchObject({ transport: bus.transport.kind, topic });
      const first = Date.parse(h[DeadLetterHeaders.firstFailureAt]!);
      const last = Date.parse(h[DeadLetterHeaders.lastFailureAt]!);
      expect(last - first).toBeGreaterThanOrEqual(600 - 15);
      await bus.counts.waitFor('dead-lettered', 1); // the reader may see the letter before the pipeline reports it
      expect(bus.counts.count('retry-attempt')).toBe(2);
      expect(bus.counts.count('will-retry')).toBe(2);
      expect(bus.counts.count('final-failure')).toBe(1);
      expect(bus.counts.count('dead-lettered')).toBe(1);
      expect(bus.counts.count('success')).toBe(0);
      expect(calls.length).toBe(3);
    });

    it('sends non-retryable errors straight to the DLQ (error type and classifier)', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('non-retryable');
      const reader = await openDeadLetters(bus, topic!);
      const calls = new Recorder<string>();
      await bus.subscriber.subscribe<{ kind: string }>(
        topic!,
        (m) => {
          calls.add(m.id);
          if (m.value.kind === 'typed') throw new NonRetryableError('post 123 does not exist');
          throw Object.assign(new Error('invalid e-mail address'), { code: 'BAD_ADDRESS' });
        },
        { ...groupOf('g'), startFrom, retry: { maxAttempts: 5, initialIntervalMs: 5000 }, classify: (e) => ((e as { code?: string }).code === 'BAD_ADDRESS' ? false : undefined) },
      );
      await bus.publisher.publish(topic!, [
        { id: 'typed', value: { kind: 'typed' } },
        { id: 'classified', value: { kind: 'classified' } },
      ]);
      const letters = await reader.letters.waitFor(2, waitMs, 'dead letters');
      expect(calls.items.sort()).toEqual(['classified', 'typed']);
      const byId = Object.fromEntries(letters.map((l) => [l.id, l.headers]));
      expect(byId.typed![DeadLetterHeaders.reason]).toBe('non-retryable');
      expect(byId.typed![DeadLetterHeaders.errorName]).toBe('NonRetryableError');
      expect(byId.typed![DeadLetterHeaders.attempts]).toBe('1');
      expect(byId.typed![DeadLetterHeaders.retryable]).toBe('false');
      expect(byId.classified![DeadLetterHeaders.reason]).toBe('non-retryable');
      expect(byId.classified![DeadLetterHeaders.attempts]).toBe('1');
      expect(bus.counts.count('retry-attempt')).toBe(0);
    });

    it('sends undecodable and schema-invalid payloads straight to the DLQ with the reason, without calling the handler', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('malformed');
      const reader = await openDeadLetters(bus, topic!);
      const handled = new Recorder<string>();
      const schema = z.object({ orderId: z.string(), quantity: z.number().int().positive() });
      await bus.subscriber.subscribe(topic!, (m) => handled.add(m.id), { ...groupOf('g'), startFrom, schema });
      await bus.publisher.publish(topic!, [
        { id: 'not-json', payload: new TextEncoder().encode('{"orderId": "o-1", quantity: ') },
        { id: 'bad-shape', value: { orderId: 'o-2', quantity: 'three' } },
        { id: 'good', value: { orderId: 'o-3', quantity: 3 } },
      ]);
      const letters = await reader.letters.waitFor(2, waitMs, 'dead letters');
      await handled.waitFor(1, waitMs);
      expect(handled.items).toEqual(['good']);
      const byId = Object.fromEntries(letters.map((l) => [l.id, l.headers]));
      expect(byId['not-json']![DeadLetterHeaders.reason]).toBe('decode-failed');
      expect(byId['not-json']![DeadLetterHeaders.errorName]).toBe('DecodeError');
      expect(byId['bad-shape']![DeadLetterHeaders.reason]).toBe('validation-failed');
      expect(byId['bad-shape']![DeadLetterHeaders.errorMessage]).toContain('quantity');
      expect(bus.counts.count('retry-attempt')).toBe(0);
    });

    it('counts a handler that swallows its error as a success', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('swallow');
      const handled = new Recorder<string>();
      await bus.subscriber.subscribe(
        topic!,
        (m) => {
          try {
            throw new Error('caught inside the handler');
          } catch {
            handled.add(m.id); // e.g. stored for later: the container sees success
          }
        },
        { ...groupOf('g'), startFrom },
      );
      await bus.publisher.publish(topic!, { value: 1 });
      await handled.waitFor(1, waitMs);
      await bus.counts.waitFor('success', 1);
      expect(bus.counts.count('final-failure')).toBe(0);
      expect(bus.counts.count('will-retry')).toBe(0);
    });

    needs(['durableGroups', 'acknowledgements'], 'loses nothing when a consumer is closed mid-stream and restarted', async () => {
      const bus = await openBus();
      const [topic] = await topics('restart');
      const total = 60;
      const seen = new Recorder<string>();
      const first = await bus.subscriber.subscribe(
        topic!,
        async (m) => {
          seen.add(m.id);
        },
        { group: 'restart', startFrom, concurrency: 2 },
      );
      const publishing = bus.publisher.publish(
        topic!,
        Array.from({ length: total }, (_, i) => ({ id: `r-${i}`, value: i })),
      );
      await seen.waitFor(10, waitMs);
      await first.close();
      await publishing;
      await bus.subscriber.subscribe(topic!, async (m) => seen.add(m.id), { group: 'restart', startFrom, concurrency: 2 });
      await seen.waitFor(total, waitMs);
      expect(new Set(seen.items)).toEqual(new Set(Array.from({ length: total }, (_, i) => `r-${i}`)));
      const duplicates = seen.count - total;
      if (!caps.duplicatesOnRestart) expect(duplicates).toBe(0);
    });

    it('is live when subscribe() resolves: 20 times, a new subscription gets all 200 messages published right after', { timeout: timeout * 2 }, async () => {
      const bus = await openBus();
      const [topic] = await topics('live');
      const report: { missing: number; duplicates: number }[] = [];
      for (let repetition = 0; repetition < 20; repetition++) {
        const received = new Recorder<string>();
        // A new group each time (where groups exist), subscribing with the default start position.
        const subscription = await bus.subscriber.subscribe(topic!, (m) => received.add(m.id), groupOf(`live-${repetition}`));
        const ids = Array.from({ length: 200 }, (_, i) => `live-${repetition}-${i}`);
        await bus.publisher.publish(
          topic!,
          ids.map((id) => ({ id, value: id })),
        );
        await waitUntil(() => ids.every((id) => received.items.includes(id)), waitMs, `200 messages of repetition ${repetition}`).catch(() => undefined);
        const distinct = new Set(received.items.filter((id) => id.startsWith(`live-${repetition}-`)));
        report.push({ missing: ids.length - distinct.size, duplicates: received.count - distinct.size });
        await subscription.close();
      }
      console.log(`[measure] ${target.name} live-at-subscribe, per repetition (missing/duplicates): ${report.map((r) => `${r.missing}/${r.duplicates}`).join(' ')}`);
      expect(report.map((r) => r.missing)).toEqual(Array.from({ length: 20 }, () => 0));
    });

    needs(['durableGroups'], 'a group keeps what was published while none of its members was subscribed (joined and left before handling anything)', async () => {
      const bus = await openBus();
      const [topic] = await topics('durable-group');
      const first = await bus.subscriber.subscribe(topic!, () => undefined, { group: 'keeps', startFrom: 'latest' });
      await first.close();
      const ids = Array.from({ length: 20 }, (_, i) => `kept-${i}`);
      await bus.publisher.publish(
        topic!,
        ids.map((id) => ({ id, value: id })),
      );
      const received = new Recorder<string>();
      await bus.subscriber.subscribe(topic!, (m) => received.add(m.id), { group: 'keeps', startFrom: 'latest' });
      await waitUntil(() => ids.every((id) => received.items.includes(id)), waitMs, '20 messages kept for the group');
      expect(new Set(received.items)).toEqual(new Set(ids));
    });

    const publishRaw = (transport: Transport, topic: string, message: RawMessage) =>
      target.publishRaw
        ? target.publishRaw(transport, topic, message)
        : transport.publish(topic, [{ ...message, timestamp: Date.now() }], { guarantee: transport.capabilities.defaultGuarantee }).then(() => undefined);
    const fastRetry = { maxAttempts: 3, initialIntervalMs: 20, multiplier: 1, maxIntervalMs: 20 };

    it('settles every message whatever the handler throws: each hostile value is dead-lettered after maxAttempts calls, the loop stays responsive, later messages flow', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('hostile-throws');
      const reader = await openDeadLetters(bus, topic!);
      const values = hostileThrownValues();
      const calls = new Map<string, number>();
      const good = new Recorder<string>();
      let maxTickGapMs = 0;
      let lastTick = performance.now();
      const ticker = setInterval(() => {
        const now = performance.now();
        maxTickGapMs = Math.max(maxTickGapMs, now - lastTick);
        lastTick = now;
      }, 10);
      cleanups.push(async () => clearInterval(ticker));
      await bus.subscriber.subscribe<{ throws?: number }>(
        topic!,
        (m) => {
          calls.set(m.id, (calls.get(m.id) ?? 0) + 1);
          if (m.value.throws === undefined) return good.add(m.id);
          throw values[m.value.throws]!.value;
        },
        { ...groupOf('g'), startFrom, retry: fastRetry, retryMode: 'in-process' },
      );
      const key = 'one-key'; // one partition / lane: later messages wait behind the hostile ones
      await bus.publisher.publish(
        topic!,
        values.map((_, i) => ({ id: `hostile-${i}`, key, value: { throws: i } })),
      );
      await bus.publisher.publish(
        topic!,
        Array.from({ length: 20 }, (_, i) => ({ id: `after-${i}`, key, value: {} })),
      );
      const letters = await reader.letters.waitFor(values.length, waitMs * 2, 'dead letters of hostile throws');
      await good.waitFor(20, waitMs, 'messages after the hostile ones');
      expect(new Set(letters.map((l) => l.id))).toEqual(new Set(values.map((_, i) => `hostile-${i}`)));
      for (const [i] of values.entries()) expect(calls.get(`hostile-${i}`), values[i]!.name).toBe(3);
      for (const letter of letters) {
        expect(letter.headers[DeadLetterHeaders.reason]).toBe('retries-exhausted');
        expect(letter.headers[DeadLetterHeaders.errorMessage]!.length).toBeLessThanOrEqual(4096);
      }
      expect(maxTickGapMs).toBeLessThan(1000);
    });

    it('takes no control value from forged headers: no extra handler calls, dead letters name the real origin', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('forged');
      const reader = await openDeadLetters(bus, topic!);
      const forged = forgedControlHeaders();
      const calls = new Map<string, number>();
      await bus.subscriber.subscribe(
        topic!,
        (m) => {
          calls.set(m.id, (calls.get(m.id) ?? 0) + 1);
          throw new Error('always fails');
        },
        { ...groupOf('g'), startFrom, retry: fastRetry },
      );
      for (const [i, { headers }] of forged.entries()) {
        await publishRaw(bus.transport, topic!, { id: `forged-${i}`, key: `k${i}`, headers, body: new TextEncoder().encode('{"n":1}') });
      }
      const letters = await reader.letters.waitFor(forged.length, waitMs * 2, 'dead letters of forged messages');
      for (const [i, { name }] of forged.entries()) {
        const letter = letters.find((l) => l.id === `forged-${i}`);
        expect(letter, name).toBeDefined();
        expect(calls.get(`forged-${i}`), `${name}: handler calls`).toBeLessThanOrEqual(3);
        expect(calls.get(`forged-${i}`), `${name}: handler calls`).toBeGreaterThanOrEqual(1);
        const h = letter!.headers;
        expect(Number(h[DeadLetterHeaders.attempts]), `${name}: attempts`).toBe(calls.get(`forged-${i}`));
        expect(h[DeadLetterHeaders.originalTopic], `${name}: origin`).toBe(topic);
        expect(h[DeadLetterHeaders.originalOffset], name).not.toBe('99999');
        expect(h[DeadLetterHeaders.originalPartition], name).not.toBe('7');
        expect(h[DeadLetterHeaders.originalGroup], name).not.toBe('other');
        expect(Number.isNaN(Date.parse(h[DeadLetterHeaders.firstFailureAt]!))).toBe(false);
      }
      // Where control values are read from headers, the forged ones that were ignored are counted.
      if (target.readsControlHeaders) expect(bus.counts.count('untrusted-header')).toBeGreaterThanOrEqual(forged.length - 2);
    });

    it('dead-letters a message whose headers leave no room for the dead-letter headers (64.5 KB header)', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('huge-header');
      const reader = await openDeadLetters(bus, topic!);
      const calls = new Recorder<number>();
      await bus.subscriber.subscribe(
        topic!,
        (m) => {
          calls.add(m.attempt);
          throw new Error('fails');
        },
        { ...groupOf('g'), startFrom, retry: fastRetry },
      );
      await publishRaw(bus.transport, topic!, { id: 'huge', headers: { 'x-big': 'h'.repeat(64_500) }, body: new TextEncoder().encode('1') });
      const [letter] = await reader.letters.waitFor(1, waitMs * 2, 'the dead letter');
      expect(letter!.id).toBe('huge');
      expect(letter!.headers[DeadLetterHeaders.reason]).toBe('retries-exhausted');
      if (caps.maxHeaderBytes !== undefined) expect(letter!.headers[TRUNCATED_HEADERS_HEADER]).toContain('x-big');
      expect(calls.count).toBeLessThanOrEqual(3);
    });

    needs(['maxMessageBytes'], 'a failing message at the size limit is dead-lettered without its body (size and SHA-256 in headers); the message behind it on the same key flows', async () => {
      const limit = caps.maxMessageBytes!;
      const bus = await openBus();
      const [topic] = await topics('size-limit');
      const reader = await openDeadLetters(bus, topic!);
      const handled = new Recorder<string>();
      await bus.subscriber.subscribe(
        topic!,
        (m) => {
          if (m.id === 'big') throw new NonRetryableError('cannot handle it');
          handled.add(m.id);
        },
        { ...groupOf('g'), startFrom, codec: bytesCodec, concurrency: 1 },
      );
      // As large as the source accepts: the dead-letter headers (even a minimal letter's) push it over.
      const body = new Uint8Array(limit - 256).fill(0x61);
      body[0] = 0x7b;
      await bus.publisher.publish(topic!, { id: 'big', key: 'same-key', payload: body });
      await bus.publisher.publish(topic!, { id: 'small', key: 'same-key', payload: new Uint8Array([1]) });
      const [letter] = await reader.letters.waitFor(1, waitMs * 2, 'the dead letter');
      expect(letter!.id).toBe('big');
      expect(letter!.headers[DeadLetterHeaders.reason]).toBe('non-retryable');
      expect(letter!.headers[DeadLetterHeaders.originalTopic]).toBe(topic);
      expect(letter!.body.byteLength).toBe(0);
      expect(letter!.headers[DeadLetterHeaders.bodyDropped]).toMatch(/too large/);
      expect(letter!.headers[DeadLetterHeaders.bodyBytes]).toBe(String(body.byteLength));
      expect(letter!.headers[DeadLetterHeaders.bodySha256]).toBe(createHash('sha256').update(body).digest('hex'));
      await handled.waitFor(1, waitMs, 'the message behind the oversize one');
      expect(handled.items).toEqual(['small']);
      // The full letter and the minimal one were refused once each; nothing loops.
      expect(bus.counts.count('publish-failed', `${topic}-dlq`)).toBe(2);
      expect(bus.counts.count('dead-lettered')).toBe(1);
    });

    it('property: random raw header maps never add handler calls or leave a message unsettled', { timeout: timeout * 2 }, async () => {
      const bus = await openBus();
      const [topic] = await topics('random-headers');
      const reader = await openDeadLetters(bus, topic!);
      const calls = new Map<string, number>();
      const succeeded = new Recorder<string>();
      await bus.subscriber.subscribe<{ fail: boolean }>(
        topic!,
        (m) => {
          calls.set(m.id, (calls.get(m.id) ?? 0) + 1);
          if (m.value.fail) throw new Error('fails');
          succeeded.add(m.id);
        },
        { ...groupOf('g'), startFrom, retry: fastRetry },
      );
      const headerName = fc.oneof(
        fc.constantFrom(
          'x-sb-attempt',
          'x-sb-topic',
          'x-sb-timestamp',
          'x-sb-key',
          'x-sb-sig',
          'x-delivery-count',
          'x-dlq-original-topic',
          'x-dlq-original-group',
          'x-dlq-attempts',
          'traceparent',
          'x-death',
        ),
        fc.string({ minLength: 1, maxLength: 20 }).filter((n) => /^[a-z][a-z0-9-]*$/.test(n)),
      );
      const headerValue = fc.oneof(fc.string({ maxLength: 40 }), fc.integer().map(String), fc.constantFrom('NaN', '1e30', '-1', '99', '', '{}', '[]'));
      const samples = fc.sample(fc.record({ headers: fc.dictionary(headerName, headerValue, { maxKeys: 6 }), fail: fc.boolean() }), { numRuns: 25, seed: 20261123 });
      for (const [i, sample] of samples.entries()) {
        await publishRaw(bus.transport, topic!, { id: `rand-${i}`, headers: sample.headers, body: new TextEncoder().encode(JSON.stringify({ fail: sample.fail })) });
      }
      const failing = samples.filter((s) => s.fail).length;
      await reader.letters.waitFor(failing, waitMs * 2, 'dead letters');
      await succeeded.waitFor(samples.length - failing, waitMs, 'successes');
      for (const [i, sample] of samples.entries()) {
        const n = calls.get(`rand-${i}`) ?? 0;
        expect(n, JSON.stringify(sample)).toBeGreaterThanOrEqual(1);
        expect(n, JSON.stringify(sample)).toBeLessThanOrEqual(sample.fail ? 3 : caps.duplicatesOnRestart ? 2 : 1);
      }
    });

    needs(['patternSubscriptions'], 'a pattern subscription never receives its own dead letters: they go to the DLQ of the concrete topic', async () => {
      const bus = await openBus();
      const base = uniqueName('sb-conf-patdlq');
      const concrete = `${base}.eu`;
      await target.prepareTopics?.([concrete, `${concrete}-dlq`]);
      const reader = await openDeadLetters(bus, concrete);
      const seen: string[] = [];
      await bus.subscriber.subscribe(
        `${base}.*`,
        (m) => {
          seen.push(m.source.topic);
          throw new NonRetryableError('bad order');
        },
        { ...groupOf('g'), pattern: true, startFrom },
      );
      await bus.publisher.publish(concrete, { id: 'pattern-poison', value: 1 });
      const [letter] = await reader.letters.waitFor(1, waitMs, 'the dead letter in <concrete topic>-dlq');
      expect(letter!.headers[DeadLetterHeaders.originalTopic]).toBe(concrete);
      await bus.counts.waitFor('dead-lettered', 1);
      // Anything delivered after the dead letter was written would show here (a publish on the concrete topic flushes the order).
      await bus.publisher.publish(concrete, { id: 'pattern-marker', value: 2 });
      await waitUntil(() => seen.length >= 2, waitMs, 'the marker');
      expect(seen).toEqual([concrete, concrete]);
    });

    needs(['consumerGroups'], 'a replay reaches only the group that failed the message', async () => {
      const bus = await openBus();
      const [topic] = await topics('replay-group');
      const reader = await openDeadLetters(bus, topic!);
      const handledByA = new Recorder<string>();
      const handledByB = new Recorder<string>();
      let failOnce = true;
      await bus.subscriber.subscribe(
        topic!,
        (m) => {
          if (m.id === 'replayed' && failOnce) {
            failOnce = false;
            throw new NonRetryableError('A cannot yet');
          }
          handledByA.add(m.id);
        },
        { group: 'A', startFrom },
      );
      await bus.subscriber.subscribe(topic!, (m) => handledByB.add(m.id), { group: 'B', startFrom });
      await bus.publisher.publish(topic!, { id: 'replayed', value: 1 });
      const [letter] = await reader.letters.waitFor(1, waitMs, 'the dead letter of group A');
      await handledByB.waitFor(1, waitMs);
      expect(letter!.headers[DeadLetterHeaders.originalGroup]).toBe('A');
      await replayTo(bus.publisher, letter!.headers[DeadLetterHeaders.originalTopic]!, letter!.headers[DeadLetterHeaders.originalGroup], {
        id: letter!.id,
        headers: letter!.headers,
        payload: letter!.body,
      });
      await handledByA.waitFor(1, waitMs, 'the replay in group A');
      await bus.publisher.publish(topic!, { id: 'after-replay', value: 2 });
      await handledByA.waitFor(2, waitMs);
      await handledByB.waitFor(2, waitMs);
      expect(handledByB.items.filter((id) => id === 'replayed')).toHaveLength(1); // B handled it once, never the replay
    });

    it('close lets in-flight handlers finish (and acknowledges them)', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('close');
      const release = gate();
      const started = new Recorder<string>();
      const finished = new Recorder<string>();
      const subscription = await bus.subscriber.subscribe(
        topic!,
        async (m) => {
          started.add(m.id);
          await release.promise;
          finished.add(m.id);
        },
        { ...groupOf('close'), startFrom },
      );
      await bus.publisher.publish(topic!, { id: 'slow', value: 1 });
      await started.waitFor(1, waitMs);
      let closed = false;
      const closing = subscription.close().then(() => (closed = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(closed).toBe(false); // still waiting for the handler
      release.open();
      await closing;
      expect(finished.items).toEqual(['slow']);
      await bus.counts.waitFor('success', 1);
      if (caps.durableGroups && caps.acknowledgements) {
        // It was acknowledged: a new member of the group gets the next message, not 'slow' again.
        const again = new Recorder<string>();
        await bus.subscriber.subscribe(topic!, (m) => again.add(m.id), { ...groupOf('close'), startFrom });
        await bus.publisher.publish(topic!, { id: 'next', value: 2 });
        await again.waitFor(1, waitMs);
        expect(again.items).toEqual(['next']);
      }
    });

    it("propagates the W3C trace context: the consumer span joins the publisher's trace, dead letters keep it", { timeout }, async () => {
      const { exporter, tracer } = testTracing();
      const bus = await openBus();
      const [topic] = await topics('trace');
      const reader = await openDeadLetters(bus, topic!);
      const got = new Recorder<Message<{ poison: boolean }>>();
      await bus.subscriber.subscribe<{ poison: boolean }>(
        topic!,
        (m) => {
          got.add(m);
          if (m.value.poison) throw new NonRetryableError('bad');
        },
        { ...groupOf('g'), startFrom },
      );
      let traceId = '';
      await tracer.startActiveSpan('checkout', async (span) => {
        traceId = span.spanContext().traceId;
        await bus.publisher.publish(topic!, [
          { id: 'traced', value: { poison: false } },
          { id: 'traced-poison', value: { poison: true } },
        ]);
        span.end();
      });
      await got.waitFor(2, waitMs);
      expect(got.items.every((m) => m.headers.traceparent?.split('-')[1] === traceId)).toBe(true);
      const [letter] = await reader.letters.waitFor(1, waitMs, 'dead letters');
      expect(letter!.headers.traceparent?.split('-')[1]).toBe(traceId); // the DLQ stays in the original trace
      await waitUntil(() => exporter.getFinishedSpans().some((s) => s.name === `process ${topic}` && s.spanContext().traceId === traceId), waitMs, 'the consumer span');
      const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
      const publishSpan = spans.find((s) => s.name === `publish ${topic}`)!;
      const consumerSpan = spans.find((s) => s.name === `process ${topic}` && s.attributes['messaging.message.id'] === 'traced')!;
      expect(consumerSpan.parentSpanContext?.spanId).toBe(publishSpan.spanContext().spanId);
      // Messaging semantic conventions: operation, destination, group, partition, server.
      const traced = got.items.find((m) => m.id === 'traced')!;
      expect(publishSpan.attributes).toMatchObject({ 'messaging.system': bus.transport.kind, 'messaging.operation.type': 'send', 'messaging.destination.name': topic });
      expect(consumerSpan.attributes).toMatchObject({ 'messaging.system': bus.transport.kind, 'messaging.operation.type': 'process', 'messaging.destination.name': topic, 'switchboard.attempt': 1 });
      if (traced.source.group) expect(consumerSpan.attributes['messaging.consumer.group.name']).toBe(traced.source.group);
      if (traced.source.partition !== undefined) expect(consumerSpan.attributes['messaging.destination.partition.id']).toBe(String(traced.source.partition));
      if (bus.transport.connections) expect(consumerSpan.attributes['server.address']).toEqual(expect.any(String));
      // A failed attempt's span is an error, with the exception recorded.
      await waitUntil(() => exporter.getFinishedSpans().some((s) => s.attributes['messaging.message.id'] === 'traced-poison'), waitMs, 'the failed attempt span');
      const failedSpan = exporter.getFinishedSpans().find((s) => s.attributes['messaging.message.id'] === 'traced-poison')!;
      expect(failedSpan.status.code).toBe(2); // SpanStatusCode.ERROR
      expect(failedSpan.events.some((e) => e.name === 'exception')).toBe(true);
    });

    it('drain finishes in-flight work, including a message backing off, before resolving', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('drain');
      const attempts = new Recorder<number>();
      const subscription = await bus.subscriber.subscribe(
        topic!,
        (m) => {
          attempts.add(m.attempt);
          if (m.attempt === 1) throw new Error('transient');
        },
        // in-process: a retry held by a broker (RabbitMQ retry queues) stays there, by contract
        { ...groupOf('drain'), startFrom, retry: { maxAttempts: 2, initialIntervalMs: 300 }, retryMode: 'in-process' },
      );
      await bus.publisher.publish(topic!, { id: 'backing-off', value: 1 });
      await attempts.waitFor(1, waitMs);
      await bus.counts.waitFor('will-retry', 1);
      await subscription.drain();
      expect(attempts.items).toEqual([1, 2]);
      expect(bus.counts.count('success')).toBe(1);
    });
  });
}
