import { createHash } from 'node:crypto';

/** A topic (or a DLQ topic) as a NATS subject: dot-separated tokens, no wildcards or spaces. */
export function isPlainTopic(topic: string): boolean {
  return /^[^\s.*>]+(\.[^\s.*>]+)*$/.test(topic);
}

/** The subject of `topic` under `prefix`. */
export const subjectOf = (prefix: string, topic: string) => `${prefix}.${topic}`;

/** The topic of a subject under `prefix` (undefined when it is not under it). */
export function topicOf(prefix: string, subject: string): string | undefined {
  return subject.startsWith(`${prefix}.`) ? subject.slice(prefix.length + 1) : undefined;
}

/**
 * The consumer filter for a core pattern (`*` one segment, `#` zero or more): `*` maps to `*`; from
 * the first `#` on, the filter widens to `>` at the nearest point that still covers every match (a
 * trailing `#` can match nothing, so `orders.#` reads from `<prefix>.>`), and the client keeps only
 * what the core pattern matches. Without `#` the filter is exact.
 */
export function filterOf(prefix: string, topic: string, pattern: boolean): string {
  if (!pattern) return subjectOf(prefix, topic);
  const segments = topic.split('.');
  const hash = segments.indexOf('#');
  if (hash < 0) return subjectOf(prefix, topic);
  const rest = segments.slice(hash + 1).filter((s) => s !== '#');
  const fixed = segments.slice(0, rest.length > 0 ? hash : Math.max(0, hash - 1));
  return [prefix, ...fixed, '>'].join('.');
}

/** A durable consumer name for `group` on `filter`: readable, legal (no `.`, `*`, `>`, spaces), and unique (a hash of both). */
export function durableName(group: string, filter: string): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48);
  const hash = createHash('sha256').update(`${group}\0${filter}`).digest('hex').slice(0, 12);
  return `sb_${clean(group)}_${clean(filter)}_${hash}`;
}
