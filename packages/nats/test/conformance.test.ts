import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll } from 'vitest';
import { runConformanceSuite, type RawMessage, BrokerLink } from '@switchboard/core/testing';
import { durableName, filterOf, natsCapabilities } from '@switchboard/nats';
import { NATS_URL, testTransport } from './helpers.js';

/**
 * A producer that does not use Switchboard: a JetStream publish with the message id as Nats-Msg-Id
 * and the headers as given (forged x-sb-* included). A header NATS cannot carry (a name with ":" or
 * spaces, a value with line breaks) is left out, as a raw NATS producer could not send it.
 */
let raw: NatsConnection | undefined;
afterAll(() => raw?.close());
async function publishRaw(_transport: unknown, topic: string, message: RawMessage): Promise<void> {
  raw ??= await connect({ servers: NATS_URL });
  const headers = natsHeaders();
  headers.set('Nats-Msg-Id', `${topic}:${message.id}`);
  headers.set('x-sb-id', message.id);
  if (message.key !== undefined) headers.set('x-sb-key', message.key);
  for (const [name, value] of Object.entries(message.headers)) {
    try {
      headers.set(name, value);
    } catch {
      // not a NATS header: a raw producer cannot send it
    }
  }
  await jetstream(raw).publish(`sbtest.${topic}`, message.body, { headers });
}

const maxMessageBytes = 1024 * 1024;
// partition (the default) and none (retries go back to the server: nak with the delay); key runs the lanes partition does.
for (const ordering of ['partition', 'none'] as const) {
  runConformanceSuite({
    name: `nats (ordering ${ordering})`,
    capabilities: natsCapabilities({ maxMessageBytes }),
    createTransport: () => testTransport({ maxMessageBytes, ackWaitMs: 3000 }),
    brokerLink: {
      broker: BrokerLink.addressOf(NATS_URL),
      createTransport: (link) => testTransport({ servers: link.urlThrough(NATS_URL), maxMessageBytes, ackWaitMs: 3000, publishTimeoutMs: 2000, pingIntervalMs: 1000 }),
    },
    publishRaw,
    ephemeralStateLeft: async (_transport, topic, group) => {
      raw ??= await connect({ servers: NATS_URL });
      const jsm = await jetstreamManager(raw);
      const consumer = await jsm.consumers.info('SB_TEST', durableName(group, filterOf('sbtest', topic, false))).then(
        () => true,
        () => false,
      );
      const stored = (await jsm.streams.info('SB_TEST', { subjects_filter: filterOf('sbtest', topic, false) })).state.subjects ?? {};
      return consumer || Object.keys(stored).length > 0;
    },
    defaults: { ordering },
    waitMs: 10_000,
  });
}
