import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, type Delivery } from '@switchboard/core';
import { uniqueName } from '@switchboard/core/testing';
import type { TransportSubscription } from '@switchboard/core/transport';
import { createRabbitTransport, type RabbitOptionsInput, type RabbitTransport } from '@switchboard/rabbitmq';
import { RABBITMQ_URL, rabbitmqctl, testTransport } from './helpers.js';

// `prefetch` above the concurrency: the consumer holds the next messages in process. What the broker
// sent, what runs, what is handed back, read from the broker (rabbitmqctl) and from the subscription.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function open(options: RabbitOptionsInput = {}): Promise<RabbitTransport> {
  const transport = await testTransport(options);
  cleanups.push(() => transport.close());
  return transport;
}

/** A handler that holds its first `held` deliveries until `release()`, acks every delivery, and records what it saw. */
function gatedHandler(held = 1) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  cleanups.push(async () => release()); // a failed test does not leave close() waiting for the held delivery
  const seen: { id: string; attempt: number }[] = [];
  let running = 0;
  let mostRunning = 0;
  const listener = async (delivery: Delivery): Promise<void> => {
    running++;
    mostRunning = Math.max(mostRunning, running);
    seen.push({ id: delivery.id, attempt: delivery.attempt });
    if (seen.length <= held) await gate;
    running--;
    await delivery.ack();
  };
  return { listener, release, seen, mostRunning: () => mostRunning };
}

async function publish(transport: RabbitTransport, topic: string, ids: readonly string[]): Promise<void> {
  await transport.publish(
    topic,
    ids.map((id) => ({ id, headers: {}, body: Buffer.from(id), timestamp: Date.now() })),
    { guarantee: 'all' },
  );
}

/** Ready and unacknowledged messages of `queue`, as the broker counts them. */
async function queueCounts(queue: string): Promise<{ ready: number; unacked: number }> {
  const rows = JSON.parse(await rabbitmqctl('list_queues', 'name', 'messages_ready', 'messages_unacknowledged', '--formatter', 'json')) as {
    name: string;
    messages_ready: number;
    messages_unacknowledged: number;
  }[];
  const row = rows.find((r) => r.name === queue);
  return { ready: row?.messages_ready ?? -1, unacked: row?.messages_unacknowledged ?? -1 };
}

const spec = (topic: string, concurrency = 1) => ({ topic, pattern: false, group: 'workers', concurrency, ordering: 'none' as const, startFrom: 'latest' as const });
const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const buffered = (subscription: TransportSubscription) => subscription.status?.().buffered;

/**
 * A concurrency-1 subscription with `options.prefetch` whose handler holds its first delivery, after
 * `count` messages `<prefix>-<i>` were published: returns once the broker filled the window (one
 * running, prefetch - 1 waiting in process).
 */
async function holding(options: RabbitOptionsInput & { prefetch: number }, prefix: string, count: number) {
  const transport = await open(options);
  const topic = uniqueName(`sb-rabbit.${prefix}`);
  const handler = gatedHandler();
  const subscription = await transport.subscribe(spec(topic), handler.listener);
  await publish(transport, topic, ids(prefix, count));
  await vi.waitFor(() => expect(buffered(subscription)).toBe(options.prefetch - 1), { timeout: 10_000, interval: 20 });
  return { transport, topic, handler, subscription };
}

