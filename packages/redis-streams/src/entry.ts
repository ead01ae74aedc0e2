import { clipForReport, parseHeaderMap, safeTimestamp, type TransportMessage } from '@switchboard/core/transport';

/**
 * One message = one stream entry with the fields `id`, `headers` (a JSON object of strings),
 * `timestamp` (ms), `body` (raw bytes) and, when it has one, `key`. The Redis Pub/Sub adapter writes
 * its dead-letter streams in the same shape, so either adapter (and the CLI) reads both.
 */
export function entryFields(message: TransportMessage): (string | Buffer)[] {
  const fields: (string | Buffer)[] = [
    // A local id stays off the wire: the reader takes the entry id.
    ...(message.localId ? [] : ['id', message.id]),
    'headers',
    JSON.stringify(message.headers),
    // The broker's time: the reader takes the entry id's.
    ...(message.brokerTimestamp ? [] : ['timestamp', String(message.timestamp)]),
    'body',
    Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength),
  ];
  if (message.key !== undefined) fields.push('key', message.key);
  return fields;
}

/** What a read entry gave: the message, and the fields that were present but unusable (reported, never trusted). */
export interface DecodedEntry {
  readonly message: TransportMessage;
  readonly rejected: readonly { readonly header: string; readonly value: string }[];
}

const MAX_ID_LENGTH = 1024;

/**
 * Reads an entry as hostile input: anyone with write access can XADD anything. A field that does not
 * have its shape is not used (and is named in `rejected`): an unusable `id` gives way to the entry
 * id, an unusable `timestamp` to the entry id's time, `headers` that are not a JSON object of strings
 * to no headers (string values of a partly valid object are kept). An entry without a `body` field
 * (written by another producer) is delivered with all its fields as a JSON object for body.
 */
export function decodeEntry(entryId: string, fields: readonly Buffer[]): DecodedEntry {
  const rejected: { header: string; value: string }[] = [];
  let id: string | undefined;
  let key: string | undefined;
  let headers: Record<string, string> = {};
  let timestamp: number | undefined;
  let body: Buffer | undefined;
  let foreign: [string, string][] | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!.toString('utf8');
    const value = fields[i + 1]!;
    switch (name) {
      case 'id': {
        const text = value.toString('utf8');
        if (text.length > 0 && text.length <= MAX_ID_LENGTH) id = text;
        else rejected.push({ header: 'id', value: clipForReport(text) });
        break;
      }
      case 'key':
        key = value.toString('utf8');
        break;
      case 'headers': {
        const parsed = parseHeaderMap(value.toString('utf8'));
        if (parsed) headers = parsed;
        else rejected.push({ header: 'headers', value: clipForReport(value.toString('utf8')) });
        break;
      }
      case 'timestamp': {
        const ms = Number(value.toString('utf8'));
        if (Number.isSafeInteger(ms) && ms >= 0) timestamp = ms;
        else rejected.push({ header: 'timestamp', value: clipForReport(value.toString('utf8')) });
        break;
      }
      case 'body':
        body = value;
        break;
    }
    (foreign ??= []).push([name, value.toString('utf8')]);
  }
  const message: TransportMessage = {
    id: id ?? entryId,
    ...(key !== undefined ? { key } : {}),
    headers,
    timestamp: safeTimestamp(timestamp ?? entryTime(entryId)),
    body: body ?? Buffer.from(JSON.stringify(Object.fromEntries(foreign ?? []))),
  };
  return { message, rejected };
}

/** The milliseconds part of a stream entry id ("1700000000000-0"). */
export function entryTime(entryId: string): number {
  const dash = entryId.indexOf('-');
  const ms = Number(dash < 0 ? entryId : entryId.slice(0, dash));
  return Number.isSafeInteger(ms) ? ms : Date.now();
}
