/**
 * @switchboard/postgres — PostgreSQL stores for Switchboard (pg):
 * - {@link PostgresFallbackStore}: where publishes wait while the broker is down (`withFallback`, relay);
 * - {@link PostgresParkingLot}: dead letters the DLQ consumer could not handle, for manual reprocessing.
 * - {@link PostgresDeduplicator}: message ids already handled (idempotent consumers, exactly-once side effects in one transaction).
 * - {@link PostgresOutbox}: the transactional outbox (messages written in the application's transaction,
 *   published by {@link OutboxRelay}s sharing the work) and the inbox (consume, effect and publish in one transaction).
 * - {@link PostgresQueueTransport} (`transport.kind: postgres`): PostgreSQL as a durable queue — groups,
 *   competing members (`FOR UPDATE SKIP LOCKED` + leases), per-key order, retries due later in the
 *   table, LISTEN/NOTIFY wake-ups — and {@link createTransactionalPublisher} to publish in the
 *   application's own transaction.
 * Their tables are created by the shipped migrations (`migrations/*.sql`) when opened.
 */
export * from './fallback-store.js';
export * from './connect.js';
export * from './dedup.js';
export * from './outbox.js';
export * from './queue/index.js';
import { postgresTransport } from './queue/index.js';

/** The queue transport's factory under the name tools look for (`switchboard --transport-module`). */
export const transportFactory = postgresTransport;
export * from './console-store.js';
