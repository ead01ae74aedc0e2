/** Turning hostile message data into safe, bounded text for the page (the renderer escapes it; this bounds and redacts it). */

/** Header names whose values are never shown (they may carry credentials). */
const SECRET_HEADER = /authorization|cookie|passw|secret|token|api[-_]?key|credential|signature/i;

export const MAX_PAYLOAD_SHOWN = 64 * 1024;
const MAX_HEADER_SHOWN = 1024;
const MAX_BINARY_SHOWN = 4096;

export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length - max} more characters)` : text;
}

/** Headers for display: secrets redacted, long values clipped, sorted by name. */
export function shownHeaders(headers: Readonly<Record<string, string>>): Array<[string, string]> {
  return Object.entries(headers)
    .map(([name, value]): [string, string] => [clip(name, 200), SECRET_HEADER.test(name) ? '[redacted]' : clip(String(value), MAX_HEADER_SHOWN)])
    .sort(([a], [b]) => a.localeCompare(b));
}

export interface ShownPayload {
  readonly kind: 'json' | 'text' | 'binary';
  readonly bytes: number;
  /** Pretty JSON or the text (clipped); for binary: hex of the first bytes. */
  readonly text: string;
  /** Binary only: base64 of the first bytes. */
  readonly base64?: string;
  readonly clipped: boolean;
}

/** The payload as JSON (pretty), UTF-8 text, or — when it is not valid UTF-8 — hex and base64. */
export function shownPayload(body: Uint8Array): ShownPayload {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    const head = Buffer.from(body.subarray(0, MAX_BINARY_SHOWN));
    return {
      kind: 'binary',
      bytes: body.length,
      text: head
        .toString('hex')
        .replace(/(.{2})/g, '$1 ')
        .trim(),
      base64: head.toString('base64'),
      clipped: body.length > MAX_BINARY_SHOWN,
    };
  }
  if (text.length <= MAX_PAYLOAD_SHOWN) {
    try {
      return { kind: 'json', bytes: body.length, text: JSON.stringify(JSON.parse(text), null, 2), clipped: false };
    } catch {
      // not JSON: shown as text
    }
  }
  return { kind: 'text', bytes: body.length, text: text.slice(0, MAX_PAYLOAD_SHOWN), clipped: text.length > MAX_PAYLOAD_SHOWN };
}

export function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}

export const iso = (ms: number) =>
  Number.isFinite(ms) && ms > 0
    ? new Date(ms)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z')
    : '—';
