/**
 * Messages node-postgres gives a query or a connection the server did not answer in time (pg's
 * `query_timeout`; pg-pool's `connectionTimeoutMillis` on a checkout and on a new connection).
 */
const NO_ANSWER = new Set(['Query read timeout', 'timeout exceeded when trying to connect', 'Connection terminated due to connection timeout']);

/**
 * Whether the server stopped answering: set when a query ran out of `queryTimeoutMs` (or a
 * connection out of `connectTimeoutMs`), cleared by the next answered query. An error the server
 * answered with, or a refused or dropped connection, leaves it as it was: those fail at once.
 *
 * Closing reads it: while it is set, no more writes are sent on the way out (each would wait as
 * long again) and the sockets are destroyed, so `close()` over a partition takes one bound in all.
 * What those writes would have settled (acknowledgements, hand-backs) comes again once its lease
 * ends: at least once, as after a crash.
 */
export class ServerSilence {
  private silent = false;

  get noticed(): boolean {
    return this.silent;
  }

  answered(): void {
    this.silent = false;
  }

  failed(error: unknown): void {
    if (error instanceof Error && NO_ANSWER.has(error.message)) this.silent = true;
  }
}
