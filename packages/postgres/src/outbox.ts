import type { ClientBase, Pool, PoolClient } from 'pg';
import {
  encodeOutgoing,
  fnv1a,
  jsonCodec,
  OUTBOX_SHARDS,
  OutboxRelay,
  outboxShardOf,
  type Codec,
  type DeliveryGuarantee,
  type Handler,
  type Message,
  type OutboxRecord,
  type OutboxRelayOptions,
  type OutboxStore,
  type OutgoingMessage,
} from '@switchboard/core';
import { refuseOversizeMessages } from '@switchboard/core/transport';
import { PostgresDeduplicator } from './dedup.js';
import { assertTableName, runMigration } from './migration.js';
import { messageOfRow, type MessageColumns } from './message-row.js';

export interface PostgresOutboxOptions {
  /** A pg Pool (the application's own, usually). */
  readonly pool: Pool;
  /** Outbox table; `<table>_lease` and `<table>_relays` go with it. Default `switchboard_outbox`. */
  readonly table?: string;
  /** The inbox's deduplication table (shared with {@link PostgresDeduplicator}). Default `switchboard_dedup`. */
  readonly inboxTable?: string;
  /** Encodes `value`s (default JSON, as the bus). */
  readonly codec?: Codec;
  /** A message larger than this is refused at write time (it could never be published). Default 1 MiB, Kafka's default limit. */
  readonly maxMessageBytes?: number;
}

/** What an inbox handler may do inside the transaction: change the application's data and write outbox messages. */
export interface OutboxTransaction {
  /** The transaction's client: the handler's own queries go through it. */
  readonly client: PoolClient;
  /** Writes messages to the outbox in this transaction (published after it committed). */
  publish<T>(topic: string, messages: OutgoingMessage<T> | readonly OutgoingMessage<T>[], options?: { readonly guarantee?: DeliveryGuarantee }): Promise<{ ids: string[] }>;
}

/** Creates the outbox tables if missing (`migrations/005_outbox.sql`), under an advisory lock so processes starting together do not race. */
export async function migratePostgresOutbox(pool: Pool, table = 'switchboard_outbox'): Promise<void> {
  await runMigration(pool, '005_outbox.sql', table, { '{last_shard}': String(OUTBOX_SHARDS - 1) });
}

/**
 * The transactional outbox on PostgreSQL. Contracts:
 * - {@link publish} writes through the caller's client, inside its open transaction: the messages exist
 *   exactly when that transaction commits (the relays are woken by NOTIFY at commit);
 * - per key, rows are in commit order: a write takes a transaction-level advisory lock on each of its
 *   keys, so two transactions writing one key are serialised (the second waits for the first's commit
 *   or rollback) and the first's rows come first;
 * - {@link inbox} runs a handler in one transaction with the message id's record and the outbox writes:
 *   consume → effect → publish commit together or not at all, once per id;
 * - {@link relay} publishes the rows (see {@link OutboxRelay}); {@link store} is what it reads.
 */
export class PostgresOutbox {
  readonly store: PostgresOutboxStore;
  private readonly codec: Codec;
  private readonly maxMessageBytes: number;
  private readonly lockSpace: number;

  private constructor(
    options: PostgresOutboxOptions,
    private readonly table: string,
    private readonly deduplicator: PostgresDeduplicator,
  ) {
    this.codec = options.codec ?? jsonCodec;
    this.maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024;
    this.lockSpace = fnv1a(`switchboard-outbox:${table}`) | 0;
    this.store = new PostgresOutboxStore(options.pool, table);
  }

  /** Creates the outbox and inbox tables if missing, then returns the outbox. */
  static async open(options: PostgresOutboxOptions): Promise<PostgresOutbox> {
    const table = options.table ?? 'switchboard_outbox';
    await migratePostgresOutbox(options.pool, table);
    const deduplicator = await PostgresDeduplicator.open(options.pool, options.inboxTable);
    return new PostgresOutbox(options, table, deduplicator);
  }

