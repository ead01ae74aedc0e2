import { Buffer, isUtf8 } from 'node:buffer';
import { describeFailure } from './failure.js';
import { DecodeError } from './errors.js';

/** Turns values into bytes and back. `decode` throws on bad input; the pipeline wraps that in a DecodeError. */
export interface Codec {
  readonly contentType: string;
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The default: UTF-8 JSON. Invalid UTF-8 is a decode error, not replacement characters. */
export const jsonCodec: Codec = {
  contentType: 'application/json',
  encode(value) {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`jsonCodec cannot encode ${typeof value}`);
    return Buffer.from(text, 'utf8');
  },
  decode(bytes) {
    const buffer = asBuffer(bytes);
    if (!isUtf8(buffer)) throw new TypeError('payload is not valid UTF-8');
    return JSON.parse(buffer.toString('utf8'));
  },
};

/** Passes bytes through untouched: `value` is the Uint8Array itself. */
export const bytesCodec: Codec = {
  contentType: 'application/octet-stream',
  encode(value) {
    if (!(value instanceof Uint8Array)) throw new TypeError('bytesCodec encodes Uint8Array values only');
    return value;
  },
  decode(bytes) {
    return bytes;
  },
};

/** UTF-8 text. */
export const textCodec: Codec = {
  contentType: 'text/plain',
  encode(value) {
    return encoder.encode(String(value));
  },
  decode(bytes) {
    return decoder.decode(bytes);
  },
};

/** Decodes with `codec`, turning any failure into a {@link DecodeError} that names the codec. */
export function decodeOrThrow(codec: Codec, bytes: Uint8Array): unknown {
  try {
    return codec.decode(bytes);
  } catch (error) {
    throw new DecodeError(`cannot decode payload as ${codec.contentType}: ${describeFailure(error, 1024).message}`, { cause: error });
  }
}
