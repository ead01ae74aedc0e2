/**
 * Header maps carried as text by adapters whose broker cannot carry every header as it is (NATS
 * headers, MQTT user properties, Redis stream fields), and the values a subscription reports when it
 * refuses hostile input.
 */

/**
 * A JSON object's string values (others dropped); undefined when the text is not a JSON object.
 * Own properties only: `__proto__` stays a plain key.
 */
export function parseHeaderMap(json: string): Record<string, string> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  return Object.fromEntries(Object.entries(parsed as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** A header map as base64url JSON: any name and value survive, line breaks and unpaired surrogates included. */
export function packHeaders(headers: Readonly<Record<string, string>>): string {
  return Buffer.from(JSON.stringify(headers)).toString('base64url');
}

/** The map {@link packHeaders} made; undefined when the value is not one (see {@link parseHeaderMap}). */
export function unpackHeaders(value: string): Record<string, string> | undefined {
  return parseHeaderMap(Buffer.from(value, 'base64url').toString('utf8'));
}

/** A received value shortened for an `untrusted-header` report: its first 200 characters. */
export function clipForReport(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