  /**
   * Writes `messages` for `topic` into the outbox through `client`, in whatever transaction it has open
   * (without one, each statement commits by itself). `guarantee` (default `all`) is what the relay asks
   * of the broker. Resolves with the message ids.
   */
  async publish<T>(client: ClientBase, topic: string, input: OutgoingMessage<T> | readonly OutgoingMessage<T>[], options: { readonly guarantee?: DeliveryGuarantee } = {}): Promise<{ ids: string[] }> {
    const list = (Array.isArray(input) ? input : [input]) as readonly OutgoingMessage<unknown>[];
    if (list.length === 0) return { ids: [] };
    const messages = encodeOutgoing(this.codec, list);
    refuseOversizeMessages(topic, messages, this.maxMessageBytes);
    const keyLocks = [...new Set(messages.filter((m) => m.key !== undefined).map((m) => fnv1a(m.key!) | 0))].sort((a, b) => a - b);
    if (keyLocks.length > 0) {
      await client.query('SELECT count(pg_advisory_xact_lock($1::int, k)) FROM unnest($2::int[]) AS k', [this.lockSpace, keyLocks]);
    }
    await client.query(
      `INSERT INTO ${this.table} (shard, topic, message_id, message_key, headers, payload, message_timestamp, guarantee)
       SELECT s, $2, i, k, h, p, t, $8 FROM unnest($1::smallint[], $3::text[], $4::text[], $5::jsonb[], $6::bytea[], $7::bigint[]) WITH ORDINALITY AS m(s, i, k, h, p, t, n) ORDER BY n`,
      [
        messages.map((m) => outboxShardOf(m)),
        topic,
        messages.map((m) => m.id),
        messages.map((m) => m.key ?? null),
        messages.map((m) => JSON.stringify(m.headers)),
        messages.map((m) => Buffer.from(m.body)),
        messages.map((m) => m.timestamp),
        options.guarantee ?? 'all',
      ],
    );
    await client.query('SELECT pg_notify($1, $2)', [this.table, '']);
    return { ids: messages.map((m) => m.id) };
  }

  /**
   * A handler that runs `handler(message, tx)` in one transaction with the record of the message id
   * (the deduplication table): the handler's own changes (through `tx.client`) and the messages it
   * writes (`tx.publish`) commit together with the id, or not at all. A message whose id is recorded is
   * acknowledged without calling `handler` (`onDuplicate` is told). A handler that throws rolls all of
   * it back, and the pipeline retries or dead-letters the message as for any handler.
   */
  inbox<T>(
    handler: (message: Message<T>, tx: OutboxTransaction) => Promise<void>,
    options: { readonly ttlMs?: number; readonly keyOf?: (message: Message<T>) => string; readonly onDuplicate?: (message: Message<T>) => void } = {},
  ): Handler<T> {
    return this.deduplicator.handler<T>(
      (message, client) =>
        handler(message, {
          client,
          publish: (topic, messages, publishOptions) => this.publish(client, topic, messages, publishOptions),
        }),
      options,
    );
  }

  /** A relay over this outbox (call `start()`; several processes may each run one). */
  relay(options: Omit<OutboxRelayOptions, 'store'>): OutboxRelay {
    return new OutboxRelay({ ...options, store: this.store });
  }

  /** Ends the store's notification listener (the pool is the caller's). */
  async close(): Promise<void> {
    await this.store.close();
  }
}

interface Row extends MessageColumns {
  seq: string;
  topic: string;
  guarantee: DeliveryGuarantee;
}

