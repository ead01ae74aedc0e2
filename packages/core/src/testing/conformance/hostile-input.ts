import { createHash } from 'node:crypto';
import { expect, it } from 'vitest';
import { bytesCodec } from '../../ports/codec.js';
import { DeadLetterHeaders, TRUNCATED_HEADERS_HEADER } from '../../pipeline/dead-letter.js';
import { ConfigError, NonRetryableError } from '../../ports/errors.js';
import * as fc from 'fast-check';
import { Recorder, uniqueName, waitUntil } from '../recorder.js';
import { forgedControlHeaders, hostileThrownValues } from '../hostile.js';
import { replayTo } from '../../operations/dead-letter-consumer.js';
import type { ConformanceContext } from './context.js';

/** Hostile input: any thrown value, forged control headers, oversize headers and messages, random header maps, pattern dead letters, replays to one group. */
export function hostileInputScenarios(context: ConformanceContext): void {
  const { onCleanup, target, caps, waitMs, timeout, needs, groupOf, startFrom, openBus, openDeadLetters, topics, publishRaw, fastRetry } = context;
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
    onCleanup(async () => clearInterval(ticker));
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

  it('a topic name the broker cannot hold: its publish and subscribe are refused naming topic, a dead-letter topic of that name at subscribe naming deadLetter; the transport says so (topicProblem) for exactly those names', {
    timeout,
  }, async () => {
    const bus = await openBus();
    const [topic] = await topics('names');
    // Each broker's rule refuses one of these: a space (Kafka, NATS), "/" and "#" (MQTT), a control
    // character (RabbitMQ), a NUL (PostgreSQL). Memory and Redis take any name.
    const odd = `${topic}-odd name/#\u0000`;
    const problem = bus.transport.topicProblem?.(odd);
    const published = await bus.publisher.publish(odd, { value: 1 }).then(
      () => 'published',
      (error: unknown) => error,
    );
    const subscribed = await bus.subscriber
      .subscribe(odd, () => undefined, { ...groupOf('g'), startFrom })
      .then(
        async (subscription) => {
          await subscription.close();
          return 'subscribed';
        },
        (error: unknown) => error,
      );
    const withLetters = await bus.subscriber
      .subscribe(topic!, () => undefined, { ...groupOf('g'), startFrom, deadLetter: odd })
      .then(
        async (subscription) => {
          await subscription.close();
          return 'subscribed';
        },
        (error: unknown) => error,
      );
    if (problem === undefined) {
      expect([published, subscribed, withLetters]).toEqual(['published', 'subscribed', 'subscribed']);
      return;
    }
    expect(published).toBeInstanceOf(ConfigError);
    expect(String(published)).toMatch(/topic: /);
    expect(subscribed).toBeInstanceOf(ConfigError);
    expect(withLetters).toBeInstanceOf(ConfigError);
    expect(String(withLetters)).toMatch(/deadLetter: the dead-letter topic: /);
  });

  it('a publish whose headers the transport cannot carry (one 70 KB header) is refused naming the field with none of its batch sent, or delivered whole; either way the bus goes on publishing', {
    timeout,
  }, async () => {
    const bus = await openBus();
    const [topic] = await topics('header-limit');
    const received = new Recorder<string>();
    await bus.subscriber.subscribe(topic!, (m) => received.add(m.id), { ...groupOf('g'), startFrom, concurrency: 1 });
    const outcome = await bus.publisher
      .publish(topic!, [
        { id: 'before', value: 1 },
        { id: 'big', value: 2, headers: { 'x-big': 'h'.repeat(70_000) } },
      ])
      .then(
        () => 'delivered',
        (error: unknown) => error,
      );
    if (caps.maxHeaderBytes !== undefined) expect(outcome).not.toBe('delivered');
    if (outcome !== 'delivered') {
      expect(outcome).toBeInstanceOf(ConfigError);
      expect(String(outcome)).toMatch(/headers/);
    }
    await bus.publisher.publish(topic!, { id: 'after', value: 3 });
    await waitUntil(() => received.items.includes('after'), waitMs, 'the message published after');
    if (outcome === 'delivered') await waitUntil(() => received.items.includes('before') && received.items.includes('big'), waitMs, 'the batch');
    else expect(received.items).toEqual(['after']); // read in publish order: nothing of the refused batch came before it
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
}
