import { Redis } from 'ioredis';
import { ConnectError, endpointOf, redactUrl } from '@switchboard/core/transport';
import type { RedisStreamsOptions } from './options.js';

/**
 * Opens and waits for a connection. `commands` (publish, acknowledge, claim) fails fast while
 * disconnected (no offline queue), so a publish during an outage rejects instead of hanging; a
 * `reader` (one per subscription, for blocking reads) queues and reconnects forever.
 */
export async function openConnection(options: RedisStreamsOptions, role: 'commands' | 'reader'): Promise<Redis> {
  const commandTimeoutMs = options.commandTimeoutMs + (options.replicas > 0 ? options.replicaTimeoutMs : 0);
  const connection = new Redis(options.url, {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs,
    enableOfflineQueue: role === 'reader',
    maxRetriesPerRequest: role === 'commands' ? 1 : null,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
    // A reply that never comes fails its command, and the silent socket is replaced (see
    // commandTimeoutMs). A reader's XREADGROUP BLOCK gets blockMs more (ioredis adds the grace to the
    // command's own BLOCK), and its socket may stay quiet for as long.
    ...(role === 'commands'
      ? { commandTimeout: commandTimeoutMs, socketTimeout: commandTimeoutMs }
      : { blockingTimeout: options.blockMs, blockingTimeoutGrace: commandTimeoutMs, socketTimeout: options.blockMs + commandTimeoutMs }),
    connectionName: `switchboard-streams-${role}`,
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
  });
  connection.on('error', () => {
    // Reported through close/interrupted events and failing commands; never log the URL.
  });
  try {
    await connection.connect();
  } catch (error) {
    connection.disconnect();
    throw new ConnectError(`cannot connect to Redis at ${redactUrl(options.url)} within ${options.connectTimeoutMs} ms: ${(error as Error).message}`, endpointOf(options.url), { cause: error });
  }
  return connection;
}

/**
 * Moves pending entries of a group that `owner` still owns to `target` (itself: a refresh), with the
 * given idle time and delivery count; entries no longer owned by `owner` (claimed by another member
 * meanwhile) are left alone. Never increments the count itself (JUSTID). Returns how many moved.
 * KEYS[1] stream; ARGV: group, owner, target, idle ms, then (entry id, delivery count) pairs.
 */
export const MOVE_OWNED_SCRIPT = `
local moved = 0
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if #entry == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, id, 'IDLE', ARGV[4], 'RETRYCOUNT', ARGV[i + 1], 'JUSTID')
    moved = moved + 1
  end
end
return moved
`;

/** Registers the scripts on a connection (`moveOwned`). */
export function defineScripts(connection: Redis): Redis & { moveOwned(stream: string, ...args: (string | number)[]): Promise<number> } {
  if (!('moveOwned' in connection)) connection.defineCommand('moveOwned', { numberOfKeys: 1, lua: MOVE_OWNED_SCRIPT });
  return connection as Redis & { moveOwned(stream: string, ...args: (string | number)[]): Promise<number> };
}
