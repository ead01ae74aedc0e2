import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, startOwnServer, waitUntil, type OwnServer } from '@switchboard/core/testing';
import { createRedisStreamsTransport, type RedisStreamsOptionsInput } from '@switchboard/redis-streams';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A transport on the test server; claims and refreshes fast enough for tests to see them in seconds. */
export function testTransport(options: RedisStreamsOptionsInput = {}) {
  return createRedisStreamsTransport({ url: REDIS_URL, claimIntervalMs: 200, blockMs: 500, ...options });
}

/**
 * A redis-server of the test's own (loopback, a free port, its own directory, AOF fsynced on every
 * write), so an outage test stops a server no other test uses. `stop()` is SHUTDOWN (the AOF is on
 * disk), `start()` brings it back on the same port and data; `dispose()` stops it and removes its data.
 */
export interface OwnRedis extends OwnServer {
  readonly url: string;
}

export async function startOwnRedis(): Promise<OwnRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-redis-streams-'));
  const url = `redis://127.0.0.1:${port}`;
  const ping = async () => {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      return (await probe.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      probe.disconnect();
    }
  };
  const shutdown = async () => {
    const admin = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
    admin.on('error', () => undefined);
    await admin.call('SHUTDOWN').catch(() => undefined); // the server closes the connection as it exits
    admin.disconnect();
  };
  const args = ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''];
  const server = await startOwnServer({ command: 'redis-server', args, port, dir, ready: ping, stopWith: shutdown });
  return Object.assign(server, { url });
}

/** Pending entries of `group` on `stream` (XPENDING summary count). */
export async function pendingCount(redis: Redis, stream: string, group: string): Promise<number> {
  const [count] = (await redis.xpending(stream, group)) as [number, ...unknown[]];
  return Number(count);
}

/** Waits until `group` has nothing pending on `stream`. */
export async function waitForNothingPending(redis: Redis, stream: string, group: string, timeoutMs = 15_000): Promise<void> {
  let pending = -1;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    pending = await pendingCount(redis, stream, group);
    if (pending === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${stream}/${group} to have nothing pending; ${pending} pending`);
}

export { waitUntil };