describe('rabbitmq prefetch above the concurrency', () => {
  it('holds up to `prefetch` messages, runs `concurrency` of them at once, in arrival order', async () => {
    // The broker sends 50 (one running, 49 waiting in process) and keeps the other 150.
    const { topic, handler, subscription } = await holding({ prefetch: 50 }, 'm', 200);
    await vi.waitFor(async () => expect(await queueCounts(`${topic}.workers`)).toEqual({ ready: 150, unacked: 50 }), { timeout: 15_000, interval: 250 });
    handler.release();
    await vi.waitFor(() => expect(handler.seen.length).toBe(200), { timeout: 15_000, interval: 20 });
    expect(handler.seen.map((s) => s.id)).toEqual(ids('m', 200));
    expect(handler.mostRunning()).toBe(1);
    expect(buffered(subscription)).toBe(0);
  });

  it('without `prefetch`, the broker sends only what can start (prefetch = concurrency)', async () => {
    const transport = await open();
    const topic = uniqueName('sb-rabbit.prefetch-default');
    const handler = gatedHandler(2);
    const subscription = await transport.subscribe(spec(topic, 2), handler.listener);
    await publish(transport, topic, ids('d', 10));
    await vi.waitFor(async () => expect(await queueCounts(`${topic}.workers`)).toEqual({ ready: 8, unacked: 2 }), { timeout: 15_000, interval: 250 });
    expect(subscription.status?.()).toEqual({ state: 'live' }); // nothing can wait in process: no count
    handler.release();
    await vi.waitFor(() => expect(handler.seen.length).toBe(10), { timeout: 15_000, interval: 20 });
  });

  it('close() hands back what waits, unstarted; another member gets it, marked redelivered (one more attempt)', async () => {
    const { transport, topic, handler: first, subscription } = await holding({ prefetch: 50 }, 'c', 100);
    const closing = subscription.close();
    first.release(); // the running delivery finishes and is acked; the 49 waiting never start
    await closing;
    expect(first.seen.map((s) => s.id)).toEqual(['c-0']);
    expect(subscription.handedBack?.()).toBe(49);

    const second = gatedHandler();
    second.release();
    await transport.subscribe(spec(topic, 10), second.listener);
    await vi.waitFor(() => expect(second.seen.length).toBe(99), { timeout: 15_000, interval: 20 });
    expect(new Set(second.seen.map((s) => s.id))).toEqual(new Set(ids('c', 100).slice(1)));
    const attempts = new Map(second.seen.map((s) => [s.id, s.attempt]));
    for (const id of ids('c', 50).slice(1)) expect(attempts.get(id), id).toBe(2); // held, handed back: redelivered
    for (const id of ids('c', 100).slice(50)) expect(attempts.get(id), id).toBe(1); // never left the queue
  });

  it('drain() handles what it holds, hands nothing back, and leaves the rest in the queue', async () => {
    const { topic, handler, subscription } = await holding({ prefetch: 20 }, 'r', 30);
    const draining = subscription.drain();
    handler.release();
    await draining;
    expect(handler.seen.map((s) => s.id)).toEqual(ids('r', 20));
    expect(subscription.handedBack?.()).toBe(0);
    await vi.waitFor(async () => expect(await queueCounts(`${topic}.workers`)).toEqual({ ready: 10, unacked: 0 }), { timeout: 15_000, interval: 250 });
  });

  it('a lost connection drops what waits (the broker redelivers it): nothing runs on the dead channel', async () => {
    const name = uniqueName('sb-rabbit-prefetch-conn');
    const { handler, subscription } = await holding({ prefetch: 20, connectionName: name }, 'l', 20);
    // The tab-separated listing gives the pid in the form close_connection takes (the JSON one does not).
    const listing = await rabbitmqctl('list_connections', '-q', 'pid', 'client_properties');
    const pid = listing
      .split('\n')
      .find((line) => line.includes(`{"connection_name","${name}"}`))
      ?.split('\t')[0];
    expect(pid, `a connection named ${name}`).toMatch(/^<.+>$/);
    await rabbitmqctl('close_connection', pid!, 'switchboard test: connection killed');
    await vi.waitFor(() => expect(subscription.status?.().state).toBe('interrupted'), { timeout: 10_000, interval: 20 });
    // On the new channel the broker sends all 20 again; l-0 still runs on the old one, so all 20 wait.
    // Had the 19 of the dead channel been kept, 39 would wait here.
    await vi.waitFor(() => expect(subscription.status?.()).toEqual({ state: 'live', buffered: 20 }), { timeout: 20_000, interval: 20 });
    handler.release();
    await vi.waitFor(() => expect(handler.seen.length).toBe(21), { timeout: 15_000, interval: 20 });
    const runs = new Map<string, number>();
    for (const { id } of handler.seen) runs.set(id, (runs.get(id) ?? 0) + 1);
    expect(runs.get('l-0')).toBe(2); // ran on the dead channel (its ack was lost) and again
    for (const id of ids('l', 20).slice(1)) expect(runs.get(id), id).toBe(1);
  });

  it('refuses a prefetch outside 1..65535, naming the field', async () => {
    for (const prefetch of [0, 65_536, 1.5]) {
      const refused = await createRabbitTransport({ url: RABBITMQ_URL, prefetch }).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(ConfigError);
      expect((refused as Error).message).toMatch(/prefetch/);
    }
  });
});
