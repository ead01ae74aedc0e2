import pg from 'pg';
import { PostgresFallbackStore } from './fallback-store.js';
import { PostgresParkingLot } from './parking-lot.js';
import { migratePostgresOutbox, PostgresOutboxStore } from './outbox.js';

/**
 * A parking lot on a pool of its own (tools such as the CLI): connects to `url`, creates the table
 * if missing. `close()` ends the pool.
 */
export async function openPostgresParkingLot(url: string, table?: string): Promise<PostgresParkingLot & { close(): Promise<void> }> {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  try {
    const lot = await PostgresParkingLot.open(pool, table);
    return Object.assign(lot, { close: () => pool.end() });
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}

/** A fallback store on a pool of its own (`switchboard relay --store postgres://...`). `close()` ends the pool. */
export async function openPostgresFallbackStore(url: string, table?: string): Promise<PostgresFallbackStore & { close(): Promise<void> }> {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  try {
    const store = await PostgresFallbackStore.open({ pool, ...(table ? { table } : {}) });
    return Object.assign(store, { close: () => pool.end() });
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}

/** An outbox store on a pool of its own (`switchboard relay --outbox --store postgres://...`), its tables created if missing. `close()` ends the pool. */
export async function openPostgresOutboxStore(url: string, table = 'switchboard_outbox'): Promise<PostgresOutboxStore & { close(): Promise<void> }> {
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  try {
    await migratePostgresOutbox(pool, table);
    const store = new PostgresOutboxStore(pool, table);
    const closeListener = store.close.bind(store);
    return Object.assign(store, {
      close: async () => {
        await closeListener();
        await pool.end();
      },
    });
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}
