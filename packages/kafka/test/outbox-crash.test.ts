import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, recordLines, type Recorder, uniqueName } from '@switchboard/core/testing';
import { KAFKA_BROKERS } from './helpers.js';

/**
 * The outbox and the inbox under SIGKILL, end to end (database → relays → Kafka → inbox consumer):
 * business operations each write an order row and its event in one transaction; two relay processes
 * publish the outbox; a consumer process writes each event's effect through the inbox. Processes are
 * killed at every point that matters, then everything is checked against the database.
 */
const OPERATIONS = Number(process.env.SWITCHBOARD_OUTBOX_OPERATIONS ?? 10_000);
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/switchboard_test';
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

type Child = ChildProcessByStdio<null, Readable, null>;
interface Running {
  child: Child;
  lines: Recorder<string>;
  exited: Promise<number | null>;
  exitCode?: number | null;
}

function start(script: string, args: readonly string[]): Running {
  const child = spawn(process.execPath, [fixture(script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = recordLines(child.stdout, ['READY']);
  const running: Running = { child, lines, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
  void running.exited.then((code) => (running.exitCode = code));
  return running;
}

async function kill(running: Running): Promise<void> {
  running.child.kill('SIGKILL');
  await running.exited;
}

/** The two databases through one small query function (`$n` placeholders are rewritten for MySQL). */
interface Db {
  query<R>(sql: string, params?: unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

async function openDb(kind: 'postgres' | 'mariadb'): Promise<Db> {
  if (kind === 'postgres') {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
    return { query: async (sql, params) => (await pool.query(sql, params)).rows, close: () => pool.end() };
  }
  const url = new URL(MYSQL_URL);
  const server = await mysql.createConnection({ host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) });
  await server.query(`CREATE DATABASE IF NOT EXISTS \`${url.pathname.slice(1)}\``);
  await server.end();
  const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 4 });
  return { query: async (sql, params) => (await pool.query(sql.replace(/\$\d+/g, '?'), params))[0] as never, close: () => pool.end() };
}

const cases = [
  { kind: 'postgres' as const, url: DATABASE_URL },
  { kind: 'mariadb' as const, url: MYSQL_URL },
];

describe.each(cases)('outbox + inbox under SIGKILL on $kind, relayed through Kafka', ({ kind, url }) => {
  let db: Db;
  const suffix = randomUUID().slice(0, 8);
  const tables = { outbox: `sb_ob_${suffix}`, inbox: `sb_ib_${suffix}`, orders: `sb_orders_${suffix}`, effects: `sb_effects_${suffix}` };
  beforeAll(async () => {
    db = await openDb(kind);
    await db.query(`CREATE TABLE ${tables.orders} (op integer PRIMARY KEY)`);
    await db.query(`CREATE TABLE ${tables.effects} (message_id varchar(64) NOT NULL)`); // no unique constraint: a repeated effect would show
  });
  afterAll(async () => {
    const { outbox, inbox, orders, effects } = tables;
    const companions = kind === 'postgres' ? ['_lease', '_relays'] : ['_lease', '_relays', '_keylock'];
    for (const table of [orders, effects, inbox, outbox, ...companions.map((c) => outbox + c)]) await db.query(`DROP TABLE IF EXISTS ${table}`);
    await db.close();
  });

  it(`${OPERATIONS} business operations with the writer, both relays and the consumer killed at each point: 0 lost, 0 phantom, 0 duplicate effects`, async () => {
    const topic = uniqueName('sb-kafka.outbox');
    const group = 'outbox-inbox';
    const common = [kind, url, tables.outbox, tables.inbox];
    const kills: { point: string; atOperation: number }[] = [];
    const consumers: Running[] = [];
    const relays: Running[] = [];
    const writers: { running: Running; from: number }[] = [];
    const committed = () => writers.reduce((n, w) => Math.max(n, w.from + w.running.lines.count), 0);
    const startConsumer = (killAt?: number) => {
      const running = start('outbox-consumer.mjs', [...common, tables.effects, topic, group, KAFKA_BROKERS, ...(killAt !== undefined ? [String(killAt)] : [])]);
      consumers.push(running);
      return running;
    };
    const startRelay = (killAfter?: number) => {
      const running = start('outbox-relay.mjs', [...common, KAFKA_BROKERS, ...(killAfter !== undefined ? [String(killAfter)] : [])]);
      relays.push(running);
      return running;
    };
    const startWriter = async () => {
      const rows = await db.query<{ last: number | null }>(`SELECT max(op) AS last FROM ${tables.orders}`);
      const from = rows[0]?.last === null || rows[0]?.last === undefined ? 0 : Number(rows[0].last) + 1;
      const running = start('outbox-writer.mjs', [...common, tables.orders, topic, String(from), String(OPERATIONS)]);
      writers.push({ running, from });
      return running;
    };
    const at = (fraction: number) => Math.floor(OPERATIONS * fraction);

    try {
      // Point 1: the consumer dies inside its 1500th inbox transaction (effect written, not committed).
      let consumer = startConsumer(1500);
      let consumerDiedInTransaction = false;
      let relayADiedAfterPublish = false;
      // Point 2: relay A dies after its 15th confirmed publish, before deleting those rows.
      let relayA = startRelay(15);
      let relayB = startRelay();
      let writer = await startWriter();
      const deadline = Date.now() + 400_000;
      let stage = 0;
      while (Date.now() < deadline) {
        if (consumer.exitCode !== undefined && !consumerDiedInTransaction) {
          consumerDiedInTransaction = true;
          kills.push({ point: 'consumer: inside an inbox transaction (effect written, not committed)', atOperation: committed() });
          consumer = startConsumer();
        }
        if (relayA.exitCode !== undefined && !relayADiedAfterPublish) {
          relayADiedAfterPublish = true;
          kills.push({ point: 'relay A: after the broker confirmed, before the rows were deleted', atOperation: committed() });
          relayA = startRelay();
        }
        if (stage === 0 && committed() >= at(0.3)) {
          stage++;
          await kill(writer); // most of its time is spent inside a transaction
          kills.push({ point: 'writer: during its business transactions', atOperation: committed() });
          writer = await startWriter();
        }
        if (stage === 1 && committed() >= at(0.45)) {
          stage++;
          await kill(relayB); // holding shard leases: A takes them over once they expire (3 s)
          kills.push({ point: 'relay B: holding its shard leases', atOperation: committed() });
          relayB = startRelay();
        }
        if (stage === 2 && committed() >= at(0.6)) {
          stage++;
          await Promise.all([kill(relayA), kill(relayB)]); // committed rows wait in the outbox, unpublished
          kills.push({ point: 'both relays: rows committed and not yet published', atOperation: committed() });
        }
        if (stage === 3 && committed() >= at(0.7)) {
          stage++;
          relayA = startRelay();
          relayB = startRelay();
        }
        if (stage === 4 && committed() >= at(0.8) && consumerDiedInTransaction) {
          stage++;
          await kill(consumer); // mid-stream: offsets not committed for what it handled last
          kills.push({ point: 'consumer: mid-stream', atOperation: committed() });
          consumer = startConsumer();
        }
        if (stage === 5 && writer.exitCode !== undefined) break;
        await new Promise((resolve) => setTimeout(resolve, 50)); // supervision tick
      }
      expect(writer.exitCode, 'the last writer finished its operations').toBe(0);
      expect(stage).toBe(5);

      const orders = Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${tables.orders}`))[0]!.n);
      const settled = await eventually(
        async () => {
          const [row] = await db.query<{ distinct_ids: string; all_rows: string }>(`SELECT count(DISTINCT message_id) AS distinct_ids, count(*) AS all_rows FROM ${tables.effects}`);
          const [outbox] = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${tables.outbox}`);
          return Number(row!.distinct_ids) >= orders && Number(outbox!.n) === 0 ? row : undefined;
        },
        180_000,
        'an effect for every committed operation and an empty outbox',
      );
      const lost = await db.query<{ op: number }>(`SELECT op FROM ${tables.orders} o WHERE NOT EXISTS (SELECT 1 FROM ${tables.effects} e WHERE e.message_id = CONCAT('op-', o.op))`);
      const phantom = await db.query<{ message_id: string }>(`SELECT message_id FROM ${tables.effects} e WHERE NOT EXISTS (SELECT 1 FROM ${tables.orders} o WHERE CONCAT('op-', o.op) = e.message_id)`);
      const duplicateEffects = Number(settled!.all_rows) - Number(settled!.distinct_ids);
      const wireDuplicates = consumers.reduce((n, c) => n + c.lines.items.filter((l) => l.startsWith('d ')).length, 0);
      const published = relays.reduce((n, r) => n + r.lines.items.reduce((m, l) => m + (l.startsWith('published ') ? Number(l.slice(10)) : 0), 0), 0);
      console.log(
        `[measure] outbox crash table (${kind}, Kafka driver ${process.env.SWITCHBOARD_KAFKA_DRIVER ?? 'kafkajs'}): ${OPERATIONS} operations attempted, ${orders} committed; ` +
          `kills: ${kills.map((k) => `${k.point} @${k.atOperation}`).join('; ')}; ` +
          `events published ${published} (${published - orders} again after a relay crash), duplicates on the wire absorbed by the inbox ${wireDuplicates}; ` +
          `lost ${lost.length}, phantom ${phantom.length}, duplicate effects ${duplicateEffects}`,
      );
      expect(kills).toHaveLength(6);
      expect(orders).toBe(OPERATIONS); // the writer killed mid-transaction: that one rolled back and the next writer did it again
      expect(lost).toEqual([]);
      expect(phantom).toEqual([]);
      expect(duplicateEffects).toBe(0);
      expect(published).toBeGreaterThan(orders); // relay A's kill left published rows that were published again
      expect(wireDuplicates).toBeGreaterThan(0); // ... and the inbox absorbed them
    } finally {
      await Promise.all([...consumers, ...relays, ...writers.map((w) => w.running)].filter((r) => r.exitCode === undefined).map(kill));
    }
  }, 600_000);
});
