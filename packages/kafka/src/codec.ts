import type { ConsumedRecord, OutgoingRecord } from './client.js';
import { asBuffer, type TransportMessage } from '@switchboard/core/transport';

/** Kafka header carrying the Switchboard message id (Kafka records have none). */
export const ID_HEADER = 'x-sb-id';

/** id -> x-sb-id header (none for a {@link TransportMessage.localId}); key -> record key; timestamp -> record timestamp; headers -> record headers. */
export function toKafkaRecord(message: TransportMessage): OutgoingRecord {
  return {
    key: message.key ?? null,
    value: asBuffer(message.body),
    timestamp: String(message.timestamp),
    headers: message.localId ? message.headers : { ...message.headers, [ID_HEADER]: message.id },
  };
}

function headerText(value: NonNullable<ConsumedRecord['headers']>[string]): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.map((v) => v.toString()).join(',');
  return value.toString();
}

/** The record as a transport message. A record without x-sb-id gets `<topic>-<partition>-<offset>`: stable, so duplicates stay recognisable. */
export function fromKafkaRecord(topic: string, partition: number, record: ConsumedRecord): TransportMessage {
  const headers: Record<string, string> = {};
  let id: string | undefined;
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    const text = headerText(value);
    if (text === undefined) continue;
    if (name === ID_HEADER) id = text;
    else headers[name] = text;
  }
  return {
    id: id ?? `${topic}-${partition}-${record.offset}`,
    ...(record.key !== null && record.key !== undefined ? { key: record.key.toString() } : {}),
    headers,
    body: record.value ?? Buffer.alloc(0),
    timestamp: Number(record.timestamp),
  };
}
