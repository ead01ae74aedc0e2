import type { RecoveringChannelModel } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { ConfirmPublisher, type PublisherContext } from '../src/publisher.js';

/**
 * The channel bookkeeping of the publisher, without a broker: the race between a reconnect's reset()
 * and a channel open that fails afterwards. (Publishing itself is tested against RabbitMQ.)
 */
describe('ConfirmPublisher channel opens', () => {
  it('a failed open from before a reset() does not drop the newer open: later publishes join it instead of opening a third channel', async () => {
    const opens: { resolve: (channel: unknown) => void; reject: (error: Error) => void }[] = [];
    const model = {
      createConfirmChannel: () => new Promise((resolve, reject) => opens.push({ resolve, reject })),
      createChannel: () => new Promise((resolve, reject) => opens.push({ resolve, reject })),
    } as unknown as RecoveringChannelModel;
    const publisher = new ConfirmPublisher({ model, options: { publishTimeoutMs: 5000 } } as unknown as PublisherContext);
    const link = (publisher as unknown as { publishLink(deadline: number, mode: 'confirm'): Promise<unknown> }).publishLink.bind(publisher);
    const deadline = Date.now() + 5000;

    const first = link(deadline, 'confirm').catch((error: unknown) => error);
    publisher.reset(); // the connection was lost while the first open was under way
    const second = link(deadline, 'confirm');
    expect(opens).toHaveLength(2);
    opens[0]!.reject(new Error('channel closed: connection lost'));
    expect(await first).toMatchObject({ message: 'channel closed: connection lost' });
    const third = link(deadline, 'confirm');
    expect(opens).toHaveLength(2); // joined the second open
    const channel = { on: () => channel };
    opens[1]!.resolve(channel);
    expect(await second).toBe(await third);
  });
});
