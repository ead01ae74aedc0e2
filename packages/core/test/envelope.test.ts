import { describe, expect, it } from 'vitest';
import { ConfigError, createBus, createMemoryTransport, type Message, type Transport } from '@switchboard/core';
import type { TransportMessage } from '@switchboard/core/transport';
import { Recorder } from '@switchboard/core/testing';

/** The memory transport, recording what each publish handed it (what a broker adapter would put on the wire). */
function recording(): { transport: Transport; sent: TransportMessage[] } {
  const inner = createMemoryTransport();
  const sent: TransportMessage[] = [];
  const transport = Object.create(inner) as Transport;
  transport.publish = (topic, messages, options) => {
    sent.push(...messages);
    return inner.publish(topic, messages, options);
  };
  return { transport, sent };
}

describe("the envelope: ids on the wire only when given (envelope.id 'given')", () => {
  it('by default every message carries its id; a generated one reaches the handler as publish() returned it', async () => {
    const { transport, sent } = recording();
    const bus = createBus({ transport, publisher: { coalesce: false } });
    const received = new Recorder<Message>();
    await bus.subscriber.subscribe('orders', (m) => received.add(m), { group: 'g' });
    const receipt = await bus.publisher.publish('orders', { value: 1 });
    const [message] = await received.waitFor(1, 2000);
    expect(message!.id).toBe(receipt.ids[0]);
    expect(sent[0]!.localId).toBeUndefined();
    await bus.close();
  });

  it("with id 'given' for the bus and 'always' for one topic: only generated ids of the other topics stay local", async () => {
    const { transport, sent } = recording();
    const bus = createBus({ transport, publisher: { coalesce: false, envelope: { id: 'given', topics: { audit: { id: 'always' } } } } });
    const orders = new Recorder<Message>();
    const audit = new Recorder<Message>();
    await bus.subscriber.subscribe('orders', (m) => orders.add(m), { group: 'g' });
    await bus.subscriber.subscribe('audit', (m) => audit.add(m), { group: 'g' });
    const generated = await bus.publisher.publish('orders', [{ value: 1 }, { value: 2 }]);
    await bus.publisher.publish('orders', { id: 'mine', value: 3 });
    const audited = await bus.publisher.publish('audit', { value: 4 });
    expect(sent.map((m) => m.localId)).toEqual([true, true, undefined, undefined]);
    const delivered = await orders.waitFor(3, 2000);
    // The memory broker names what came without an id, like Kafka's offsets: <topic>-<sequence>.
    expect(delivered.map((m) => m.id)).toEqual([expect.stringMatching(/^orders-\d+$/), expect.stringMatching(/^orders-\d+$/), 'mine']);
    expect(delivered.map((m) => m.id)).not.toContain(generated.ids[0]);
    const [auditMessage] = await audit.waitFor(1, 2000);
    expect(auditMessage!.id).toBe(audited.ids[0]);
    await bus.close();
  });

  it('refuses an unknown choice at startup, naming the field', () => {
    const transport = createMemoryTransport();
    expect(() => createBus({ transport, publisher: { envelope: { id: 'never' as never } } })).toThrowError(ConfigError);
    expect(() => createBus({ transport, publisher: { envelope: { id: 'never' as never } } })).toThrowError(/envelope\.id/);
    expect(() => createBus({ transport, publisher: { envelope: { ids: 'given' } as never } })).toThrowError(/envelope/);
  });
});
