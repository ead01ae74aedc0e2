import type { TransportMessage } from '@switchboard/core/transport';

/** The message columns the fallback store and the outbox tables share. */
export interface MessageColumns {
  message_id: string;
  message_key: string | null;
  headers: Record<string, string>;
  payload: Buffer;
  /** bigint, as pg returns it: a decimal string. */
  message_timestamp: string;
}

/** The message a row of those columns holds. */
export function messageOfRow(row: MessageColumns): TransportMessage {
  return {
    id: row.message_id,
    ...(row.message_key !== null ? { key: row.message_key } : {}),
    headers: row.headers,
    body: row.payload,
    timestamp: Number(row.message_timestamp),
  };
}