/** The outbox table as the relays read it: shard leases, rows in seq order, LISTEN for wake-ups. */
export class PostgresOutboxStore implements OutboxStore {
  private listener: { client: PoolClient; waiters: Set<() => void> } | undefined;
  private listening: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly pool: Pool,
    private readonly table: string,
  ) {
    assertTableName(table);
  }

  async claim(owner: string, leaseMs: number): Promise<number[]> {
    const t = this.table;
    await this.pool.query(
      `WITH gone AS (DELETE FROM ${t}_relays WHERE expires_at < now() - interval '1 hour')
       INSERT INTO ${t}_relays (owner, expires_at) VALUES ($1, now() + $2 * interval '1 millisecond')
       ON CONFLICT (owner) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
      [owner, leaseMs],
    );
    const { rows: alive } = await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${t}_relays WHERE expires_at > now()`);
    const share = Math.ceil(OUTBOX_SHARDS / Math.max(1, Number(alive[0]!.n)));
    const { rows: renewed } = await this.pool.query<{ shard: number }>(
      `UPDATE ${t}_lease SET expires_at = now() + $2 * interval '1 millisecond' WHERE owner = $1 AND expires_at > now() RETURNING shard`,
      [owner, leaseMs],
    );
    const held = renewed.map((r) => r.shard).sort((a, b) => a - b);
    if (held.length > share) {
      const extra = held.splice(share);
      await this.pool.query(`UPDATE ${t}_lease SET owner = NULL, expires_at = '-infinity' WHERE owner = $1 AND shard = ANY($2::smallint[])`, [owner, extra]);
    } else if (held.length < share) {
      const { rows: taken } = await this.pool.query<{ shard: number }>(
        `UPDATE ${t}_lease SET owner = $1, expires_at = now() + $2 * interval '1 millisecond'
         WHERE shard IN (SELECT shard FROM ${t}_lease WHERE owner IS NULL OR expires_at <= now() ORDER BY shard LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING shard`,
        [owner, leaseMs, share - held.length],
      );
      held.push(...taken.map((r) => r.shard));
    }
    return held.sort((a, b) => a - b);
  }

  async read(shards: readonly number[], limit: number): Promise<OutboxRecord[]> {
    const { rows } = await this.pool.query<Row>(
      `SELECT seq, topic, message_id, message_key, headers, payload, message_timestamp, guarantee FROM ${this.table} WHERE shard = ANY($1::smallint[]) ORDER BY seq LIMIT $2`,
      [shards, limit],
    );
    return rows.map((row) => ({ seq: row.seq, topic: row.topic, guarantee: row.guarantee, message: messageOfRow(row) }));
  }

  async remove(seqs: readonly string[]): Promise<number> {
    if (seqs.length === 0) return 0;
    const result = await this.pool.query(`DELETE FROM ${this.table} WHERE seq = ANY($1::bigint[])`, [seqs]);
    return result.rowCount ?? 0;
  }

  async release(owner: string): Promise<void> {
    await this.pool.query(`UPDATE ${this.table}_lease SET owner = NULL, expires_at = '-infinity' WHERE owner = $1`, [owner]);
    await this.pool.query(`DELETE FROM ${this.table}_relays WHERE owner = $1`, [owner]);
  }

  async stats(): Promise<{ depth: number; oldestTimestamp?: number }> {
    const { rows } = await this.pool.query<{ n: string; oldest: string | null }>(`SELECT count(*) AS n, min(message_timestamp) AS oldest FROM ${this.table}`);
    const oldest = rows[0]!.oldest;
    return { depth: Number(rows[0]!.n), ...(oldest !== null ? { oldestTimestamp: Number(oldest) } : {}) };
  }

  /** Resolves at the next NOTIFY of a committed write, or after `ms`. The listening connection is opened on first use and again after it broke. */
  async waitForWrites(ms: number): Promise<void> {
    if (this.closed) return;
    try {
      await (this.listening ??= this.listen());
    } catch {
      this.listening = undefined; // no listener: the relay's poll interval bounds the wait
      await new Promise((resolve) => setTimeout(resolve, ms));
      return;
    }
    const listener = this.listener;
    if (!listener) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        listener.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      listener.waiters.add(done);
    });
  }

  private async listen(): Promise<void> {
    const client = await this.pool.connect();
    const listener = { client, waiters: new Set<() => void>() };
    const wakeAll = () => {
      for (const waiter of [...listener.waiters]) waiter();
    };
    client.on('notification', wakeAll);
    client.on('error', () => {
      // The connection broke: the next wait opens another one.
      if (this.listener === listener) this.listener = undefined;
      this.listening = undefined;
      wakeAll();
      client.release(true);
    });
    await client.query(`LISTEN ${this.table}`);
    this.listener = listener;
  }

  async close(): Promise<void> {
    this.closed = true;
    const listener = this.listener;
    this.listener = undefined;
    if (!listener) return;
    for (const waiter of [...listener.waiters]) waiter();
    await listener.client.query(`UNLISTEN ${this.table}`).catch(() => undefined);
    listener.client.release();
  }
}
