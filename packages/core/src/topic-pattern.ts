/**
 * Core topic pattern syntax, AMQP-style, used by every transport that supports patterns:
 * segments separated by `.`; `*` matches exactly one segment; `#` matches zero or more segments.
 * Example: `orders.*.created` matches `orders.eu.created`; `orders.#` matches `orders` and `orders.eu.x`.
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
  return new RegExp(`^${source}$`);
}

/** True when `topic` matches the core `pattern`. */
export function matchesTopicPattern(pattern: string, topic: string): boolean {
  return compileTopicPattern(pattern).test(topic);
}
