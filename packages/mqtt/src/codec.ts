import { clipForReport, newMessageId, packHeaders, safeTimestamp, unpackHeaders, utf8BytesIfOver, type TransportMessage } from '@switchboard/core/transport';
import { isMqttText } from './topics.js';

/** MQTT 5 user properties: the message id, key and creation time, beside the application's headers. */
export const ID_PROPERTY = 'x-sb-id';
export const KEY_PROPERTY = 'x-sb-key';
export const TIMESTAMP_PROPERTY = 'x-sb-timestamp';
/** Headers MQTT cannot carry as they are (control characters, unpaired surrogates), as base64url JSON of a string map. */
export const PACKED_HEADERS = 'x-sb-headers';
const OWN = new Set([ID_PROPERTY, KEY_PROPERTY, TIMESTAMP_PROPERTY, PACKED_HEADERS]);
const MAX_ID_LENGTH = 1024;

export type UserProperties = Record<string, string | string[]>;

/**
 * The user properties of a message: its id, key (when set) and time, then each header as a property
 * where MQTT can carry it unchanged; the others are packed into `x-sb-headers`. A key MQTT cannot
 * carry is packed too (under its own name).
 */
export function encodeProperties(message: TransportMessage): UserProperties {
  const out: UserProperties = {};
  if (!message.localId) out[ID_PROPERTY] = message.id;
  if (!message.brokerTimestamp) out[TIMESTAMP_PROPERTY] = String(message.timestamp); // else the reader takes the time of receipt
  let packed: Record<string, string> | undefined;
  if (message.key !== undefined) {
    if (isMqttText(message.key)) out[KEY_PROPERTY] = message.key;
    else (packed ??= {})[KEY_PROPERTY] = message.key;
  }
  for (const name in message.headers) {
    const value = message.headers[name]!;
    if (!OWN.has(name) && isMqttText(name) && isMqttText(value)) out[name] = value;
    else (packed ??= {})[name] = value;
  }
  if (packed) out[PACKED_HEADERS] = packHeaders(packed);
  return out;
}

/** The longest string an MQTT 5 user property holds (a two-byte length prefix), in bytes of UTF-8. */
const MAX_PROPERTY_BYTES = 65_535;

/**
 * Why `properties` (from {@link encodeProperties}) cannot go in a PUBLISH packet, naming the message's
 * field, or undefined when they can. mqtt.js does not refuse an oversize one: it fails in the middle
 * of writing the packet, and every later publish of the connection waited for an acknowledgement
 * that never came.
 */
export function propertiesProblem(properties: UserProperties): { path: string; message: string } | undefined {
  for (const name in properties) {
    const nameBytes = utf8BytesIfOver(name, MAX_PROPERTY_BYTES);
    const valueBytes = utf8BytesIfOver(properties[name] as string, MAX_PROPERTY_BYTES);
    if (nameBytes === 0 && valueBytes === 0) continue;
    const path = name === KEY_PROPERTY ? 'key' : name === PACKED_HEADERS ? 'headers' : `headers.${name}`;
    return {
      path,
      message: `${nameBytes > 0 ? 'its name is' : 'it is'} ${Math.max(nameBytes, valueBytes)} bytes of UTF-8: an MQTT user property holds at most ${MAX_PROPERTY_BYTES}`,
    };
  }
  return undefined;
}

/** What a received message gave: the message, and the properties that were present but unusable (reported, never trusted). */
export interface DecodedMessage {
  readonly message: TransportMessage;
  readonly rejected: readonly { readonly header: string; readonly value: string }[];
}

/**
 * Reads a received message as hostile input: any client allowed to publish on the topic sets any
 * user property, as often as it likes. A property given more than once counts its first value and is
 * named in `rejected`; an unusable `x-sb-id` gives way to a new id (MQTT has no message id of its
 * own: a raw producer's message is handled without de-duplication), an implausible time to the time
 * of receipt, packed headers that are not a JSON object of strings to none of them. Nothing read here
 * decides how often a message is tried or where it goes.
 */
export function decodeMessage(payload: Uint8Array, properties: UserProperties | undefined, receivedAt: number): DecodedMessage {
  const rejected: { header: string; value: string }[] = [];
  const headers: Record<string, string> = {};
  let id: string | undefined;
  let key: string | undefined;
  let timestamp: number | undefined;
  if (properties) {
    for (const name of Object.keys(properties)) {
      const given = properties[name]!;
      let value: string;
      if (Array.isArray(given)) {
        value = String(given[0] ?? '');
        rejected.push({ header: name, value: clipForReport(given.join(', ')) });
      } else value = given;
      switch (name) {
        case ID_PROPERTY:
          if (value.length > 0 && value.length <= MAX_ID_LENGTH) id = value;
          else rejected.push({ header: name, value: clipForReport(value) });
          break;
        case KEY_PROPERTY:
          key = value;
          break;
        case TIMESTAMP_PROPERTY: {
          const ms = Number(value);
          if (Number.isSafeInteger(ms) && ms > 0) timestamp = ms;
          else rejected.push({ header: name, value: clipForReport(value) });
          break;
        }
        case PACKED_HEADERS: {
          const unpacked = unpackHeaders(value);
          if (!unpacked) {
            rejected.push({ header: name, value: clipForReport(value) });
            break;
          }
          for (const [packedName, packedValue] of Object.entries(unpacked)) {
            if (packedName === KEY_PROPERTY) key = packedValue;
            else if (!OWN.has(packedName)) headers[packedName] = packedValue;
          }
          break;
        }
        default:
          headers[name] = value;
      }
    }
  }
  const message: TransportMessage = {
    id: id ?? newMessageId(),
    ...(key !== undefined ? { key } : {}),
    headers,
    timestamp: safeTimestamp(timestamp ?? receivedAt),
    body: payload,
  };
  return { message, rejected };
}
