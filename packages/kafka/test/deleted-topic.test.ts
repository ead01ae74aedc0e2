import { describe, expect, it } from 'vitest';
import { ClosedError, ReplyHeaders, createBus, createRequester, serveRequests } from '@switchboard/core';
import { Recorder, uniqueName } from '@switchboard/core/testing';
import { rawKafka, testTransport } from './helpers.js';

/** Whether `topic` exists, asked of the cluster with a client of the test's own. */
async function topicExists(topic: string): Promise<boolean> {
  const admin = rawKafka().admin();
  await admin.connect();
  try {
    return (await admin.listTopics()).includes(topic);
  } finally {
    await admin.disconnect();
  }
}

describe('kafka publishing after a topic it published to was deleted', () => {
  it('a closed requester deletes its reply topic; the same bus still publishes to a topic new to it (kafkajs asked for the deleted topic in every metadata lookup)', async () => {
    const bus = createBus({ transport: await testTransport() });
    try {
      const topic = uniqueName('sb-kafka.deleted');
      await serveRequests<{ n: number }>(bus, `${topic}.rpc`, (m) => ({ doubled: m.value.n * 2 }), { group: 'rpc' });
      const requester = await createRequester(bus);
      expect((await requester.request<{ doubled: number }>(`${topic}.rpc`, { n: 21 }, { timeoutMs: 20_000 })).value.doubled).toBe(42);
      await requester.close(); // deletes the reply topic this bus's producer replied to
      const received = new Recorder<string>();
      await bus.subscriber.subscribe(`${topic}.after`, (m) => received.add(m.id), { group: 'after' });
      await bus.publisher.publish(`${topic}.after`, { id: 'after-delete', value: 1 });
      expect(await received.waitFor(1, 20_000)).toEqual(['after-delete']);
    } finally {
      await bus.close();
    }
  }, 60_000);

  it('a reply never creates its topic: not after the requester closed (deleted), nor for an x-reply-to no requester made (a header any producer sets)', async () => {
    const noReceivers = new Recorder<string>();
    const bus = createBus({ transport: await testTransport(), observer: { onEvent: (event) => event.type === 'no-receivers' && noReceivers.add(event.topic) } });
    try {
      const topic = uniqueName('sb-kafka.late-reply');
      let releaseReply!: () => void;
      const replyMayGo = new Promise<void>((resolve) => (releaseReply = resolve));
      const handled = new Recorder<string>();
      await serveRequests<{ n: number }>(
        bus,
        `${topic}.rpc`,
        async (m) => {
          handled.add(m.headers[ReplyHeaders.replyTo]!);
          if (m.value.n === 1) await replyMayGo; // the late one: answered after its requester closed
          return { doubled: m.value.n * 2 };
        },
        { group: 'rpc' },
      );
      const requester = await createRequester(bus);
      expect(await topicExists(requester.replyTopic)).toBe(true);
      const late = requester.request(`${topic}.rpc`, { n: 1 }, { timeoutMs: 20_000 }).catch((error: unknown) => error);
      await handled.waitFor(1, 20_000);
      await requester.close(); // deletes its reply topic
      expect(await late).toBeInstanceOf(ClosedError);
      expect(await topicExists(requester.replyTopic)).toBe(false);
      releaseReply();
      expect(await noReceivers.waitFor(1, 20_000)).toEqual([requester.replyTopic]);
      expect(await topicExists(requester.replyTopic)).toBe(false);

      // A request whose x-reply-to names a reply topic nobody created.
      const hostile = `sb.reply.${uniqueName('hostile').replace(/[^A-Za-z0-9_-]/g, '')}`;
      await bus.publisher.publish(`${topic}.rpc`, { value: { n: 2 }, headers: { [ReplyHeaders.replyTo]: hostile, [ReplyHeaders.correlationId]: 'c-1' } });
      expect(await noReceivers.waitFor(2, 20_000)).toEqual([requester.replyTopic, hostile]);
      expect(await topicExists(hostile)).toBe(false);
    } finally {
      await bus.close();
    }
  }, 90_000);
});
