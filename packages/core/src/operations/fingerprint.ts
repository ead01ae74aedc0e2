import { createHash } from 'node:crypto';

/** What a failure fingerprint is made of. */
export interface FailureShape {
  readonly reason: string;
  readonly errorName: string;
  readonly errorMessage: string;
}

/**
 * The error message with its variable parts replaced, so that failures of one kind group together:
 * UUIDs → `<uuid>`, ISO times → `<time>`, quoted strings → `<str>`, long hex → `<hex>`, numbers →
 * `<n>`, runs of whitespace → one space; at most 300 characters.
 */
export function normaliseErrorMessage(message: string): string {
  return message
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '<uuid>')
    .replace(/\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?/g, '<time>')
    .replace(/"[^"]*"|'[^']*'|`[^`]*`/g, '<str>')
    .replace(/\b(0x)?[0-9a-f]{8,}\b/gi, '<hex>')
    .replace(/\d+(\.\d+)?/g, '<n>')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}

/** A short, stable id of a kind of failure: reason + error name + normalised message. */
export function failureFingerprint(failure: FailureShape): string {
  return createHash('sha256')
    .update(`${failure.reason}\n${failure.errorName}\n${normaliseErrorMessage(failure.errorMessage)}`)
    .digest('hex')
    .slice(0, 12);
}
