import { expect, it } from 'vitest';
import { z } from 'zod';
import { DeadLetterHeaders } from '../../pipeline/dead-letter.js';
import { NonRetryableError } from '../../ports/errors.js';
import { Recorder, waitUntil } from '../recorder.js';
import { text, type ConformanceContext } from './context.js';

/** Failures: retries with backoff, non-retryable errors, undecodable and invalid payloads, swallowed errors, nothing lost over restarts, live at subscribe, durable groups. */
export function failuresScenarios(context: ConformanceContext): void {
  const { target, caps, waitMs, timeout, needs, groupOf, startFrom, openBus, openDeadLetters, topics } = context;
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

  it(caps.transactions
    ? 'transactional: a failed attempt publishes nothing a subscriber sees; the retry publishes once, committed with the input'
    : 'transactional: refused at subscribe, naming the option (capability transactions not declared)', { timeout }, async () => {
    const bus = await openBus();
    const [input, output] = await topics('tx-in', 'tx-out');
    if (!caps.transactions) {
      await expect(bus.subscriber.subscribe(input!, () => undefined, { ...groupOf('tx'), transactional: true })).rejects.toThrowError(/transactional: transport ".*" has no transactions/);
      return;
    }
    const outputs = new Recorder<string>();
    await bus.subscriber.subscribe(output!, (m) => outputs.add(m.id), { ...groupOf('readers'), startFrom });
    let failed = false;
    await bus.subscriber.subscribe(
      input!,
      async (m) => {
        await bus.publisher.publish(output!, { id: `${m.id}-out`, key: 'one-key', value: 1 });
        if (!failed) {
          failed = true;
          throw new Error('failed after publishing');
        }
      },
      // One message at a time per partition, whatever ordering the suite runs with by default.
      { ...groupOf('tx'), startFrom, transactional: true, ordering: 'partition', retry: { maxAttempts: 3, initialIntervalMs: 50 } },
    );
    // Same key, so the same partition and order: had the aborted output been visible, it would come before these.
    await bus.publisher.publish(input!, { id: 'tx-1', key: 'one-key', value: 1 });
    await outputs.waitFor(1, waitMs);
    await bus.publisher.publish(input!, { id: 'tx-2', key: 'one-key', value: 2 });
    await outputs.waitFor(2, waitMs);
    expect(outputs.items).toEqual(['tx-1-out', 'tx-2-out']);
    expect(failed).toBe(true);
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
}
