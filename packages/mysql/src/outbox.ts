import { readFile } from 'node:fs/promises';
import type { Connection, Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
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

export interface MySqlOutboxOptions {
  /** A mysql2 promise Pool (the application's own, usually). */
  readonly pool: Pool;
  /** Outbox table; `<table>_lease`, `<table>_relays` and `<table>_keylock` go with it. Default `switchboard_outbox`. */
  readonly table?: string;
  /** The inbox's table of handled ids. Default `switchboard_inbox`. */
  readonly inboxTable?: string;
  /** Encodes `value`s (default JSON, as the bus). */
  readonly codec?: Codec;
  /** A message larger than this is refused at write time (it could never be published). Default 1 MiB, Kafka's default limit. */
  readonly maxMessageBytes?: number;
}

/** What an inbox handler may do inside the transaction: change the application's data and write outbox messages. */
export interface MySqlOutboxTransaction {
  /** The transaction's connection: the handler's own queries go through it. */
  readonly connection: PoolConnection;
  /** Writes messages to the outbox in this transaction (published after it committed). */
  publish<T>(topic: string, messages: OutgoingMessage<T> | readonly OutgoingMessage<T>[], options?: { readonly guarantee?: DeliveryGuarantee }): Promise<{ ids: string[] }>;
}

/** Refuses a table name that is not a plain lower-case SQL identifier (it is spliced into SQL). */
function assertTableName(name: string): void {
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(name)) throw new Error(`invalid table name "${name}": lower-case letters, digits and _ only`);
}

/** Runs a shipped migration (`migrations/<file>`), one statement at a time, with its placeholders replaced. Idempotent. */
async function runMigration(pool: Pool, file: string, replacements: Record<string, string>): Promise<void> {
  let sql = await readFile(new URL(`../migrations/${file}`, import.meta.url), 'utf8');
  for (const [name, value] of Object.entries(replacements)) sql = sql.replaceAll(`{${name}}`, value);
  const statements = sql
    .split(/;\s*$/m)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter((s) => s.length > 0);
  for (const statement of statements) await pool.query(statement);
}

/** Per-key write lock rows: 4,096 (two keys sharing one only wait for each other's commit). */
const KEY_LOCK_SLOTS = 4096;

