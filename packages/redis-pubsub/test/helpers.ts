import { Redis } from 'ioredis';
import type { TransportMessage } from '@switchboard/core/transport';
import { type DeadLetterReader, Recorder } from '@switchboard/core/testing';
import { readDeadLetterStream } from '@switchboard/redis-pubsub';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Reads a DLQ stream as entries arrive (XREAD BLOCK in a loop bounded by close). */
export async function openStreamReader(stream: string): Promise<DeadLetterReader> {
  const connection = new Redis(REDIS_URL, { lazyConnect: true });
  await connection.connect();
  const letters = new Recorder<TransportMessage>();
  let open = true;
  let last = '0';
  const loop = (async () => {
    while (open) {
      const batch = await readDeadLetterStream(connection, stream, last, 200).catch(() => []);
      for (const letter of batch) {
        last = letter.entryId;
        letters.add(letter);
      }
    }
  })();
  return {
    letters,
    async close() {
      open = false;
      await loop;
      connection.disconnect();
    },
  };
}
