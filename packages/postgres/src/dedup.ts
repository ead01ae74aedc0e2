import type { Pool, PoolClient } from 'pg';
import type { DeduplicationStore, Handler, Message } from '@switchboard/core';
import { runMigration } from './migration.js';

/** Creates the deduplication table if missing (the shipped migration `migrations/003_dedup.sql`). */
export async function migratePostgresDeduplication(pool: Pool, table = 'switchboard_dedup'): Promise<void> {
  await runMigration(pool, '003_dedup.sql', table);
}

/**
 * Message-id deduplication in PostgreSQL, two ways:
 * - as a {@link DeduplicationStore} for core's `deduplicate(handler, { store })` (claim, then record
 *   after the handler succeeded);
 * - {@link PostgresDeduplicator.handler}: the handler runs inside a transaction that also records the
 *   id, so side effects written through the given client happen exactly once per id, crashes included
 *   (a crash rolls both back; a duplicate finds the id and is skipped; a concurrent duplicate waits on
 *   the row lock, then is skipped).
 */
export class PostgresDeduplicator implements DeduplicationStore {
  private constructor(
    private readonly pool: Pool,
    private readonly table: string,
  ) {}

  /** Opens the deduplicator, creating its table if missing. */
  static async open(pool: Pool, table = 'switchboard_dedup'): Promise<PostgresDeduplicator> {
    await migratePostgresDeduplication(pool, table);
    return new PostgresDeduplicator(pool, table);
  }

  async claim(key: string, leaseMs: number): Promise<'claimed' | 'done' | 'busy'> {
    const claimed = await this.pool.query(
      `INSERT INTO ${this.table} AS d (key, state, expires_at) VALUES ($1, 'busy', now() + $2 * interval '1 millisecond')
       ON CONFLICT (key) DO UPDATE SET state = 'busy', expires_at = EXCLUDED.expires_at WHERE d.expires_at < now()
       RETURNING key`,
      [key, leaseMs],
    );
    if (claimed.rowCount === 1) return 'claimed';
    const { rows } = await this.pool.query<{ state: 'busy' | 'done' }>(`SELECT state FROM ${this.table} WHERE key = $1`, [key]);
    return rows[0]?.state ?? 'busy';
  }

  async complete(key: string, ttlMs: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.table} (key, state, expires_at) VALUES ($1, 'done', now() + $2 * interval '1 millisecond')
       ON CONFLICT (key) DO UPDATE SET state = 'done', expires_at = EXCLUDED.expires_at`,
      [key, ttlMs],
    );
  }

  async release(key: string): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.table} WHERE key = $1 AND state = 'busy'`, [key]);
  }

  /**
   * A handler that runs `handler(message, client)` in one transaction with the id's record: commit
   * both or neither. A message whose id is recorded (and not expired after `ttlMs`, default 24 h) is
   * acknowledged without calling `handler` (`onDuplicate` is told).
   */
  handler<T>(
    handler: (message: Message<T>, client: PoolClient) => Promise<void>,
    options: { readonly ttlMs?: number; readonly keyOf?: (message: Message<T>) => string; readonly onDuplicate?: (message: Message<T>) => void } = {},
  ): Handler<T> {
    const ttlMs = options.ttlMs ?? 24 * 60 * 60 * 1000;
    const keyOf = options.keyOf ?? ((message: Message<T>) => message.id);
    return async (message) => {
      const client = await this.pool.connect();
      try {
        await client.query('BEGIN');
        const recorded = await client.query(
          `INSERT INTO ${this.table} AS d (key, state, expires_at) VALUES ($1, 'done', now() + $2 * interval '1 millisecond')
           ON CONFLICT (key) DO UPDATE SET state = 'done', expires_at = EXCLUDED.expires_at WHERE d.expires_at < now()
           RETURNING key`,
          [keyOf(message), ttlMs],
        );
        if (recorded.rowCount !== 1) {
          await client.query('ROLLBACK');
          options.onDuplicate?.(message);
          return;
        }
        await handler(message, client);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    };
  }
}
