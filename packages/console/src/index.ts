/**
 * @switchboard/console — the DLQ console: every configured transport's dead letters and the parking
 * lot in a browser, grouped by failure fingerprint, with replay (to the failing group, rate-limited,
 * resumable), edit-and-replay, park and discard, each recorded in an audit trail.
 */
export { type ConsoleAuthenticate, type ConsoleAuthOptions, type Principal, SESSION_COOKIE } from './auth.js';
export { type ConsoleLetter, type ConsoleSource, DeadLetterInventory, type FingerprintGroup, PARKING_SOURCE, type QueueView } from './inventory.js';
export { ActionError, type JobRequest, JobRunner } from './jobs.js';
export { type ConsoleOptions, DeadLetterConsole, SECURITY_HEADERS, serveConsole } from './server.js';
