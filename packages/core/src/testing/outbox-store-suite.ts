import { describe, expect, it } from 'vitest';
import type { DeliveryGuarantee } from '../ports/capabilities.js';
import type { OutgoingMessage } from '../ports/message.js';
import { OUTBOX_SHARDS, OutboxRelay, outboxShardOf, type OutboxStore } from '../resilience/outbox.js';
import { createBus } from '../bus/bus.js';
import { createMemoryTransport, MemoryBroker } from '../transports/memory/memory-transport.js';
import { eventually, Recorder, uniqueName } from './recorder.js';

/** A transaction of the database under test, writing to its outbox. */
export interface OutboxTestTransaction {
  write(topic: string, messages: readonly OutgoingMessage<unknown>[], options?: { readonly guarantee?: DeliveryGuarantee }): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

/** One fresh outbox (its own tables) of the database under test. */
export interface OutboxUnderTest {
  readonly store: OutboxStore;
  begin(): Promise<OutboxTestTransaction>;
  /** Sessions of this database waiting for a lock now (the per-key write lock, here). */
  blockedWriters(): Promise<number>;
  close(): Promise<void>;
}

const ALL_SHARDS = Array.from({ length: OUTBOX_SHARDS }, (_, i) => i);

async function writeCommitted(outbox: OutboxUnderTest, topic: string, messages: readonly OutgoingMessage<unknown>[]): Promise<void> {
  const tx = await outbox.begin();
  await tx.write(topic, messages);
  await tx.commit();
}

/** The contract every outbox store keeps (PostgreSQL, MySQL/MariaDB), run against the real database. */
/** `notifies`: the database wakes relays on commit (PostgreSQL LISTEN/NOTIFY); without it relays poll. */
export function runOutboxStoreSuite(name: string, openOutbox: () => Promise<OutboxUnderTest>, options: { readonly notifies: boolean }): void {
  // Real databases under a loaded CI machine: each test opens fresh tables.
  describe(`outbox store contract: ${name}`, { timeout: 30_000 }, () => {
    it('a committed write is read back whole, in write order; a rolled-back one never appears', async () => {
      const outbox = await openOutbox();
      try {
        const topic = uniqueName('outbox');
        const rolledBack = await outbox.begin();
        await rolledBack.write(topic, [{ id: 'gone', key: 'k', value: 'never' }]);
        await rolledBack.rollback();
        const tx = await outbox.begin();
        await tx.write(topic, [
          { id: 'a', key: 'k', value: { n: 1 }, headers: { 'x-trace': 't1' }, timestamp: 1_700_000_000_123 },
          { id: 'b', value: 'no key' },
        ]);
        await tx.write(topic, [{ id: 'c', key: 'k', payload: Buffer.from([0, 255, 10]) }], { guarantee: 'leader' });
        expect(await outbox.store.read(ALL_SHARDS, 100)).toEqual([]); // not committed yet: invisible
        await tx.commit();
        const rows = await outbox.store.read(ALL_SHARDS, 100);
        expect(rows.map((r) => r.message.id)).toEqual(['a', 'b', 'c']);
        const [a, b, c] = rows;
        expect(a).toMatchObject({ topic, guarantee: 'all', message: { id: 'a', key: 'k', headers: { 'x-trace': 't1' }, timestamp: 1_700_000_000_123 } });
        expect(JSON.parse(Buffer.from(a!.message.body).toString())).toEqual({ n: 1 });
        expect(b!.message.key).toBeUndefined();
        expect(c!.guarantee).toBe('leader');
        expect([...Buffer.from(c!.message.body)]).toEqual([0, 255, 10]);
        // Only the asked shards.
        const shardOfK = outboxShardOf({ id: 'a', key: 'k' });
        expect((await outbox.store.read([shardOfK], 100)).map((r) => r.message.id)).toEqual(['a', 'c']);
        expect(await outbox.store.stats()).toEqual({ depth: 3, oldestTimestamp: 1_700_000_000_123 });
      } finally {
        await outbox.close();
      }
    });

    it('relays share the shards evenly and disjointly; one that leaves hands its shards to the others', async () => {
      const outbox = await openOutbox();
      try {
        const { store } = outbox;
        expect(await store.claim('relay-a', 30_000)).toEqual(ALL_SHARDS); // alone: all of them
        expect(await store.claim('relay-b', 30_000)).toEqual([]); // a taking share is only free shards
        const a = await store.claim('relay-a', 30_000); // a sees two relays alive: lets half go
        expect(a).toHaveLength(OUTBOX_SHARDS / 2);
        const b = await store.claim('relay-b', 30_000);
        expect(b).toHaveLength(OUTBOX_SHARDS / 2);
        expect(new Set([...a, ...b]).size).toBe(OUTBOX_SHARDS);
        await store.release('relay-a');
        expect(await store.claim('relay-b', 30_000)).toEqual(ALL_SHARDS);
      } finally {
        await outbox.close();
      }
    });

    it('an expired lease is taken over and its rows read again (published twice, never lost); a confirmed row is deleted by whoever published it', async () => {
      const outbox = await openOutbox();
      try {
        const { store } = outbox;
        const topic = uniqueName('outbox');
        await writeCommitted(outbox, topic, [{ id: 'x', key: 'k', value: 1 }]);
        expect(await store.claim('slow', 300)).toEqual(ALL_SHARDS);
        const [row] = await store.read(ALL_SHARDS, 10);
        // 'slow' stalls past its lease (300 ms) in the middle of its publish; 'fresh' takes the shards over.
        const taken = await eventually(
          async () => {
            const shards = await store.claim('fresh', 30_000);
            return shards.length === OUTBOX_SHARDS ? shards : undefined;
          },
          10_000,
          'the expired leases taken over',
        );
        expect(taken).toEqual(ALL_SHARDS);
        expect(await store.claim('slow', 300)).toEqual([]); // 'slow' holds nothing any more
        expect((await store.read(taken, 10)).map((r) => r.seq)).toEqual([row!.seq]); // 'fresh' publishes it again
        expect(await store.remove([row!.seq])).toBe(1); // the publish of 'slow' was confirmed: done
        expect(await store.remove([row!.seq])).toBe(0); // that of 'fresh' too: nothing left to delete
        expect(await store.stats()).toEqual({ depth: 0 });
      } finally {
        await outbox.close();
      }
    });

    it("a message no transport can carry (a header that is not a string) is refused at write, naming the field, in the caller's transaction", async () => {
      const outbox = await openOutbox();
      try {
        const tx = await outbox.begin();
        const refused = await tx.write(uniqueName('outbox'), [{ id: 'bad', value: 1, headers: { attempt: 3 as unknown as string } }]).catch((error: unknown) => error);
        await tx.rollback();
        expect(String(refused)).toMatch(/ConfigError.*headers\.attempt: must be a string \(got number\)/s);
        expect(await outbox.store.stats()).toEqual({ depth: 0 });
      } finally {
        await outbox.close();
      }
    });

    it('the relay goes on past a row the transport refuses for what it is (over its size limit): that row stays, health degraded naming it; the rows around it go out', async () => {
      const outbox = await openOutbox();
      const broker = new MemoryBroker();
      const reader = createBus({ transport: createMemoryTransport(broker) });
      const relay = new OutboxRelay({ store: outbox.store, publisher: createMemoryTransport(broker, { maxMessageBytes: 300 }) });
      try {
        const topic = uniqueName('outbox');
        const received = new Recorder<string>();
        await reader.subscriber.subscribe(topic, (m) => received.add(m.id));
        await writeCommitted(outbox, topic, [
          { id: 'before', key: 'k', value: 1 },
          { id: 'too-big', key: 'k', value: 'x'.repeat(1000) },
          { id: 'after', key: 'k', value: 2 },
        ]);
        const pass = await relay.drainOnce();
        expect(pass).toEqual({ relayed: 2, failed: true });
        await received.waitFor(2, 5000);
        expect(received.items).toEqual(['before', 'after']);
        expect((await outbox.store.read(ALL_SHARDS, 10)).map((r) => r.message.id)).toEqual(['too-big']);
        expect(relay.health()).toMatchObject({ depth: 1, lastError: expect.stringMatching(/too-big.*maxMessageBytes/) });
      } finally {
        await relay.stop();
        await reader.close();
        await outbox.close();
      }
    });

    it('per key, rows are in commit order: a second writer of a key waits for the first to commit', async () => {
      const outbox = await openOutbox();
      try {
        const topic = uniqueName('outbox');
        const first = await outbox.begin();
        await first.write(topic, [{ id: 'first', key: 'order-1', value: 1 }]);
        const second = (async () => {
          const tx = await outbox.begin();
          await tx.write(topic, [{ id: 'second', key: 'order-1', value: 2 }]);
          await tx.commit();
        })();
        await eventually(async () => ((await outbox.blockedWriters()) > 0 ? true : undefined), 10_000, 'the second writer waiting on the key');
        // A writer of another key is not held up.
        await writeCommitted(outbox, topic, [{ id: 'other', key: 'order-2', value: 3 }]);
        expect((await outbox.store.read(ALL_SHARDS, 10)).map((r) => r.message.id)).toEqual(['other']);
        await first.commit();
        await second;
        const ids = (await outbox.store.read(ALL_SHARDS, 10)).map((r) => r.message.id);
        expect(ids.filter((id) => id !== 'other')).toEqual(['first', 'second']);
      } finally {
        await outbox.close();
      }
    });

    it.runIf(options.notifies)('waitForWrites ends early when a transaction wrote (skipped where the database cannot notify: relays poll)', async () => {
      const outbox = await openOutbox();
      try {
        if (!outbox.store.waitForWrites) throw new Error(`${name} declares notifications but its store has no waitForWrites`);
        await outbox.store.waitForWrites(10); // opens the listener
        const started = Date.now();
        const woken = outbox.store.waitForWrites(60_000);
        await writeCommitted(outbox, uniqueName('outbox'), [{ id: 'wake', value: 1 }]);
        await woken;
        expect(Date.now() - started).toBeLessThan(30_000);
      } finally {
        await outbox.close();
      }
    });
  });
}
