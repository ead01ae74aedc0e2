import { randomUUID } from 'node:crypto';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { REPLAY_GROUP_HEADER } from '@switchboard/core';
import { clipForReport, packHeaders, safeTimestamp, unpackHeaders, type TransportMessage } from '@switchboard/core/transport';

/**
 * The de-duplication id: JetStream drops a publish whose `Nats-Msg-Id` it stored within the stream's
 * duplicate window. Switchboard sets `<topic>:<message id>`: one stream holds every topic, and a dead
 * letter (its own topic) keeps the message id. A replay (it carries `x-sb-replay-group`) is a
 * deliberate second copy and gets an id of its own.
 */
export const MSG_ID_HEADER = 'Nats-Msg-Id';
/** The message id. */
export const ID_HEADER = 'x-sb-id';
export const KEY_HEADER = 'x-sb-key';
/** The key, base64url, when it cannot be a header value as it is (line breaks, edge spaces). */
export const KEY_B64_HEADER = 'x-sb-key-b64';
export const TIMESTAMP_HEADER = 'x-sb-timestamp';
/** Headers that cannot travel as NATS headers as they are, as base64url JSON of a string map. */
export const PACKED_HEADERS = 'x-sb-headers';
const OWN = new Set([MSG_ID_HEADER, ID_HEADER, KEY_HEADER, KEY_B64_HEADER, TIMESTAMP_HEADER, PACKED_HEADERS]);
const MAX_ID_LENGTH = 1024;

/** A NATS header name: printable ASCII without `:`. */
const isHeaderName = (name: string) => name.length > 0 && /^[\x21-\x39\x3b-\x7e]+$/.test(name);
/** A value NATS carries unchanged: no line breaks, nothing its parser trims. */
const isHeaderValue = (value: string) => !/[\r\n]/.test(value) && value === value.trim();

/** The largest header block a NATS server takes with a message, bytes. */
const MAX_HEADER_BYTES = 65_536;

/**
 * Why the headers of `message` are more than a NATS server takes, or undefined when they fit. The
 * server refused such a message after a round trip, and the refusal read like a broker failure.
 * Encoded only when the fields are long enough to come near the limit.
 */
export function headersProblem(topic: string, message: TransportMessage): { path: string; message: string } | undefined {
  let chars = message.id.length + (message.key?.length ?? 0);
  for (const name in message.headers) chars += name.length + message.headers[name]!.length;
  if (chars < 16_000) return undefined;
  const bytes = (encodeHeaders(topic, message) as unknown as { encode(): Uint8Array }).encode().length;
  return bytes > MAX_HEADER_BYTES ? { path: 'headers', message: `they encode to ${bytes} bytes: a NATS server takes at most ${MAX_HEADER_BYTES} of headers per message` } : undefined;
}

/**
 * The NATS headers of a message: its id as `Nats-Msg-Id`, its key and time, then each header as a
 * NATS header where it can be one unchanged; the others (names with `:` or spaces, values with line
 * breaks or edge spaces, e.g. a dead letter's stack trace) are packed into `x-sb-headers`.
 */
export function encodeHeaders(topic: string, message: TransportMessage): MsgHdrs {
  const out = natsHeaders();
  const replay = message.headers[REPLAY_GROUP_HEADER] !== undefined ? `:replay:${randomUUID()}` : '';
  if (!message.localId) {
    // A local id stays off the wire: the reader takes `<stream>:<sequence>` (and JetStream's
    // duplicate window does not apply to the message).
    out.set(MSG_ID_HEADER, `${topic}:${message.id}${replay}`);
    out.set(ID_HEADER, message.id);
  }
  if (message.key !== undefined) {
    if (isHeaderValue(message.key)) out.set(KEY_HEADER, message.key);
    else out.set(KEY_B64_HEADER, Buffer.from(message.key).toString('base64url'));
  }
  if (!message.brokerTimestamp) out.set(TIMESTAMP_HEADER, String(message.timestamp)); // else the reader takes the server's
  let packed: Record<string, string> | undefined;
  for (const [name, value] of Object.entries(message.headers)) {
    if (isHeaderName(name) && !OWN.has(name) && isHeaderValue(value)) out.set(name, value);
    else (packed ??= {})[name] = value;
  }
  if (packed) out.set(PACKED_HEADERS, packHeaders(packed));
  return out;
}

/** What a received message gave: the message, and the headers that were present but unusable (reported, never trusted). */
export interface DecodedMessage {
  readonly message: TransportMessage;
  readonly rejected: readonly { readonly header: string; readonly value: string }[];
}

/**
 * Reads a received message as hostile input (any client allowed to publish on the subject can set
 * any header). An unusable `x-sb-id` gives way to a raw producer's `Nats-Msg-Id`, else `<stream>:<sequence>`, an implausible time to the
 * server's, packed headers that are not a JSON object of strings to none of them; each is named in
 * `rejected`. Nothing read here decides attempts (those come from the delivery metadata).
 */
export function decodeMessage(data: Uint8Array, headers: MsgHdrs | undefined, fallbackId: string, serverTimeMs: number): DecodedMessage {
  const rejected: { header: string; value: string }[] = [];
  const out: Record<string, string> = {};
  let id: string | undefined;
  let dedupId: string | undefined;
  let key: string | undefined;
  let timestamp: number | undefined;
  if (headers) {
    for (const name of headers.keys()) {
      const value = headers.get(name);
      switch (name) {
        case ID_HEADER:
          if (value.length > 0 && value.length <= MAX_ID_LENGTH) id = value;
          else rejected.push({ header: name, value: clipForReport(value) });
          break;
        case MSG_ID_HEADER:
          if (value.length > 0 && value.length <= MAX_ID_LENGTH) dedupId = value;
          break;
        case KEY_HEADER:
          key ??= value;
          break;
        case KEY_B64_HEADER:
          key = Buffer.from(value, 'base64url').toString('utf8');
          break;
        case TIMESTAMP_HEADER: {
          const ms = Number(value);
          if (Number.isSafeInteger(ms) && ms > 0) timestamp = ms;
          else rejected.push({ header: name, value: clipForReport(value) });
          break;
        }
        case PACKED_HEADERS: {
          const unpacked = unpackHeaders(value);
          if (unpacked) Object.assign(out, unpacked);
          else rejected.push({ header: name, value: clipForReport(value) });
          break;
        }
        default:
          if (name.startsWith('Nats-')) break; // the server's own (Nats-Expected-*, Nats-Stream, …)
          out[name] = value;
      }
    }
  }
  const message: TransportMessage = {
    id: id ?? dedupId ?? fallbackId, // a raw producer's Nats-Msg-Id stands for the id it gave
    ...(key !== undefined ? { key } : {}),
    headers: out,
    timestamp: safeTimestamp(timestamp ?? serverTimeMs),
    body: data,
  };
  return { message, rejected };
}
