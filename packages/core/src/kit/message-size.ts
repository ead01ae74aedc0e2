import { MessageTooLargeError } from '../ports/errors.js';
import type { TransportMessage } from '../ports/message.js';

/** Approximate encoded size of a header map (UTF-8 names and values plus a per-entry overhead). */
export function headerBytes(headers: Readonly<Record<string, string>>): number {
  let bytes = 0;
  for (const [name, value] of Object.entries(headers)) bytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 8;
  return bytes;
}

/** Approximate encoded size of a message: body, headers (names, values, per-entry overhead) and key. */
export function messageBytes(message: TransportMessage): number {
  return message.body.byteLength + headerBytes(message.headers) + (message.key === undefined ? 0 : Buffer.byteLength(message.key));
}

/**
 * For adapters with a configured `maxMessageBytes`: throws a {@link MessageTooLargeError} naming the
 * first message over `limit`, before anything is sent (so a broker that would close the channel or
 * the connection on it never sees it). Nothing is checked when `limit` is undefined.
 */
export function refuseOversizeMessages(topic: string, messages: readonly TransportMessage[], limit: number | undefined): void {
  if (limit === undefined) return;
  for (const message of messages) {
    const bytes = messageBytes(message);
    if (bytes > limit) throw new MessageTooLargeError(`message ${message.id} to "${topic}" is ${bytes} bytes, over the transport's maxMessageBytes (${limit})`, topic, bytes, limit);
  }
}

/**
 * `text`'s length in bytes of UTF-8 when it may be over `limit`, else 0: a UTF-16 unit is at most
 * 3 bytes, so text of at most `limit / 3` units is not counted (most names and header values).
 */
export function utf8BytesIfOver(text: string, limit: number): number {
  if (text.length * 3 <= limit) return 0;
  const bytes = Buffer.byteLength(text);
  return bytes > limit ? bytes : 0;
}
