/**
 * Switchboard topics on MQTT: the core separates levels with `.`, MQTT with `/`. Topic `orders.eu`
 * is the MQTT topic `orders/eu` (under `<topicPrefix>/` when one is set); the core pattern
 * `orders.*` is the filter `orders/+`, `orders.#` is `orders/#` (both match `orders` itself, as the
 * core pattern does). A group is a shared subscription, `$share/<group>/<filter>`.
 */

/**
 * A string every broker takes as an MQTT UTF-8 string: no unpaired surrogate (it has no UTF-8
 * encoding), no U+0000 (the protocol forbids it), no control character and no U+FFFE/U+FFFF (the
 * protocol discourages them; Mosquitto closes the connection on a packet that has one, e.g. a stack
 * trace's line breaks in a user property).
 */
export function isMqttText(text: string): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this looks for
  return !/[\u0000-\u001f\u007f-\u009f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

/** A core topic MQTT can carry as levels: no `/`, `+`, `#` or control characters, no leading `$`, well-formed text. */
export function isPlainTopic(topic: string): boolean {
  return topic.length > 0 && !/[/+#]/.test(topic) && !topic.startsWith('$') && isMqttText(topic) && !topic.split('.').includes('');
}

/** Why a core topic is refused, for errors that name it. */
export function topicProblem(topic: string): string {
  return `"${topic}" cannot be an MQTT topic ("."-separated non-empty levels without "/", "+", "#", control characters or a leading "$")`;
}

/** The MQTT topic of a core topic. */
export function mqttTopicOf(prefix: string | undefined, topic: string): string {
  const levels = topic.split('.').join('/');
  return prefix ? `${prefix}/${levels}` : levels;
}

/** The core topic of a received MQTT topic; undefined when it is not under the prefix. */
export function topicOf(prefix: string | undefined, mqttTopic: string): string | undefined {
  let rest = mqttTopic;
  if (prefix) {
    if (!mqttTopic.startsWith(`${prefix}/`)) return undefined;
    rest = mqttTopic.slice(prefix.length + 1);
  }
  return rest.split('/').join('.');
}

/**
 * The MQTT filter of a subscription. A core pattern's `*` is `+`; a `#` that is not the last level
 * (allowed in core patterns, not in MQTT) widens the filter to `#` at that level, and the
 * subscription matches each topic against the core pattern again (it does for every pattern, so
 * dead-letter topics stay out of patterns that do not name them).
 */
export function filterOf(prefix: string | undefined, topic: string, pattern: boolean): string {
  if (!pattern) return mqttTopicOf(prefix, topic);
  const levels: string[] = [];
  for (const segment of topic.split('.')) {
    if (segment === '#') {
      levels.push('#');
      break;
    }
    levels.push(segment === '*' ? '+' : segment);
  }
  const filter = levels.join('/');
  return prefix ? `${prefix}/${filter}` : filter;
}

/** A group name a shared subscription can carry: no `/`, `+`, `#`, NUL; not empty. */
export function isGroupName(group: string): boolean {
  return group.length > 0 && !/[/+#]/.test(group) && isMqttText(group);
}

/** The shared subscription of `group` on `filter`. */
export function sharedFilter(group: string, filter: string): string {
  return `$share/${group}/${filter}`;
}
