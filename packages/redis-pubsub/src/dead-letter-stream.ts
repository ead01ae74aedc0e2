import type { Redis } from 'ioredis';
import { refuseOversizeMessages, type RawPublisher, type TransportMessage, type TransportPublishResult } from '@switchboard/core/transport';

/**
 * Pub/Sub keeps nothing, so dead letters go to a Redis Stream named like the DLQ topic (`<channel>-dlq`).
 * Entry fields: id, key (optional), headers (JSON), timestamp, body (raw bytes).
 */
export class DeadLetterStreamPublisher implements RawPublisher {
  constructor(
    private readonly redis: Redis,
    private readonly maxLen: number,
    private readonly maxMessageBytes?: number,
  ) {}

  async publish(stream: string, messages: readonly TransportMessage[]): Promise<TransportPublishResult> {
    refuseOversizeMessages(stream, messages, this.maxMessageBytes);
    const pipeline = this.redis.pipeline();
    for (const m of messages) {
      const fields: (string | Buffer)[] = ['id', m.id, 'headers', JSON.stringify(m.headers), 'timestamp', String(m.timestamp), 'body', Buffer.from(m.body)];
      if (m.key !== undefined) fields.push('key', m.key);
      if (this.maxLen > 0) pipeline.xadd(stream, 'MAXLEN', '~', String(this.maxLen), '*', ...fields);
      else pipeline.xadd(stream, '*', ...fields);
    }
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([error]) => error);
    if (failed) throw failed[0];
    return { receivers: 1 };
  }
}

/** One dead letter read back from a stream, with its stream entry id. */
export interface StreamDeadLetter extends TransportMessage {
  readonly entryId: string;
}

function toDeadLetter(entryId: string, fields: Buffer[]): StreamDeadLetter {
  const map = new Map<string, Buffer>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i]!.toString('utf8'), fields[i + 1]!);
  const key = map.get('key')?.toString('utf8');
  return {
    entryId,
    id: map.get('id')?.toString('utf8') ?? entryId,
    ...(key !== undefined ? { key } : {}),
    headers: JSON.parse(map.get('headers')?.toString('utf8') ?? '{}') as Record<string, string>,
    timestamp: Number(map.get('timestamp')?.toString('utf8') ?? 0),
    body: map.get('body') ?? Buffer.alloc(0),
  };
}

/**
 * Reads dead letters after `afterEntryId` ("0" = from the start), blocking up to `blockMs` for new ones.
 * For DLQ tooling; the reading connection must not be in subscriber mode.
 */
export async function readDeadLetterStream(redis: Redis, stream: string, afterEntryId = '0', blockMs = 0, count = 100): Promise<StreamDeadLetter[]> {
  const args: (string | number)[] = ['COUNT', count];
  if (blockMs > 0) args.push('BLOCK', blockMs);
  const reply = (await redis.xreadBuffer(...(args as ['COUNT', number]), 'STREAMS', stream, afterEntryId)) as [Buffer, [Buffer, Buffer[]][]][] | null;
  if (!reply) return [];
  return reply.flatMap(([, entries]) => entries.map(([entryId, fields]) => toDeadLetter(entryId.toString('utf8'), fields)));
}

/** Dead letters in entry-id order from `start` (XRANGE syntax: "-", an id, or "(id" exclusive). */
export async function readDeadLetterStreamRange(redis: Redis, stream: string, start: string, count: number): Promise<StreamDeadLetter[]> {
  const entries = (await redis.xrangeBuffer(stream, start, '+', 'COUNT', count)) as [Buffer, Buffer[]][];
  return entries.map(([entryId, fields]) => toDeadLetter(entryId.toString('utf8'), fields));
}
