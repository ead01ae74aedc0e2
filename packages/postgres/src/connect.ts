import pg, { type Pool } from 'pg';
import { PostgresConsoleStore } from './console-store.js';
import { PostgresFallbackStore } from './fallback-store.js';
import { PostgresParkingLot } from './parking-lot.js';
import { migratePostgresOutbox, PostgresOutboxStore } from './outbox.js';

/**
 * Opens a store on a pool of its own (tools such as the CLI): `open` runs on a new pool for `url`
 * (its migration included); `close()` closes the store (when it has a close of its own), then ends the
 * pool. A failed open ends the pool too.
 */
async function onOwnPool<S extends object>(url: string, max: number, open: (pool: Pool) => Promise<S>): Promise<S & { close(): Promise<void> }> {
  const pool = new pg.Pool({ connectionString: url, max });
  try {
    const store = await open(pool);
    const closeStore = (store as { close?: () => Promise<void> }).close?.bind(store);
    return Object.assign(store, {
      close: async () => {
        await closeStore?.();
        await pool.end();
      },
    });
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}

/** A parking lot on a pool of its own (tools such as the CLI), its table created if missing. `close()` ends the pool. */
export function openPostgresParkingLot(url: string, table?: string): Promise<PostgresParkingLot & { close(): Promise<void> }> {
  return onOwnPool(url, 2, (pool) => PostgresParkingLot.open(pool, table));
}

/** A fallback store on a pool of its own (`switchboard relay --store postgres://...`). `close()` ends the pool. */
export function openPostgresFallbackStore(url: string, table?: string): Promise<PostgresFallbackStore & { close(): Promise<void> }> {
  return onOwnPool(url, 2, (pool) => PostgresFallbackStore.open({ pool, ...(table ? { table } : {}) }));
}

/** An outbox store on a pool of its own (`switchboard relay --outbox --store postgres://...`), its tables created if missing. `close()` ends the pool. */
export function openPostgresOutboxStore(url: string, table = 'switchboard_outbox'): Promise<PostgresOutboxStore & { close(): Promise<void> }> {
  return onOwnPool(url, 3, async (pool) => {
    await migratePostgresOutbox(pool, table);
    return new PostgresOutboxStore(pool, table);
  });
}

/** The DLQ console's jobs and audit trail on a pool of their own (`switchboard console`), tables created if missing. `close()` ends the pool. */
export function openPostgresConsoleStore(url: string, prefix?: string): Promise<PostgresConsoleStore & { close(): Promise<void> }> {
  return onOwnPool(url, 3, (pool) => PostgresConsoleStore.open(pool, prefix));
}
