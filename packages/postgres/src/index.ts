/**
 * @switchboard/postgres — PostgreSQL stores for Switchboard (pg):
 * - {@link PostgresFallbackStore}: where publishes wait while the broker is down (`withFallback`, relay);
 * - {@link PostgresParkingLot}: dead letters the DLQ consumer could not handle, for manual reprocessing.
 * - {@link PostgresDeduplicator}: message ids already handled (idempotent consumers, exactly-once side effects in one transaction).
 * Their tables are created by the shipped migrations (`migrations/*.sql`) when opened.
 */
export * from './fallback-store.js';
export * from './connect.js';
export * from './dedup.js';
