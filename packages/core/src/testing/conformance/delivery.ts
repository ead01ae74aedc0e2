import { expect, it } from 'vitest';
import { TransportPublisher } from '../../bus/bus.js';
import { bytesCodec, jsonCodec } from '../../ports/codec.js';
import { NonRetryableError } from '../../ports/errors.js';
import type { Message } from '../../ports/message.js';
import { Recorder } from '../recorder.js';
import type { ConformanceContext } from './context.js';

/** Delivery: capabilities as declared, payload/key/headers/id/timestamp intact, topic isolation, many publishers and subscribers. */
export function deliveryScenarios(context: ConformanceContext): void {
  const { caps, waitMs, timeout, groupOf, startFrom, openBus, topics } = context;
  it('declares the capabilities the adapter claims', { timeout }, async () => {
    const bus = await openBus();
    expect(bus.transport.capabilities).toEqual(caps);
    expect(caps.deliveryGuarantees).toContain(caps.defaultGuarantee);
  });

  it('delivers payload, key, headers, id and timestamp intact', { timeout }, async () => {
    const bus = await openBus();
    const [topic, rawTopic] = await topics('intact', 'intact-raw');
    const received = new Recorder<Message<{ text: string; n: number; nested: { list: number[] } }>>();
    const raw = new Recorder<Message<Uint8Array>>();
    await bus.subscriber.subscribe(topic!, (m) => received.add(m as never), { ...groupOf('g'), startFrom });
    await bus.subscriber.subscribe(rawTopic!, (m) => raw.add(m as never), { ...groupOf('g'), startFrom, codec: bytesCodec });
    const value = { text: '결제 완료 ✓', n: 42, nested: { list: [1, 2, 3] } };
    const headers = { 'trace-id': 'abc-123', 'x-unicode': '한국어' };
    const timestamp = Date.now() - 5000;
    const receipt = await bus.publisher.publish(topic!, { id: 'msg-intact-1', key: 'product-7', headers, value, timestamp });
    const bytes = new Uint8Array([0, 1, 2, 253, 254, 255]);
    await bus.publisher.publish(rawTopic!, { payload: bytes });
    expect(receipt.ids).toEqual(['msg-intact-1']);
    expect(receipt.status).toBe('delivered');
    const [message] = await received.waitFor(1, waitMs, 'messages');
    expect(message!.id).toBe('msg-intact-1');
    expect(message!.key).toBe('product-7');
    expect(message!.value).toEqual(value);
    expect(message!.headers).toMatchObject(headers);
    expect(message!.timestamp).toBe(timestamp);
    expect(message!.attempt).toBe(1);
    expect(message!.source.transport).toBe(bus.transport.kind);
    expect(message!.source.topic).toBe(topic);
    expect(Buffer.from(message!.payload).equals(Buffer.from(jsonCodec.encode(value)))).toBe(true);
    const [rawMessage] = await raw.waitFor(1, waitMs, 'raw messages');
    expect(Buffer.from(rawMessage!.value).equals(Buffer.from(bytes))).toBe(true);
  });

  it("envelope id 'given', timestamp 'broker': given ids and times travel, generated ids stay off the wire (the broker names the message), stamped times come from the broker, a dead letter carries the id it was delivered with", {
    timeout,
  }, async () => {
    const bus = await openBus(undefined, { envelope: { id: 'given', timestamp: 'broker' } });
    const [topic] = await topics('lean-ids');
    const reader = await context.openDeadLetters(bus, topic!);
    const received = new Recorder<Message>();
    await bus.subscriber.subscribe(
      topic!,
      (m) => {
        received.add(m);
        if (m.value === 'poison') throw new NonRetryableError('refused');
      },
      { ...groupOf('g'), startFrom },
    );
    const headers = { 'trace-id': 'abc-123' };
    const before = Date.now();
    const givenTime = before - 60_000;
    const receipt = await bus.publisher.publish(topic!, [
      { id: 'given-1', key: 'k-1', headers, value: 'given', timestamp: givenTime },
      { key: 'k-1', headers, value: 'generated' },
      { key: 'k-1', value: 'poison' },
    ]);
    const messages = await received.waitFor(3, waitMs, 'messages');
    const byValue = new Map(messages.map((m) => [m.value as string, m]));
    expect(byValue.get('given')).toMatchObject({ id: 'given-1', key: 'k-1', headers: expect.objectContaining(headers), timestamp: givenTime });
    const generated = byValue.get('generated')!;
    // timestamp 'broker': a stamped time comes from the broker's field (RabbitMQ's has seconds) or its clock.
    expect(generated.timestamp).toBeGreaterThanOrEqual(before - 1000);
    expect(generated.timestamp).toBeLessThanOrEqual(Date.now() + 1000);
    expect(generated).toMatchObject({ key: 'k-1', headers: expect.objectContaining(headers) });
    expect(typeof generated.id).toBe('string');
    expect(generated.id.length).toBeGreaterThan(0);
    // Not the id publish() returned: that one stayed in the publishing process (unless the target
    // says why its configuration carries it).
    if (context.target.carriesGeneratedIds) expect(generated.id).toBe(receipt.ids[1]);
    else expect(generated.id).not.toBe(receipt.ids[1]);
    const poison = byValue.get('poison')!;
    expect(new Set([generated.id, poison.id, 'given-1']).size).toBe(3);
    const [letter] = await reader.letters.waitFor(1, waitMs, 'the dead letter');
    expect(letter!.id).toBe(poison.id);
    expect(() => new TransportPublisher(bus.transport, { envelope: { topics: { [topic!]: { id: 'sometimes' as never } } } })).toThrowError(/envelope\.topics\..*\.id/);
  });

  it('keeps topics isolated', { timeout }, async () => {
    const bus = await openBus();
    const [a, b] = await topics('iso-a', 'iso-b');
    const onA = new Recorder<Message>();
    const onB = new Recorder<Message>();
    await bus.subscriber.subscribe(a!, (m) => onA.add(m), { ...groupOf('g'), startFrom });
    await bus.subscriber.subscribe(b!, (m) => onB.add(m), { ...groupOf('g'), startFrom });
    await bus.publisher.publish(a!, [{ value: 'a1' }, { value: 'a2' }, { value: 'a3' }]);
    await bus.publisher.publish(b!, [{ value: 'b1' }, { value: 'b2' }]);
    await onA.waitFor(3, waitMs);
    await onB.waitFor(2, waitMs);
    expect(onA.items.map((m) => m.value).sort()).toEqual(['a1', 'a2', 'a3']);
    expect(onB.items.map((m) => m.value).sort()).toEqual(['b1', 'b2']);
    expect(onA.items.every((m) => m.source.topic === a)).toBe(true);
  });

  it('receives everything from many concurrent publishers', { timeout }, async () => {
    const bus = await openBus();
    const second = await openBus();
    const [topic] = await topics('many-pub');
    const received = new Recorder<Message>();
    await bus.subscriber.subscribe(topic!, (m) => received.add(m), { ...groupOf('g'), startFrom, concurrency: 4 });
    const publishers = 10;
    const perPublisher = 20;
    const sent: string[] = [];
    await Promise.all(
      Array.from({ length: publishers }, async (_, p) => {
        const via = p % 2 === 0 ? bus : second;
        for (let i = 0; i < perPublisher; i++) {
          const id = `p${p}-m${i}`;
          sent.push(id);
          await via.publisher.publish(topic!, { id, value: { p, i } });
        }
      }),
    );
    await received.waitFor(publishers * perPublisher, waitMs, 'messages');
    const ids = received.items.map((m) => m.id);
    expect(new Set(ids)).toEqual(new Set(sent));
    expect(ids.length).toBe(sent.length); // no duplicates without a restart
  });

  it('gives every message to each of many concurrent subscribers (one group each)', { timeout }, async () => {
    const bus = await openBus();
    const [topic] = await topics('many-sub');
    const recorders = Array.from({ length: 4 }, () => new Recorder<Message>());
    await Promise.all(recorders.map((r, i) => bus.subscriber.subscribe(topic!, (m) => r.add(m), { ...groupOf(`group-${i}`), startFrom })));
    const messages = Array.from({ length: 20 }, (_, i) => ({ id: `m-${i}`, value: i }));
    await bus.publisher.publish(topic!, messages);
    for (const r of recorders) {
      await r.waitFor(20, waitMs);
      expect(new Set(r.items.map((m) => m.id)).size).toBe(20);
    }
  });
}
