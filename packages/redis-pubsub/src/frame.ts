import { randomUUID } from 'node:crypto';
import { safeTimestamp, type TransportMessage } from '@switchboard/core';

/**
 * Redis Pub/Sub carries one string per message, so Switchboard frames the envelope:
 *   "SB1" | uint32 BE header length | JSON {id, key?, headers, timestamp} | body bytes
 * A message without the "SB1" magic (published by another client) is taken whole as the body, with a
 * fresh id and the receive time.
 */
const MAGIC = Buffer.from('SB1');

export function encodeFrame(message: TransportMessage): Buffer {
  const header = JSON.stringify({ id: message.id, key: message.key, headers: message.headers, timestamp: message.timestamp });
  const headerLength = Buffer.byteLength(header);
  const frame = Buffer.allocUnsafe(7 + headerLength + message.body.byteLength);
  MAGIC.copy(frame, 0);
  frame.writeUInt32BE(headerLength, 3);
  frame.write(header, 7, headerLength, 'utf8');
  frame.set(message.body, 7 + headerLength);
  return frame;
}

export function decodeFrame(frame: Buffer): TransportMessage {
  if (frame.length >= 7 && frame.subarray(0, 3).equals(MAGIC)) {
    const headerLength = frame.readUInt32BE(3);
    if (7 + headerLength <= frame.length) {
      try {
        const header = JSON.parse(frame.subarray(7, 7 + headerLength).toString('utf8')) as Record<string, unknown>;
        // Anyone can PUBLISH: every field is checked, and a bad one replaced (id, time) or dropped.
        const headers: Record<string, string> = {};
        if (typeof header.headers === 'object' && header.headers !== null) {
          for (const [name, value] of Object.entries(header.headers)) if (typeof value === 'string') headers[name] = value;
        }
        const timestamp = header.timestamp;
        return {
          id: typeof header.id === 'string' && header.id !== '' ? header.id : randomUUID(),
          ...(typeof header.key === 'string' ? { key: header.key } : {}),
          headers,
          body: frame.subarray(7 + headerLength),
          timestamp: typeof timestamp === 'number' ? safeTimestamp(timestamp) : Date.now(),
        };
      } catch {
        // not our frame after all: fall through
      }
    }
  }
  return { id: randomUUID(), headers: {}, body: frame, timestamp: Date.now() };
}
