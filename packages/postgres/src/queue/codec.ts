import type { TransportMessage } from '@switchboard/core/transport';
import { ConfigError } from '@switchboard/core';
import type { ClaimedRow } from './sql.js';

/** The columns a batch of messages is written with (arrays bound as parameters). */
export interface EncodedBatch {
  readonly ids: string[];
  readonly keys: (string | null)[];
  readonly headers: Buffer[];
  readonly bodies: Buffer[];
  readonly timestamps: number[];
}

/** PostgreSQL text holds no NUL character: an id, key or topic with one is refused naming the field. */
/** Why PostgreSQL text cannot hold `value` (a NUL character), or undefined. */
export function storableTextProblem(value: string): string | undefined {
  return value.includes('\u0000') ? 'contains a NUL character, which PostgreSQL text cannot store' : undefined;
}

export function assertStorableText(value: string, field: string): void {
  const problem = storableTextProblem(value);
  if (problem) throw new ConfigError([{ path: field, message: problem }]);
}

/** Headers go as JSON in a bytea column (any character survives); ids and keys as text. */
export function encodeBatch(messages: readonly TransportMessage[]): EncodedBatch {
  const batch: EncodedBatch = { ids: [], keys: [], headers: [], bodies: [], timestamps: [] };
  for (const message of messages) {
    assertStorableText(message.id, 'message.id');
    if (message.key !== undefined) assertStorableText(message.key, 'message.key');
    batch.ids.push(message.localId ? '' : message.id); // empty: the reader names the message by its row
    batch.keys.push(message.key ?? null);
    batch.headers.push(Buffer.from(JSON.stringify(message.headers)));
    batch.bodies.push(Buffer.isBuffer(message.body) ? message.body : Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength));
    batch.timestamps.push(Math.trunc(message.timestamp));
  }
  return batch;
}

/**
 * A claimed row as a transport message. The headers column is read as untrusted input (anyone with
 * write access to the table can put bytes there): anything but a JSON object of strings is dropped
 * and reported.
 */
export function decodeRow(row: Pick<ClaimedRow, 'seq' | 'topic' | 'id' | 'key' | 'headers' | 'body' | 'ts'>): { message: TransportMessage; rejected: { header: string; value: string }[] } {
  const rejected: { header: string; value: string }[] = [];
  const headers: Record<string, string> = {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(row.headers.toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
    for (const [name, value] of Object.entries(parsed)) {
      if (typeof value === 'string')
        Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true }); // `__proto__` stays a header
      else rejected.push({ header: name, value: String(JSON.stringify(value)).slice(0, 200) });
    }
  } else rejected.push({ header: '(headers column)', value: row.headers.toString('utf8').slice(0, 200) });
  const timestamp = Number(row.ts);
  return {
    message: {
      // No id stored (a local id, see TransportMessage.localId): the row's own name, stable across redeliveries.
      id: row.id !== '' ? row.id : `${row.topic}-${row.seq}`,
      ...(row.key !== null ? { key: row.key } : {}),
      headers,
      body: row.body,
      timestamp: Number.isFinite(timestamp) ? timestamp : Date.now(),
    },
    rejected,
  };
}