/** Creates the outbox tables if missing (`migrations/001_outbox.sql`), and the key lock rows. */
export async function migrateMySqlOutbox(pool: Pool, table = 'switchboard_outbox'): Promise<void> {
  assertTableName(table);
  const shards = Array.from({ length: OUTBOX_SHARDS }, (_, i) => `(${i})`).join(', ');
  await runMigration(pool, '001_outbox.sql', { table, shards });
  // One lock row per slot, created once (writers lock existing rows: no insert, no gap lock).
  const [rows] = await pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${table}_keylock`);
  if (Number(rows[0]!.n) < KEY_LOCK_SLOTS) await pool.query(`INSERT IGNORE INTO ${table}_keylock (h) VALUES ?`, [Array.from({ length: KEY_LOCK_SLOTS }, (_, i) => [i])]);
}

/** Creates the inbox table if missing (`migrations/002_inbox.sql`). */
export async function migrateMySqlInbox(pool: Pool, table = 'switchboard_inbox'): Promise<void> {
  assertTableName(table);
  await runMigration(pool, '002_inbox.sql', { table });
}

/**
 * The transactional outbox on MySQL / MariaDB (InnoDB). Contracts:
 * - {@link publish} writes through the caller's connection, inside its open transaction: the messages
 *   exist exactly when that transaction commits;
 * - per key, rows are in commit order: a write locks a row per key (in `<table>_keylock`, 4,096 rows
 *   made by the migration) until its transaction ends, so two transactions writing one key are serialised;
 * - {@link inbox} runs a handler in one transaction with the message id's record and the outbox writes;
 * - {@link relay} publishes the rows (see {@link OutboxRelay}); MySQL has no notifications, so relays
 *   poll (every `pollIntervalMs`, 250 ms by default here).
 */
export class MySqlOutbox {
  readonly store: MySqlOutboxStore;
  private readonly codec: Codec;
  private readonly maxMessageBytes: number;

  private constructor(
    private readonly options: MySqlOutboxOptions,
    private readonly table: string,
    private readonly inboxTable: string,
  ) {
    this.codec = options.codec ?? jsonCodec;
    this.maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024;
    this.store = new MySqlOutboxStore(options.pool, table);
  }

  /** Creates the outbox and inbox tables if missing, then returns the outbox. */
  static async open(options: MySqlOutboxOptions): Promise<MySqlOutbox> {
    const table = options.table ?? 'switchboard_outbox';
    const inboxTable = options.inboxTable ?? 'switchboard_inbox';
    await migrateMySqlOutbox(options.pool, table);
    await migrateMySqlInbox(options.pool, inboxTable);
    return new MySqlOutbox(options, table, inboxTable);
  }

  /**
   * Writes `messages` for `topic` into the outbox through `connection`, in whatever transaction it has
   * open. `guarantee` (default `all`) is what the relay asks of the broker. Resolves with the ids.
   */
  async publish<T>(
    connection: Connection | PoolConnection,
    topic: string,
    input: OutgoingMessage<T> | readonly OutgoingMessage<T>[],
    options: { readonly guarantee?: DeliveryGuarantee } = {},
  ): Promise<{ ids: string[] }> {
    const list = (Array.isArray(input) ? input : [input]) as readonly OutgoingMessage<unknown>[];
    if (list.length === 0) return { ids: [] };
    const messages = encodeOutgoing(this.codec, list);
    refuseOversizeMessages(topic, messages, this.maxMessageBytes);
    const keyLocks = [...new Set(messages.filter((m) => m.key !== undefined).map((m) => fnv1a(m.key!) % KEY_LOCK_SLOTS))].sort((a, b) => a - b);
    // Record locks on existing rows only (the rows are created by the migration): no gap locks, so
    // writers of different keys never deadlock on them; InnoDB locks them in key order.
    if (keyLocks.length > 0) await connection.query(`SELECT h FROM ${this.table}_keylock WHERE h IN (?) ORDER BY h FOR UPDATE`, [keyLocks]);
    const guarantee = options.guarantee ?? 'all';
    await connection.query(`INSERT INTO ${this.table} (shard, topic, message_id, message_key, headers, payload, message_timestamp, guarantee) VALUES ?`, [
      messages.map((m) => [outboxShardOf(m), topic, m.id, m.key ?? null, JSON.stringify(m.headers), Buffer.from(m.body), m.timestamp, guarantee]),
    ]);
    return { ids: messages.map((m) => m.id) };
  }

  /**
   * A handler that runs `handler(message, tx)` in one transaction with the record of the message id: the
   * handler's own changes (through `tx.connection`) and the messages it writes (`tx.publish`) commit
   * together with the id, or not at all. A message whose id is recorded (and not expired after `ttlMs`,
   * default 24 h) is acknowledged without calling `handler` (`onDuplicate` is told); a concurrent
   * duplicate waits on the id's row, then is skipped.
   */
  inbox<T>(
    handler: (message: Message<T>, tx: MySqlOutboxTransaction) => Promise<void>,
    options: { readonly ttlMs?: number; readonly keyOf?: (message: Message<T>) => string; readonly onDuplicate?: (message: Message<T>) => void } = {},
  ): Handler<T> {
    const ttlMs = options.ttlMs ?? 24 * 60 * 60 * 1000;
    const keyOf = options.keyOf ?? ((message: Message<T>) => message.id);
    return async (message) => {
      const connection = await this.options.pool.getConnection();
      try {
        await connection.beginTransaction();
        const key = keyOf(message);
        await connection.query(`DELETE FROM ${this.inboxTable} WHERE message_key = ? AND expires_at < NOW(3)`, [key]);
        const [recorded] = await connection.query<ResultSetHeader>(`INSERT IGNORE INTO ${this.inboxTable} (message_key, expires_at) VALUES (?, NOW(3) + INTERVAL ? MICROSECOND)`, [key, ttlMs * 1000]);
        if (recorded.affectedRows !== 1) {
          await connection.rollback();
          options.onDuplicate?.(message);
          return;
        }
        await handler(message, { connection, publish: (topic, messages, publishOptions) => this.publish(connection, topic, messages, publishOptions) });
        await connection.commit();
      } catch (error) {
        await connection.rollback().catch(() => undefined);
        throw error;
      } finally {
        connection.release();
      }
    };
  }

  /** A relay over this outbox (call `start()`; several processes may each run one). Polls every 250 ms unless told otherwise. */
  relay(options: Omit<OutboxRelayOptions, 'store'>): OutboxRelay {
    return new OutboxRelay({ pollIntervalMs: 250, ...options, store: this.store });
  }
}

interface Row extends RowDataPacket {
  seq: number | string;
  topic: string;
  message_id: string;
  message_key: string | null;
  headers: string | Record<string, string>;
  payload: Buffer;
  message_timestamp: number | string;
  guarantee: DeliveryGuarantee;
}

/** The outbox table as the relays read it: shard leases (taken with SKIP LOCKED), rows in seq order. */
export class MySqlOutboxStore implements OutboxStore {
  constructor(
    private readonly pool: Pool,
    private readonly table: string,
  ) {
    assertTableName(table);
  }

  async claim(owner: string, leaseMs: number): Promise<number[]> {
    const t = this.table;
    const until = 'NOW(3) + INTERVAL ? MICROSECOND';
    await this.pool.query(`DELETE FROM ${t}_relays WHERE expires_at < NOW(3) - INTERVAL 1 HOUR`);
    await this.pool.query(`INSERT INTO ${t}_relays (owner, expires_at) VALUES (?, ${until}) ON DUPLICATE KEY UPDATE expires_at = VALUES(expires_at)`, [owner, leaseMs * 1000]);
    const [alive] = await this.pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${t}_relays WHERE expires_at > NOW(3)`);
    const share = Math.ceil(OUTBOX_SHARDS / Math.max(1, Number(alive[0]!.n)));
    // Renew what this relay still holds (only its owner renews a live lease; others take expired ones).
    await this.pool.query(`UPDATE ${t}_lease SET expires_at = ${until} WHERE owner = ? AND expires_at > NOW(3)`, [leaseMs * 1000, owner]);
    const [mine] = await this.pool.query<RowDataPacket[]>(`SELECT shard FROM ${t}_lease WHERE owner = ? AND expires_at > NOW(3) ORDER BY shard`, [owner]);
    const held = mine.map((r) => Number(r.shard));
    if (held.length > share) {
      const extra = held.splice(share);
      await this.pool.query(`UPDATE ${t}_lease SET owner = NULL, expires_at = '1970-01-02 00:00:00' WHERE owner = ? AND shard IN (?)`, [owner, extra]);
    } else if (held.length < share) {
      const connection = await this.pool.getConnection();
      try {
        await connection.beginTransaction();
        const [free] = await connection.query<RowDataPacket[]>(`SELECT shard FROM ${t}_lease WHERE owner IS NULL OR expires_at <= NOW(3) ORDER BY shard LIMIT ? FOR UPDATE SKIP LOCKED`, [
          share - held.length,
        ]);
        const taken = free.map((r) => Number(r.shard));
        if (taken.length > 0) await connection.query(`UPDATE ${t}_lease SET owner = ?, expires_at = ${until} WHERE shard IN (?)`, [owner, leaseMs * 1000, taken]);
        await connection.commit();
        held.push(...taken);
      } catch (error) {
        await connection.rollback().catch(() => undefined);
        throw error;
      } finally {
        connection.release();
      }
    }
    return held.sort((a, b) => a - b);
  }

  async read(shards: readonly number[], limit: number): Promise<OutboxRecord[]> {
    if (shards.length === 0) return [];
    const [rows] = await this.pool.query<Row[]>(
      `SELECT seq, topic, message_id, message_key, headers, payload, message_timestamp, guarantee FROM ${this.table} WHERE shard IN (?) ORDER BY seq LIMIT ?`,
      [shards, limit],
    );
    return rows.map((row) => ({
      seq: String(row.seq),
      topic: row.topic,
      guarantee: row.guarantee,
      message: {
        id: row.message_id,
        ...(row.message_key !== null ? { key: row.message_key } : {}),
        headers: typeof row.headers === 'string' ? (JSON.parse(row.headers) as Record<string, string>) : row.headers,
        body: row.payload,
        timestamp: Number(row.message_timestamp),
      },
    }));
  }

  async remove(seqs: readonly string[]): Promise<number> {
    if (seqs.length === 0) return 0;
    // One primary-key lookup per row (a join with the list, eq_ref), not `seq IN (…)`: the optimizer
    // turns an IN list of neighbouring values into ranges, and a range scan locks the record after each
    // range — a row of another relay's delete, or one a writer inserted and has not committed — and waits
    // for it (measured: 200-800 ms per delete while writers were busy).
    const list = seqs.map(() => 'SELECT ? AS seq').join(' UNION ALL ');
    const [result] = await this.pool.query<ResultSetHeader>(`DELETE o FROM ${this.table} AS o JOIN (${list}) AS done ON o.seq = done.seq`, seqs.map(Number));
    return result.affectedRows;
  }

  async release(owner: string): Promise<void> {
    await this.pool.query(`UPDATE ${this.table}_lease SET owner = NULL, expires_at = '1970-01-02 00:00:00' WHERE owner = ?`, [owner]);
    await this.pool.query(`DELETE FROM ${this.table}_relays WHERE owner = ?`, [owner]);
  }

  async stats(): Promise<{ depth: number; oldestTimestamp?: number }> {
    const [rows] = await this.pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n, MIN(message_timestamp) AS oldest FROM ${this.table}`);
    const oldest = rows[0]!.oldest as number | string | null;
    return { depth: Number(rows[0]!.n), ...(oldest !== null ? { oldestTimestamp: Number(oldest) } : {}) };
  }
}

/** An outbox store on a pool of its own (`switchboard relay --outbox --store mysql://...`), its tables created if missing. `close()` ends the pool. */
export async function openMySqlOutboxStore(url: string, table = 'switchboard_outbox'): Promise<MySqlOutboxStore & { close(): Promise<void> }> {
  const { createPool } = await import('mysql2/promise');
  const pool = createPool({ uri: url.replace(/^mariadb:/, 'mysql:'), connectionLimit: 3 });
  try {
    await migrateMySqlOutbox(pool, table);
    return Object.assign(new MySqlOutboxStore(pool, table), { close: () => pool.end() });
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}
