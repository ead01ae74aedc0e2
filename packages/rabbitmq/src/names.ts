import { utf8BytesIfOver } from '@switchboard/core/transport';
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this looks for
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/**
 * Why `name` cannot be a RabbitMQ routing key or queue name, or undefined when it can: AMQP carries
 * both as short strings (at most 255 bytes of UTF-8), and a control character makes a queue that
 * can be declared but not consumed from.
 */
export function amqpNameProblem(what: string, name: string): string | undefined {
  const bytes = utf8BytesIfOver(name, 255);
  if (bytes > 0) return `${what} ${JSON.stringify(name.slice(0, 40))}… is ${bytes} bytes of UTF-8: RabbitMQ takes at most 255`;
  if (CONTROL_CHARACTER.test(name)) return `${what} ${JSON.stringify(name)} holds a control character, which RabbitMQ names cannot`;
  return undefined;
}

/** Queue of a consumer group: the topic itself for the default group, `<topic>.<group>` otherwise. */
export function queueNameFor(topic: string, group: string): string {
  return group === '' || group === 'default' ? topic : `${topic}.${group}`;
}

/** Per-delay retry queue of a work queue: messages wait `delayMs` there, then dead-letter back. */
export function retryQueueName(queue: string, delayMs: number): string {
  return `${queue}.retry.${delayMs}`;
}

/** Exchange and queue where messages for `exchange` wait `delayMs` (delayed publishes). */
export function delayExchangeName(exchange: string, delayMs: number): string {
  // RabbitMQ reserves names starting with "amq." for itself.
  return `${exchange || 'default-exchange'}.delay.${delayMs}`;
}
