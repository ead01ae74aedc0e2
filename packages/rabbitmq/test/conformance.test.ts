import * as amqplib from 'amqplib';
import { afterAll } from 'vitest';
import { runConformanceSuite, type RawMessage, BrokerLink } from '@switchboard/core/testing';
import { queueNameFor, rabbitCapabilities } from '@switchboard/rabbitmq';
import { RABBITMQ_URL, testTransport } from './helpers.js';

/** A producer that does not use Switchboard: amqplib straight to the main exchange, headers as given. */
let raw: Promise<{ connection: amqplib.ChannelModel; channel: amqplib.ConfirmChannel }> | undefined;
afterAll(async () => {
  if (raw) await (await raw).connection.close().catch(() => undefined);
});
async function publishRaw(_transport: unknown, topic: string, message: RawMessage): Promise<void> {
  raw ??= (async () => {
    const connection = await amqplib.connect(RABBITMQ_URL);
    return { connection, channel: await connection.createConfirmChannel() };
  })();
  const { channel } = await raw;
  channel.publish('switchboard', topic, Buffer.from(message.body), { messageId: message.id, headers: { ...message.headers, ...(message.key ? { 'x-sb-key': message.key } : {}) }, persistent: true });
  await channel.waitForConfirms();
}

// maxMessageBytes 1 MiB: the suite's size-limit scenario pushes a message of about that size (the
// default, RabbitMQ's own 128 MiB max_message_size, would be too heavy for a test).
const maxMessageBytes = 1024 * 1024;
const modes = [
  { name: 'retryMode broker', options: { retryMode: 'broker' as const, maxMessageBytes } },
  // A window above the concurrency: deliveries wait in process for a handler slot (option `prefetch`).
  { name: 'retryMode in-process, prefetch 64', options: { retryMode: 'in-process' as const, prefetch: 64, maxMessageBytes } },
  // Untrusted producers: control headers signed and verified.
  { name: 'retryMode broker, signed control headers', options: { retryMode: 'broker' as const, signingKey: 'conformance-signing-key-0123456789', maxMessageBytes } },
];
/** Whether the group's queue still exists (checkQueue on a channel of its own: a missing queue closes the channel). */
async function ephemeralStateLeft(_transport: unknown, topic: string, group: string): Promise<boolean> {
  const connection = await amqplib.connect(RABBITMQ_URL);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    return await channel.checkQueue(queueNameFor(topic, group)).then(
      () => true,
      () => false,
    );
  } finally {
    await connection.close().catch(() => undefined);
  }
}

for (const mode of modes) {
  runConformanceSuite({
    name: `rabbitmq (${mode.name})`,
    capabilities: rabbitCapabilities(mode.options),
    createTransport: () => testTransport(mode.options),
    brokerLink: {
      broker: BrokerLink.addressOf(RABBITMQ_URL),
      createTransport: (link) => testTransport({ ...mode.options, url: link.urlThrough(RABBITMQ_URL), publishTimeoutMs: 2000, heartbeatSeconds: 1 }),
    },
    publishRaw,
    ephemeralStateLeft,
    readsControlHeaders: true,
    carriesGeneratedIds: 'the messageId property matches an unroutable return (basic.return) to its publish',
    waitMs: 15_000,
  });
}
