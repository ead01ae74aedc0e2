import { newMessageId } from '@switchboard/core';
import { safeTimestamp, type TransportMessage } from '@switchboard/core/transport';

/**
 * Redis Pub/Sub carries one string per message, so Switchboard frames the envelope. Two versions;
 * every version is read, the producer writes the one configured (`wireFormat`, default 2):
 *
 *   version 2 (binary): "SB2" | flags u8 (bit 0: key present) | timestamp f64 BE (ms)
 *                       | id: u16 BE length + UTF-8 | [key: u32 BE length + UTF-8]
 *                       | header count u16 BE | per header: name u16 BE length + UTF-8, value u32 BE length + UTF-8
 *                       | body bytes
 *   version 1 (0.1.x):  "SB1" | u32 BE header length | JSON {id, key?, headers, timestamp} | body bytes
 *
 * A message with neither magic, or whose frame does not parse (published by another client, or
 * hostile), is taken whole as the body, with a fresh id and the receive time. Anyone can PUBLISH:
 * every length is checked against the frame and every field validated.
 */
export type WireFormat = 1 | 2;

const MAGIC_V1 = Buffer.from('SB1');
const MAGIC_V2 = Buffer.from('SB2');

export function encodeFrame(message: TransportMessage, version: WireFormat = 2): Buffer {
  return version === 2 ? encodeV2(message) : encodeV1(message);
}

function encodeV1(message: TransportMessage): Buffer {
  const header = JSON.stringify({ id: message.localId ? '' : message.id, key: message.key, headers: message.headers, timestamp: message.timestamp });
  const headerLength = Buffer.byteLength(header);
  const frame = Buffer.allocUnsafe(7 + headerLength + message.body.byteLength);
  MAGIC_V1.copy(frame, 0);
  frame.writeUInt32BE(headerLength, 3);
  frame.write(header, 7, headerLength, 'utf8');
  frame.set(message.body, 7 + headerLength);
  return frame;
}

function encodeV2(message: TransportMessage): Buffer {
  const names = Object.keys(message.headers);
  const id = message.localId ? '' : message.id; // empty: the receiver makes one
  const idLength = Buffer.byteLength(id);
  const keyLength = message.key !== undefined ? Buffer.byteLength(message.key) : -1;
  let size = 3 + 1 + 8 + 2 + idLength + (keyLength >= 0 ? 4 + keyLength : 0) + 2;
  for (const name of names) size += 2 + Buffer.byteLength(name) + 4 + Buffer.byteLength(message.headers[name]!);
  if (idLength > 0xffff || names.length > 0xffff) throw new RangeError('redis frame: id over 65535 bytes or more than 65535 headers');
  const frame = Buffer.allocUnsafe(size + message.body.byteLength);
  MAGIC_V2.copy(frame, 0);
  let at = 3;
  frame.writeUInt8(keyLength >= 0 ? 1 : 0, at);
  at = frame.writeDoubleBE(message.timestamp, at + 1);
  at = frame.writeUInt16BE(idLength, at);
  at += frame.write(id, at, 'utf8');
  if (keyLength >= 0) {
    at = frame.writeUInt32BE(keyLength, at);
    at += frame.write(message.key!, at, 'utf8');
  }
  at = frame.writeUInt16BE(names.length, at);
  for (const name of names) {
    const nameLength = Buffer.byteLength(name);
    if (nameLength > 0xffff) throw new RangeError('redis frame: header name over 65535 bytes');
    at = frame.writeUInt16BE(nameLength, at);
    at += frame.write(name, at, 'utf8');
    const value = message.headers[name]!;
    at = frame.writeUInt32BE(Buffer.byteLength(value), at);
    at += frame.write(value, at, 'utf8');
  }
  frame.set(message.body, at);
  return frame;
}

export function decodeFrame(frame: Buffer): TransportMessage {
  if (frame.length >= 3 && frame[0] === 0x53 && frame[1] === 0x42) {
    const decoded = frame[2] === 0x32 ? decodeV2(frame) : frame[2] === 0x31 ? decodeV1(frame) : undefined;
    if (decoded) return decoded;
  }
  return { id: newMessageId(), headers: {}, body: frame, timestamp: Date.now() };
}

/** Version 2, or undefined when a length runs past the frame. */
function decodeV2(frame: Buffer): TransportMessage | undefined {
  let at = 3;
  const need = (bytes: number) => at + bytes <= frame.length;
  if (!need(1 + 8 + 2)) return undefined;
  const flags = frame.readUInt8(at);
  const timestamp = frame.readDoubleBE(at + 1);
  at += 9;
  const idLength = frame.readUInt16BE(at);
  at += 2;
  if (!need(idLength)) return undefined;
  const id = frame.toString('utf8', at, at + idLength);
  at += idLength;
  let key: string | undefined;
  if (flags & 1) {
    if (!need(4)) return undefined;
    const keyLength = frame.readUInt32BE(at);
    at += 4;
    if (!need(keyLength)) return undefined;
    key = frame.toString('utf8', at, at + keyLength);
    at += keyLength;
  }
  if (!need(2)) return undefined;
  const count = frame.readUInt16BE(at);
  at += 2;
  const headers: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    if (!need(2)) return undefined;
    const nameLength = frame.readUInt16BE(at);
    at += 2;
    if (!need(nameLength + 4)) return undefined;
    const name = frame.toString('utf8', at, at + nameLength);
    at += nameLength;
    const valueLength = frame.readUInt32BE(at);
    at += 4;
    if (!need(valueLength)) return undefined;
    // A prototype-named header is kept as data, never as the object's prototype.
    Object.defineProperty(headers, name, { value: frame.toString('utf8', at, at + valueLength), enumerable: true, writable: true, configurable: true });
    at += valueLength;
  }
  const message: { id: string; key?: string; headers: Record<string, string>; body: Buffer; timestamp: number } = {
    id: id !== '' ? id : newMessageId(),
    headers,
    body: frame.subarray(at),
    timestamp: Number.isFinite(timestamp) ? safeTimestamp(timestamp) : Date.now(),
  };
  if (key !== undefined) message.key = key;
  return message;
}

/** Version 1 (JSON header), what 0.1.x producers write; undefined when it does not parse. */
function decodeV1(frame: Buffer): TransportMessage | undefined {
  if (frame.length < 7) return undefined;
  const headerLength = frame.readUInt32BE(3);
  if (7 + headerLength > frame.length) return undefined;
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(frame.subarray(7, 7 + headerLength).toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof header !== 'object' || header === null) return undefined;
  const headers: Record<string, string> = {};
  if (typeof header.headers === 'object' && header.headers !== null) {
    for (const [name, value] of Object.entries(header.headers)) if (typeof value === 'string') Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
  }
  const timestamp = header.timestamp;
  return {
    id: typeof header.id === 'string' && header.id !== '' ? header.id : newMessageId(),
    ...(typeof header.key === 'string' ? { key: header.key } : {}),
    headers,
    body: frame.subarray(7 + headerLength),
    timestamp: typeof timestamp === 'number' ? safeTimestamp(timestamp) : Date.now(),
  };
}
