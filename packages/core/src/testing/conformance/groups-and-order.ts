import { expect, it } from 'vitest';
import type { Message } from '../../ports/message.js';
import { Recorder, uniqueName } from '../recorder.js';
import type { ConformanceContext } from './context.js';

/** Groups and order: competing members, per-key order, the orderings, pattern subscriptions. */
export function groupsAndOrderScenarios(context: ConformanceContext): void {
  const { target, caps, waitMs, timeout, needs, groupOf, startFrom, openBus, topics } = context;
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
    // A member may take a whole small burst before the other's first claim or fetch is answered
    // (a queue member that connects lazily, say): that is competing too. So rounds of 40 go out until
    // both members have had some, at most five; a member that never gets any fails.
    const perRound = 40;
    let total = 0;
    for (let round = 0; round < 5 && (memberA1.count === 0 || memberA2.count === 0); round++) {
      await bus.publisher.publish(
        topic!,
        Array.from({ length: perRound }, (_, i) => ({ id: `g-${total + i}`, value: total + i })),
      );
      total += perRound;
      await union.waitFor(total, waitMs, 'deliveries to group A');
      await groupB.waitFor(total, waitMs, 'deliveries to group B');
    }
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
      // The default ordering, unless the suite runs with `none` (which orders nothing by definition).
      { ...groupOf('g'), startFrom, concurrency: 4, ...(target.defaults?.ordering === 'none' ? { ordering: caps.orderings.find((o) => o !== 'none') ?? 'partition' } : {}) },
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
}
