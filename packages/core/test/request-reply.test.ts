import { describe, expect, it } from 'vitest';
import { ConfigError, createBus, createMemoryTransport, createRequester, type Publisher, RequestTimeoutError, serveRequests } from '../src/index.js';
import type { TransportPublishOptions } from '../src/transport.js';
import { gate, waitUntil } from '../src/testing/index.js';

describe('request/reply (memory transport)', () => {
  it('1,000 concurrent requests with 1% timing out: 990 replies, 10 timeouts, their late replies dropped, no timer or subscription left', async () => {
    const bus = createBus({ transport: createMemoryTransport() });
    const held = gate();
    await serveRequests<{ n: number }>(
      bus,
      'quotes',
      async (m) => {
        if (m.value.n % 100 === 0) await held.promise; // 10 of 1,000: answered only after their requester gave up
        return { price: m.value.n + 0.5 };
      },
      { group: 'pricing', concurrency: 64, ordering: 'none' },
    );
    const requester = await createRequester(bus);
    const outcomes = await Promise.allSettled(Array.from({ length: 1000 }, (_, n) => requester.request<{ price: number }>('quotes', { n }, { timeoutMs: n % 100 === 0 ? 300 : 10_000 })));
    const replies = outcomes.flatMap((o, n) => (o.status === 'fulfilled' ? [[n, o.value.value.price]] : []));
    const timeouts = outcomes.flatMap((o, n) => (o.status === 'rejected' ? [[n, (o.reason as Error).constructor]] : []));
    expect(replies).toHaveLength(990);
    expect(replies.every(([n, price]) => price === n! + 0.5)).toBe(true);
    expect(timeouts).toEqual(Array.from({ length: 10 }, (_, i) => [i * 100, RequestTimeoutError]));
    expect(requester.pending()).toBe(0); // every timer cleared with its entry
    held.open();
    await waitUntil(() => requester.lateReplies() === 10, 5000, 'the ten late replies');
    await requester.close();
    expect(bus.subscriptions().map((s) => s.topic)).toEqual(['quotes']);
    await bus.close();
  });

  it('close rejects what is pending at once, and a request that cannot be published fails without waiting for its timeout', async () => {
    const bus = createBus({ transport: createMemoryTransport() });
    const requester = await createRequester(bus);
    const unanswered = requester.request('nobody-serves-this', { n: 1 }, { timeoutMs: 60_000 });
    await waitUntil(() => requester.pending() === 1, 1000, 'the pending request');
    await requester.close();
    await expect(unanswered).rejects.toThrowError(/requester closed before the reply came/);
    await expect(requester.request('quotes', {}, { timeoutMs: 0 })).rejects.toThrowError(/closed/);
    const other = await createRequester(bus, { id: 'checkout-1' });
    expect(other.replyTopic).toBe('sb.reply.checkout-1');
    await expect(other.request('quotes', {}, { timeoutMs: 0 })).rejects.toThrowError(/timeoutMs: an integer from 1 to 600000/);
    await expect(createRequester(bus, { id: '../orders' })).rejects.toThrowError(/requester id/);
    await expect(other.request('quotes', {}, undefined as never)).rejects.toThrowError(ConfigError);
    // A second live requester with the same id would share the reply group (and get the other's replies).
    await expect(createRequester(bus, { id: 'checkout-1' })).rejects.toThrowError(/id: a requester with id "checkout-1" is open on this bus already/);
    await other.close();
    const again = await createRequester(bus, { id: 'checkout-1' }); // closed: the id is free again
    await again.close();
    await bus.close();
  });

  it("an error reply that arrives before the request's publish returned rejects the request, and is never an unhandled rejection", async () => {
    const bus = createBus({ transport: createMemoryTransport() });
    await serveRequests(
      bus,
      'fails',
      () => {
        throw new TypeError('nope');
      },
      { group: 'g' },
    );
    // A publisher whose confirm comes 100 ms after the message went out (a broker slower to confirm than the replier to answer).
    const slowConfirm: Publisher = {
      publish: (async (topic: string, message: never) => {
        const receipt = await bus.publisher.publish(topic, message);
        await new Promise((resolve) => setTimeout(resolve, 100));
        return receipt;
      }) as Publisher['publish'],
      close: () => bus.publisher.close(),
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const requester = await createRequester({ transport: bus.transport, subscriber: bus.subscriber, publisher: slowConfirm });
      await expect(requester.request('fails', {}, { timeoutMs: 5000 })).rejects.toMatchObject({ name: 'RemoteError', remoteName: 'TypeError', message: 'nope' });
      await new Promise((resolve) => setTimeout(resolve, 50)); // let Node report an unhandled rejection, were there one
      expect(unhandled).toEqual([]);
      await requester.close();
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await bus.close();
    }
  });

  it('publishes to a reply topic (sb.reply.*) with existingOnly, so no transport creates it; other topics without', async () => {
    const transport = createMemoryTransport();
    const seen: [string, TransportPublishOptions][] = [];
    const publish = transport.publish.bind(transport);
    transport.publish = (topic, messages, options) => {
      seen.push([topic, options]);
      return publish(topic, messages, options);
    };
    const bus = createBus({ transport, publisher: { noReceivers: 'ignore' } });
    await bus.publisher.publish('sb.reply.abc', { value: 1 });
    await bus.publisher.publish('orders', { value: 1 });
    await bus.publisher.publish('sb.replyish', { value: 1 });
    expect(seen.map(([topic, options]) => [topic, options.existingOnly === true])).toEqual([
      ['sb.reply.abc', true],
      ['orders', false],
      ['sb.replyish', false],
    ]);
    await bus.close();
  });
});
