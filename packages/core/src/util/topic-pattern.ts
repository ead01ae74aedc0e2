/**
 * Core topic pattern syntax, AMQP-style, used by every transport that supports patterns:
 * segments separated by `.`; `*` matches exactly one segment; `#` matches zero or more segments.
 * Example: `orders.*.created` matches `orders.eu.created`; `orders.#` matches `orders` and `orders.eu.x`.
 *
 * Dead-letter topics (names ending in `-dlq`) are matched only by patterns that end in `-dlq`
 * themselves: `orders.*` does not match `orders.eu-dlq`, so a pattern subscription never receives its
 * own dead letters; `orders.*-dlq` is not a pattern for them either (segments are whole), subscribe to
 * a DLQ by its name.
 */
export function compileTopicPattern(pattern: string): RegExp {
  const segments = pattern.split('.');
  let source = '';
  segments.forEach((segment, index) => {
    const dot = index === 0 ? '' : '\\.';
    if (segment === '#') {
      // zero or more segments, including their separating dot
      source += index === 0 ? '(?:[^.]+(?:\\.[^.]+)*)?' : '(?:\\.[^.]+)*';
    } else if (segment === '*') {
      source += `${dot}[^.]+`;
    } else {
      source += dot + segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }
  });
  const dlqGuard = pattern.endsWith('-dlq') ? '' : '(?!.*-dlq$)';
  return new RegExp(`^${dlqGuard}${source}$`);
}

/** True when `topic` matches the core `pattern`. */
export function matchesTopicPattern(pattern: string, topic: string): boolean {
  return compileTopicPattern(pattern).test(topic);
}
