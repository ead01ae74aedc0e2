import { Buffer } from 'node:buffer';
import { describeFailure } from '../util/failure.js';
import { DecodeError } from './errors.js';

/** Turns values into bytes and back. `decode` throws on bad input; the pipeline wraps that in a DecodeError. */
export interface Codec {
  readonly contentType: string;
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The default: UTF-8 JSON. Invalid UTF-8 is a decode error, not replacement characters. */
export const jsonCodec: Codec = {
  contentType: 'application/json',
  encode(value) {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`jsonCodec cannot encode ${typeof value}`);
    return Buffer.from(text, 'utf8');
  },
  decode(bytes) {
    // The fatal decoder checks UTF-8 while it decodes (no separate scan): bad bytes throw, never U+FFFD.
    return JSON.parse(decoder.decode(bytes));
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

/** `bytes` as a Buffer: itself when it is one (no allocation), else a view of the same memory. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
