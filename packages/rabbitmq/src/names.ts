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
