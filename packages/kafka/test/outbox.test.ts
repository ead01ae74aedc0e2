import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI_PATH } from '@switchboard/cli/testing';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBus, type Message } from '@switchboard/core';
import { Recorder, recordLines, uniqueName, waitUntil } from '@switchboard/core/testing';
import { KAFKA_BROKERS, TEST_DRIVER, testTransport } from './helpers.js';
// The fixtures' database helper (PostgreSQL or MariaDB behind one interface), used here in process.
import { openOutboxDb } from './fixtures/outbox-db.mjs';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/switchboard_test';
const relayScript = fileURLToPath(new URL('./fixtures/outbox-relay.mjs', import.meta.url));

const cases = [
  { kind: 'postgres' as const, url: DATABASE_URL },
  { kind: 'mariadb' as const, url: MYSQL_URL },
];

interface OutboxDb {
  transaction(work: (tx: { query(sql: string, params?: unknown[]): Promise<unknown>; publish(topic: string, messages: unknown): Promise<unknown> }) => Promise<void>): Promise<void>;
  placeholder(i: number): string;
  outbox: { relay(options: object): { start(): void; stop(): Promise<void>; health(): { status: string; depth: number } } };
  close(): Promise<void>;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

describe.each(cases)('transactional outbox on $kind, published to Kafka', ({ kind, url }) => {
  const suffix = randomUUID().slice(0, 8);
  const tables = { outbox: `sb_ob_${suffix}`, inbox: `sb_ib_${suffix}`, counters: `sb_counters_${suffix}` };
  let db: OutboxDb;
  beforeAll(async () => {
    if (kind === 'mariadb') {
      // The database of MYSQL_URL, created if missing (the store suite does the same).
      const mysql = await import('mysql2/promise');
      const u = new URL(MYSQL_URL);
      const server = await mysql.createConnection({ host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) });
      await server.query(`CREATE DATABASE IF NOT EXISTS \`${u.pathname.slice(1)}\``);
      await server.end();
    }
    db = (await openOutboxDb(kind, url, tables.outbox, tables.inbox)) as OutboxDb;
    await db.transaction(async (tx) => {
      await tx.query(`CREATE TABLE ${tables.counters} (k varchar(64) PRIMARY KEY, n integer NOT NULL)`);
    });
    await db.transaction(async (tx) => {
      for (let k = 0; k < 40; k++) await tx.query(`INSERT INTO ${tables.counters} (k, n) VALUES (${db.placeholder(1)}, 0)`, [`key-${k}`]);
    });
  });
  afterAll(async () => {
    const companions = kind === 'postgres' ? ['_lease', '_relays'] : ['_lease', '_relays', '_keylock'];
    await db.transaction(async (tx) => {
      for (const table of [tables.counters, tables.inbox, tables.outbox, ...companions.map((c) => tables.outbox + c)]) await tx.query(`DROP TABLE IF EXISTS ${table}`);
    });
    await db.close();
  });

  it('two relay processes share one outbox: each key in commit order, no message published twice, nothing of a rolled-back transaction; relay lag measured', async () => {
    const topic = uniqueName('sb-kafka.outbox-order');
    const bus = createBus({ transport: await testTransport({ partitions: 3 }) });
    const received = new Recorder<Message<{ key: string; n: number }>>();
    const lagMs: number[] = [];
    const handledAt = new Map<string, number>();
    const committedAt = new Map<string, number>();
    await bus.subscriber.subscribe<{ key: string; n: number }>(
      topic,
      (m) => {
        lagMs.push(Date.now() - m.timestamp);
        handledAt.set(m.id, Date.now());
        received.add(m);
      },
      { group: 'outbox-order', startFrom: 'earliest', concurrency: 8, ordering: 'key' },
    );
    const relays = [0, 1].map(() => {
      const child = spawn(process.execPath, [relayScript, kind, url, tables.outbox, tables.inbox, KAFKA_BROKERS], { stdio: ['ignore', 'pipe', 'inherit'] });
      return { child, lines: recordLines(child.stdout, ['READY']), exited: new Promise((resolve) => child.on('exit', resolve)) };
    });
    try {
      // Warm-up (relay processes started, producers connected): one message per key, not measured.
      await db.transaction(async (tx) => {
        for (let k = 0; k < 40; k++) await tx.publish(topic, { id: `warm-up-${k}`, key: `key-${k}`, value: { key: `key-${k}`, n: 0 } });
      });
      await received.waitFor(40, 60_000);
      const publishedLines = (r: (typeof relays)[number], from = 0) => r.lines.items.slice(from).reduce((m, l) => m + Number(l.slice('published '.length)), 0);
      await waitUntil(() => relays.reduce((n, r) => n + publishedLines(r), 0) >= 40, 30_000, 'the relays reporting the warm-up');
      received.items.splice(0);
      lagMs.splice(0);
      const warmUp = relays.map((r) => r.lines.count);
      // 8 writers, 300 transactions each of 1-4 messages over 40 keys; each message carries its key's
      // counter, taken in the transaction (the counter row's lock orders a key's transactions as they commit).
      const p = db.placeholder;
      let written = 0;
      let rolledBack = 0;
      const writer = async (w: number) => {
        for (let t = 0; t < 300; t++) {
          const keys = Array.from({ length: 1 + ((w + t) % 4) }, (_, j) => `key-${(w * 7 + t * 3 + j * 11) % 40}`);
          const rollback = t % 50 === 49;
          const idsWritten: string[] = [];
          await db
            .transaction(async (tx) => {
              for (const key of keys) {
                await tx.query(`UPDATE ${tables.counters} SET n = n + 1 WHERE k = ${p(1)}`, [key]);
                const result = (await tx.query(`SELECT n FROM ${tables.counters} WHERE k = ${p(1)}`, [key])) as { rows?: { n: number }[] } | [{ n: number }[]];
                const n = Number(Array.isArray(result) ? result[0][0]!.n : result.rows![0]!.n);
                const id = `${key}#${n}${rollback ? '-rolled-back' : ''}`;
                idsWritten.push(id);
                await tx.publish(topic, { id, key, value: { key, n } });
              }
              if (rollback) throw new Error('rolled back on purpose');
            })
            .then(
              () => {
                const now = Date.now();
                for (const id of idsWritten) committedAt.set(id, now);
                written += keys.length;
              },
              () => rolledBack++,
            );
        }
      };
      await Promise.all(Array.from({ length: 8 }, (_, w) => writer(w)));
      await received.waitFor(written, 120_000);
      const publishedBy = (r: (typeof relays)[number], i: number) => publishedLines(r, warmUp[i]);
      const publishedByRelays = () => relays.reduce((n, r, i) => n + publishedBy(r, i), 0);
      await waitUntil(() => publishedByRelays() >= written, 30_000, 'the relays reporting their publishes');
      const byKey = new Map<string, number[]>();
      for (const m of received.items) {
        let list = byKey.get(m.value.key);
        if (!list) byKey.set(m.value.key, (list = []));
        list.push(m.value.n);
      }
      const outOfOrder = [...byKey].filter(([, ns]) => ns.some((n, i) => n !== i + 1));
      const ids = received.items.map((m) => m.id);
      const perRelay = relays.map(publishedBy);
      lagMs.sort((a, b) => a - b);
      const afterCommit = [...committedAt].map(([id, at]) => (handledAt.get(id) ?? Number.NaN) - at).sort((a, b) => a - b);
      console.log(
        `[measure] outbox on ${kind}: ${written} messages in ${8 * 300 - rolledBack} transactions (${rolledBack} rolled back) by 8 writers, 2 relay processes published ${perRelay.join(' + ')}; ` +
          `write to handled p50 ${percentile(lagMs, 50)} / p99 ${percentile(lagMs, 99)} ms (the writer's own transaction included), commit to handled p50 ${percentile(afterCommit, 50)} / p99 ${percentile(afterCommit, 99)} ms; keys out of order ${outOfOrder.length}, published twice ${ids.length - new Set(ids).size}`,
      );
      expect(outOfOrder).toEqual([]);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.filter((id) => id.endsWith('-rolled-back'))).toEqual([]);
      expect(perRelay[0]! + perRelay[1]!).toBe(written); // nothing published twice under normal operation
      expect(perRelay.every((n) => n > 0)).toBe(true); // the shards were shared
    } finally {
      for (const relay of relays) relay.child.kill('SIGTERM');
      await Promise.all(relays.map((r) => r.exited));
      await bus.close();
    }
  }, 300_000);
  it('`switchboard relay --outbox --once` publishes the outbox from its own process', async () => {
    const topic = uniqueName('sb-kafka.outbox-cli');
    const bus = createBus({ transport: await testTransport({ partitions: 3 }) });
    const received = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => received.add(m.id), { group: 'outbox-cli', startFrom: 'earliest' });
    try {
      await db.transaction(async (tx) => {
        await tx.publish(
          topic,
          Array.from({ length: 300 }, (_, i) => ({ id: `cli-${i}`, key: `k-${i % 7}`, value: i })),
        );
      });
      const { stdout } = await promisify(execFile)(process.execPath, [CLI_PATH, '--json', 'relay', '--outbox', '--store', url, '--name', tables.outbox, '--once'], {
        env: { ...process.env, SWITCHBOARD__TRANSPORT__KIND: 'kafka', SWITCHBOARD__TRANSPORT__BROKERS: KAFKA_BROKERS, SWITCHBOARD__TRANSPORT__DRIVER: TEST_DRIVER },
        timeout: 60_000,
      });
      expect(JSON.parse(stdout)).toMatchObject({ relayed: 300, failed: false, depth: 0 });
      await received.waitFor(300, 60_000);
      expect(new Set(received.items).size).toBe(300);
    } finally {
      await bus.close();
    }
  }, 120_000);
});
