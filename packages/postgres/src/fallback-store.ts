import type { Pool } from 'pg';
import type { FallbackRecord, FallbackStore, StoredRecord } from '@switchboard/core';
import { assertTableName, inTransaction, runMigration } from './migration.js';
import { messageOfRow, type MessageColumns } from './message-row.js';

export interface PostgresFallbackStoreOptions {
  /** A pg Pool (the application's own, usually). */
  readonly pool: Pool;
  /** Table name; `<table>_expired` and `<table>_lease` go with it. Default `switchboard_fallback`. */
  readonly table?: string;
}

/** Creates the store's tables if missing (the shipped migration `migrations/001_fallback.sql`). */
export async function migratePostgresFallbackStore(pool: Pool, table = 'switchboard_fallback'): Promise<void> {
  await runMigration(pool, '001_fallback.sql', table);
}

interface Row extends MessageColumns {
  seq: string;
  topic: string;
  guarantee: FallbackRecord['guarantee'];
  via: FallbackRecord['via'];
  first_failure_at: Date;
  attempts: number;
  last_error: string | null;
}

function toRecord(row: Row): StoredRecord {
  return {
    seq: row.seq,
    topic: row.topic,
    message: messageOfRow(row),
    guarantee: row.guarantee,
    via: row.via,
    firstFailureAt: row.first_failure_at.getTime(),
    attempts: row.attempts,
    ...(row.last_error !== null ? { lastError: row.last_error } : {}),
  };
}

/**
 * Fallback store in a PostgreSQL table: the natural choice where the application already has a
 * database. Appends are one INSERT per batch (committed when `append` resolves); the relay lease is a
 * row with an expiry.
 */
export class PostgresFallbackStore implements FallbackStore {
  private readonly table: string;

  constructor(private readonly options: PostgresFallbackStoreOptions) {
    this.table = options.table ?? 'switchboard_fallback';
    assertTableName(this.table);
  }

  /** Runs the migration, then returns the store. */
  static async open(options: PostgresFallbackStoreOptions): Promise<PostgresFallbackStore> {
    await migratePostgresFallbackStore(options.pool, options.table);
    return new PostgresFallbackStore(options);
  }

  async append(records: readonly FallbackRecord[]): Promise<void> {
    for (let start = 0; start < records.length; start += 1000) {
      const chunk = records.slice(start, start + 1000);
      const values: unknown[] = [];
      const rows = chunk.map((r, i) => {
        values.push(
          r.topic,
          r.message.id,
          r.message.key ?? null,
          JSON.stringify(r.message.headers),
          Buffer.from(r.message.body),
          r.message.timestamp,
          r.guarantee,
          r.via,
          new Date(r.firstFailureAt),
          r.attempts,
          r.lastError ?? null,
        );
        const o = i * 11;
        return `($${o + 1}, $${o + 2}, $${o + 3}, $${o + 4}::jsonb, $${o + 5}, $${o + 6}, $${o + 7}, $${o + 8}, $${o + 9}, $${o + 10}, $${o + 11})`;
      });
      await this.options.pool.query(
        `INSERT INTO ${this.table} (topic, message_id, message_key, headers, payload, message_timestamp, guarantee, via, first_failure_at, attempts, last_error) VALUES ${rows.join(', ')}`,
        values,
      );
    }
  }

  async peek(limit: number): Promise<StoredRecord[]> {
    const { rows } = await this.options.pool.query<Row>(`SELECT * FROM ${this.table} ORDER BY seq LIMIT $1`, [limit]);
    return rows.map(toRecord);
  }

  async remove(seqs: readonly string[]): Promise<void> {
    if (seqs.length > 0) await this.options.pool.query(`DELETE FROM ${this.table} WHERE seq = ANY($1::bigint[])`, [seqs]);
  }

  async markAttempt(seqs: readonly string[], error: string): Promise<void> {
    if (seqs.length > 0) await this.options.pool.query(`UPDATE ${this.table} SET attempts = attempts + 1, last_error = $2 WHERE seq = ANY($1::bigint[])`, [seqs, error]);
  }

  async expire(maxAgeMs: number): Promise<number> {
    return inTransaction(this.options.pool, async (client) => {
      const moved = await client.query(
        `WITH moved AS (DELETE FROM ${this.table} WHERE first_failure_at < now() - ($1::double precision * interval '1 millisecond') RETURNING *)
         INSERT INTO ${this.table}_expired SELECT * FROM moved`,
        [maxAgeMs],
      );
      return moved.rowCount ?? 0;
    });
  }

  async expired(limit: number): Promise<StoredRecord[]> {
    const { rows } = await this.options.pool.query<Row>(`SELECT * FROM ${this.table}_expired ORDER BY seq LIMIT $1`, [limit]);
    return rows.map(toRecord);
  }

  async depth(): Promise<number> {
    const { rows } = await this.options.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.table}`);
    return Number(rows[0]!.n);
  }

  async acquireLease(owner: string, ttlMs: number): Promise<boolean> {
    const { rows } = await this.options.pool.query(
      `INSERT INTO ${this.table}_lease (name, owner, expires_at) VALUES ('relay', $1, now() + ($2::double precision * interval '1 millisecond'))
       ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
       WHERE ${this.table}_lease.owner = EXCLUDED.owner OR ${this.table}_lease.expires_at < now()
       RETURNING owner`,
      [owner, ttlMs],
    );
    return rows.length === 1;
  }

  async releaseLease(owner: string): Promise<void> {
    await this.options.pool.query(`DELETE FROM ${this.table}_lease WHERE name = 'relay' AND owner = $1`, [owner]);
  }
}

export { PostgresParkingLot, migratePostgresParkingLot } from './parking-lot.js';
