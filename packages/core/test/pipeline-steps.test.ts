import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  CountingObserver,
  MemoryDeduplicationStore,
  NonRetryableError,
  createBus,
  createMemoryTransport,
  deduplication,
  newMessageId,
  type Bus,
  type BusEvent,
  type Message,
  type Middleware,
} from '@switchboard/core';
import { KeyedScheduler } from '@switchboard/core/transport';
import { Recorder, waitUntil } from '@switchboard/core/testing';

const buses: Bus[] = [];
afterEach(async () => {
  for (const bus of buses.splice(0)) await bus.close();
});

function openBus(options: Omit<Parameters<typeof createBus>[0], 'transport'> = {}): Bus & { counts: CountingObserver } {
  const counts = new CountingObserver();
  const bus = createBus({ transport: createMemoryTransport(), observer: counts, ...options });
  buses.push(bus);
  return Object.assign(bus, { counts });
}

const fastRetry = { maxAttempts: 3, initialIntervalMs: 1, multiplier: 1, maxIntervalMs: 1 };

describe('pipeline steps (use)', () => {
  it('runs the subscriber-wide steps, then the subscription steps, around the handler, with the decoded message', async () => {
    const calls: string[] = [];
    const step =
      (name: string): Middleware =>
      async (message, next) => {
        calls.push(`${name}> ${JSON.stringify(message.value)}`);
        await next();
        calls.push(`<${name}`);
      };
    const bus = openBus({ defaults: { use: [step('bus')] } });
    const done = new Recorder<string>();
    await bus.subscriber.subscribe(
      'steps.order',
      (m: Message<{ n: number }>) => {
        calls.push(`handler ${m.value.n}`);
        done.add(m.id);
      },
      { use: [step('subscription')] },
    );
    await bus.publisher.publish('steps.order', { value: { n: 1 } });
    await done.waitFor(1, 5000);
    await bus.counts.waitFor('success', 1);
    expect(calls).toEqual(['bus> {"n":1}', 'subscription> {"n":1}', 'handler 1', '<subscription', '<bus']);
  });

  it('treats what a step throws as a handler failure: retried when retryable, dead-lettered at once when not', async () => {
    const bus = openBus();
    let retryableCalls = 0;
    const handled = new Recorder<string>();
    await bus.subscriber.subscribe('steps.throws', (m) => handled.add(m.id), {
      retry: fastRetry,
      use: [
        (message, next) => {
          if (message.id === 'flaky') {
            retryableCalls++;
            throw new Error('timeout talking to the rate limiter');
          }
          if (message.id === 'refused') throw new NonRetryableError('refused by policy');
          return next();
        },
      ],
    });
    const letters = new Recorder<Message>();
    await bus.subscriber.subscribe('steps.throws-dlq', (m) => letters.add(m), { group: 'reader' });
    await bus.publisher.publish('steps.throws', [
      { id: 'flaky', value: 1 },
      { id: 'refused', value: 2 },
      { id: 'fine', value: 3 },
    ]);
    await letters.waitFor(2, 5000);
    await handled.waitFor(1, 5000);
    expect(retryableCalls).toBe(3);
    expect(handled.items).toEqual(['fine']);
    expect(letters.items.map((m) => [m.id, m.headers['x-dlq-reason']]).sort()).toEqual([
      ['flaky', 'retries-exhausted'],
      ['refused', 'non-retryable'],
    ]);
  });

  it('a step that does not call next() skips the handler; the delivery counts as handled', async () => {
    const bus = openBus();
    const handled: string[] = [];
    await bus.subscriber.subscribe('steps.skip', (m) => void handled.push(m.id), { use: [(message, next) => (message.id.startsWith('skip') ? undefined : next())] });
    await bus.publisher.publish('steps.skip', [
      { id: 'skip-1', value: 1 },
      { id: 'keep-1', value: 2 },
    ]);
    await bus.counts.waitFor('success', 2);
    expect(handled).toEqual(['keep-1']);
    expect(bus.counts.count('final-failure')).toBe(0);
  });

  it('a step that calls next() twice fails the attempt with that error; the handler runs once per attempt', async () => {
    const bus = openBus();
    const handled: string[] = [];
    const failures: unknown[] = [];
    await bus.subscriber.subscribe('steps.twice', (m) => void handled.push(`${m.id}#${m.attempt}`), {
      onFinalFailure: (failure) => void failures.push(failure.error),
      use: [
        async (_message, next) => {
          await next();
          await next();
        },
      ],
      retry: { maxAttempts: 2, initialIntervalMs: 1 },
      deadLetter: false,
    });
    await bus.publisher.publish('steps.twice', { id: 'm', value: 1 });
    await bus.counts.waitFor('final-failure', 1);
    expect(handled).toEqual(['m#1', 'm#2']);
    expect(String(failures[0])).toMatch(/middleware step 1 called next\(\) twice/);
  });

  it('deduplication as a step: a message id is handled once, whatever number of times it arrives', async () => {
    const store = new MemoryDeduplicationStore();
    const duplicates: string[] = [];
    const bus = openBus({ defaults: { use: [deduplication({ store, onDuplicate: (m) => duplicates.push(m.id) })] } });
    const handled = new Recorder<string>();
    await bus.subscriber.subscribe('steps.dedup', (m) => handled.add(m.id));
    await bus.publisher.publish('steps.dedup', [
      { id: 'a', value: 1 },
      { id: 'a', value: 1 },
      { id: 'b', value: 2 },
      { id: 'a', value: 1 },
    ]);
    await bus.counts.waitFor('success', 4);
    expect(handled.items).toEqual(['a', 'b']);
    expect(duplicates).toEqual(['a', 'a']);
  });

  it('refuses a step that is not a function, naming the field', async () => {
    const bus = openBus();
    const error = await bus.subscriber.subscribe('steps.bad', () => {}, { use: ['audit' as never] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/use\.0.*middleware function/);
  });
});

describe('fast path', () => {
  it('builds no success event when no observer reads it, and still reports failures', async () => {
    const seen: BusEvent['type'][] = [];
    const observer = { wants: (type: BusEvent['type']) => type !== 'success', onEvent: (event: BusEvent) => void seen.push(event.type) };
    const bus = createBus({ transport: createMemoryTransport(), observer });
    buses.push(bus);
    const handled = new Recorder<string>();
    await bus.subscriber.subscribe('fast.events', (m) => {
      if (m.id === 'bad') throw new NonRetryableError('no');
      handled.add(m.id);
    });
    await bus.publisher.publish('fast.events', [
      { id: 'ok-1', value: 1 },
      { id: 'bad', value: 2 },
      { id: 'ok-2', value: 3 },
    ]);
    await handled.waitFor(2, 5000);
    await waitUntil(() => seen.includes('dead-lettered'), 5000, 'the dead letter');
    expect(seen).not.toContain('success');
    expect(seen).toContain('final-failure');
  });

  it('handles synchronous handlers, promise-returning ones and foreign thenables alike, failures included', async () => {
    const bus = openBus();
    const attempts = new Map<string, number>();
    const count = (id: string) => attempts.set(id, (attempts.get(id) ?? 0) + 1);
    await bus.subscriber.subscribe(
      'fast.shapes',
      (m) => {
        count(m.id);
        const first = attempts.get(m.id) === 1;
        if (m.id === 'sync-throws' && first) throw new Error('once');
        if (m.id === 'promise-rejects' && first) return Promise.reject(new Error('once'));
        // biome-ignore lint/suspicious/noThenProperty: a foreign thenable, what a non-native promise library returns
        if (m.id === 'thenable-rejects' && first) return { then: (_: unknown, reject: (e: unknown) => void) => reject(new Error('once')) } as never;
        // biome-ignore lint/suspicious/noThenProperty: as above
        if (m.id === 'thenable') return { then: (resolve: () => void) => resolve() } as never;
        return undefined;
      },
      { retry: fastRetry },
    );
    const ids = ['sync', 'sync-throws', 'promise-rejects', 'thenable', 'thenable-rejects'];
    await bus.publisher.publish(
      'fast.shapes',
      ids.map((id) => ({ id, value: id })),
    );
    await bus.counts.waitFor('success', ids.length);
    expect(Object.fromEntries(attempts)).toEqual({ sync: 1, 'sync-throws': 2, 'promise-rejects': 2, thenable: 1, 'thenable-rejects': 2 });
    expect(bus.counts.count('retry-attempt')).toBe(3);
  });

  it('synchronous handlers run back to back without a promise per message: 200,000 on one lane, in order, none lost, no stack overflow', async () => {
    const bus = openBus();
    const seen: number[] = [];
    let outOfOrder = 0;
    await bus.subscriber.subscribe<number>('fast.sync-run', (m) => {
      if (seen.length > 0 && m.value !== seen[seen.length - 1]! + 1) outOfOrder++;
      seen.push(m.value);
    });
    const total = 200_000;
    for (let i = 0; i < total; i += 10_000) {
      await bus.publisher.publish(
        'fast.sync-run',
        Array.from({ length: 10_000 }, (_, j) => ({ value: i + j })),
      );
    }
    await waitUntil(() => seen.length >= total, 20_000);
    expect(seen.length).toBe(total);
    expect(outOfOrder).toBe(0);
  });

  it('a push made from inside a synchronous runner is started by the loop already running (KeyedScheduler)', () => {
    const started: string[] = [];
    let depth = 0;
    let deepest = 0;
    const scheduler: KeyedScheduler<string> = new KeyedScheduler<string>(1, (item) => {
      depth++;
      deepest = Math.max(deepest, depth);
      started.push(item);
      if (item.startsWith('outer')) scheduler.push(undefined, `inner-of-${item}`);
      depth--;
    });
    for (let i = 0; i < 3; i++) scheduler.push('k', `outer-${i}`);
    // Synchronous runners: each push ran its item and the item's own push before returning, one at a time, never nested.
    expect(started).toEqual(['outer-0', 'inner-of-outer-0', 'outer-1', 'inner-of-outer-1', 'outer-2', 'inner-of-outer-2']);
    expect(deepest).toBe(1);
    expect(scheduler.pending).toBe(0);
    expect(scheduler.inFlight).toBe(0);
  });

  it('reports how long a failed handler call ran (will-retry, final-failure), not for a payload that never reached the handler', async () => {
    const events: BusEvent[] = [];
    const bus = createBus({ transport: createMemoryTransport(), observer: { onEvent: (event) => void events.push(event) } });
    buses.push(bus);
    await bus.subscriber.subscribe(
      'fast.durations',
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 30));
        throw new Error('slow failure');
      },
      { retry: { maxAttempts: 2, initialIntervalMs: 1, multiplier: 1, maxIntervalMs: 1 } },
    );
    await bus.publisher.publish('fast.durations', [
      { id: 'slow', value: 1 },
      { id: 'garbage', payload: new TextEncoder().encode('{not json') },
    ]);
    await waitUntil(() => events.filter((e) => e.type === 'final-failure').length === 2, 5000, 'two final failures');
    const willRetry = events.find((e) => e.type === 'will-retry' && e.messageId === 'slow') as Extract<BusEvent, { type: 'will-retry' }>;
    const slow = events.find((e) => e.type === 'final-failure' && e.messageId === 'slow') as Extract<BusEvent, { type: 'final-failure' }>;
    const garbage = events.find((e) => e.type === 'final-failure' && e.messageId === 'garbage') as Extract<BusEvent, { type: 'final-failure' }>;
    expect(willRetry.durationMs).toBeGreaterThanOrEqual(25);
    expect(slow.durationMs).toBeGreaterThanOrEqual(25);
    expect(garbage.reason).toBe('decode-failed');
    expect(garbage.durationMs).toBeUndefined();
  });

  it('message ids: unique, a fixed 16-character process prefix, a new prefix in a new process', async () => {
    const ids = Array.from({ length: 100_000 }, () => newMessageId());
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(ids.map((id) => id.slice(0, 16))).size).toBe(1);
    // Another process (the built package, as an application loads it) draws its own prefix.
    const { execFileSync } = await import('node:child_process');
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const other = execFileSync(process.execPath, ['--input-type=module', '-e', `import { newMessageId } from '${dist}'; process.stdout.write(newMessageId())`]).toString();
    expect(other).toMatch(/^[A-Za-z0-9_-]{16}0$/);
    expect(other.slice(0, 16)).not.toBe(ids[0]!.slice(0, 16));
  });
});
