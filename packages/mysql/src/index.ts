/**
 * @switchboard/mysql — Switchboard on MySQL and MariaDB (mysql2):
 * - {@link MySqlOutbox}: the transactional outbox (messages written in the application's transaction,
 *   published by `OutboxRelay`s sharing the work through shard leases taken with `SKIP LOCKED`) and
 *   the inbox (consume, effect and publish in one transaction, once per message id).
 * Its tables are created by the shipped migrations (`migrations/*.sql`) when opened.
 */
export * from './outbox.js';
