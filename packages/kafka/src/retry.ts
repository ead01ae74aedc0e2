/**
 * Both drivers' producer retry backoff: 100 ms, doubling, at most 1 s apart. Ten retries span about
 * 7.5 s, long enough for a leader election on a cluster.
 */
export const RETRY_INITIAL_MS = 100;
export const RETRY_MAX_MS = 1000;

/** The delay before retry `attempt` (1-based) of the shared backoff. */
export function retryDelayMs(attempt: number): number {
  return Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** (attempt - 1));
}
