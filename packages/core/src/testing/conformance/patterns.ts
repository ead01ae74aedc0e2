import { expect, it } from 'vitest';
import { createRequester, ReplyHeaders, serveRequests } from '../../bus/request-reply.js';
import { DeadLetterHeaders } from '../../pipeline/dead-letter.js';
import { NonRetryableError, RequestTimeoutError } from '../../ports/errors.js';
import type { BusEventType } from '../../ports/events.js';
import type { Message } from '../../ports/message.js';
import { gate, Recorder, waitUntil } from '../recorder.js';
import type { ConformanceContext } from './context.js';

/** The events that end a publish: it reached someone, nobody, or failed. */
const PUBLISH_OUTCOMES: readonly BusEventType[] = ['published', 'no-receivers', 'publish-failed'];

/** Messaging patterns on top of the pipeline: request/reply; batch handlers (partial failures, per-key order), or their refusal. */
export function patternsScenarios(context: ConformanceContext): void {
  const { caps, waitMs, timeout, groupOf, startFrom, openBus, openDeadLetters, topics, fastRetry, onCleanup } = context;

  it(`request/reply: 50 concurrent requests each get their reply; a throwing replier answers with an error; a slow one times out, its late reply dropped; a forged reply-to is dead-lettered; close leaves nothing${context.target.ephemeralStateLeft ? ' (on the broker either), and no reply brings a reply topic back or makes one' : ''}`, {
    timeout,
  }, async () => {
    const bus = await openBus();
    const [topic] = await topics('rpc');
    const reader = await openDeadLetters(bus, topic!);
    const slow = gate();
    const pastClose = gate();
    const heldPastClose = new Recorder<string>();
    await serveRequests<{ n: number }>(
      bus,
      topic!,
      async (m) => {
        if (m.value.n === -1) throw new TypeError('negative quantity');
        if (m.value.n === -2) await slow.promise; // held until the requester gave up
        if (m.value.n === -3) {
          heldPastClose.add(m.id);
          await pastClose.promise; // answered after its requester closed
        }
        return { doubled: m.value.n * 2 };
      },
      { ...groupOf('rpc'), startFrom, concurrency: 8 },
    );
    const requester = await createRequester(bus);
    onCleanup(() => requester.close());
    const replies = await Promise.all(Array.from({ length: 50 }, (_, n) => requester.request<{ doubled: number }>(topic!, { n }, { timeoutMs: waitMs })));
    expect(replies.map((r) => r.value.doubled)).toEqual(Array.from({ length: 50 }, (_, n) => n * 2));
    await expect(requester.request(topic!, { n: -1 }, { timeoutMs: waitMs })).rejects.toMatchObject({ name: 'RemoteError', remoteName: 'TypeError', message: 'negative quantity' });
    await expect(requester.request(topic!, { n: -2 }, { timeoutMs: 200 })).rejects.toBeInstanceOf(RequestTimeoutError);
    slow.open();
    await waitUntil(() => requester.lateReplies() === 1, waitMs, 'the late reply');
    expect(requester.pending()).toBe(0);

    // x-reply-to is the publisher's word: a reply topic or nothing.
    await bus.publisher.publish(topic!, { id: 'forged-reply-to', headers: { [ReplyHeaders.replyTo]: topic!, [ReplyHeaders.correlationId]: 'c-1' }, value: { n: 1 } });
    const [letter] = await reader.letters.waitFor(1, waitMs, 'the forged request dead-lettered');
    expect(letter!.id).toBe('forged-reply-to');
    expect(letter!.headers[DeadLetterHeaders.reason]).toBe('non-retryable');
    expect(letter!.headers[DeadLetterHeaders.errorMessage]).toContain('not a reply topic');

    const answeredLate = requester.request(topic!, { n: -3 }, { timeoutMs: waitMs }).catch((error: unknown) => error);
    await heldPastClose.waitFor(1, waitMs, 'the request to be answered after close');
    await requester.close();
    expect(await answeredLate).toMatchObject({ name: 'ClosedError' });
    await expect(requester.request(topic!, { n: 1 }, { timeoutMs: 100 })).rejects.toThrowError(/closed/);
    expect(bus.subscriptions().map((s) => s.topic)).not.toContain(requester.replyTopic);
    const { ephemeralStateLeft } = context.target;
    if (ephemeralStateLeft) {
      expect(await ephemeralStateLeft(bus.transport, requester.replyTopic, requester.replyTopic)).toBe(false);
      // A reply never brings a reply topic back or makes one (only a requester's subscription does):
      // neither the reply sent after its requester closed, nor one to a reply topic no requester made
      // (x-reply-to is a header any producer sets). Once its publish has ended, the broker keeps
      // nothing under that name.
      // Each publish ends well: `published` once (after `no-receivers` where the transport counts
      // receivers; PostgreSQL stores the row and does not), never `publish-failed` (a failed reply
      // publish would retry the request, then dead-letter it, for a requester that is only gone).
      // Counted from before it was sent: the requester's reply topic already has its answered
      // requests' `published`.
      const outcomes = (replyTopic: string) => PUBLISH_OUTCOMES.map((type) => bus.counts.count(type, replyTopic));
      const replyPublishEnded = async (replyTopic: string, send: () => unknown) => {
        const before = outcomes(replyTopic);
        const sinceSent = () => Object.fromEntries(PUBLISH_OUTCOMES.map((type, i) => [type, bus.counts.count(type, replyTopic) - before[i]!]));
        await send();
        await waitUntil(() => Object.values(sinceSent()).some((n) => n > 0), waitMs, `the reply to ${replyTopic} published or refused`);
        expect(sinceSent()).toMatchObject({ published: 1, 'publish-failed': 0 });
        expect(sinceSent()['no-receivers']).toBeLessThanOrEqual(1);
      };
      await replyPublishEnded(requester.replyTopic, () => pastClose.open());
      expect(await ephemeralStateLeft(bus.transport, requester.replyTopic, requester.replyTopic)).toBe(false);
      const forged = `sb.reply.forged${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
      await replyPublishEnded(forged, () => bus.publisher.publish(topic!, { headers: { [ReplyHeaders.replyTo]: forged, [ReplyHeaders.correlationId]: 'c-2' }, value: { n: 2 } }));
      expect(await ephemeralStateLeft(bus.transport, forged, forged)).toBe(false);
    } else pastClose.open();
  });
  if (caps.delayedDelivery) {
    it('delayed delivery: delayMs and deliverAt hold a message until its time, no earlier; lateness p50/p99 printed', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('delayed');
      const arrivals = new Map<string, number>();
      const arrived = new Recorder<string>();
      await bus.subscriber.subscribe(
        topic!,
        (m) => {
          arrivals.set(m.id, Date.now());
          arrived.add(m.id);
        },
        { ...groupOf('delayed'), startFrom, concurrency: 16, ordering: caps.orderings.includes('none') ? 'none' : caps.orderings[0]! },
      );
      const due = new Map<string, number>();
      const sent = Date.now();
      await bus.publisher.publish(topic!, { id: 'later', value: 1 }, { delayMs: 1000 });
      due.set('later', sent + 1000);
      await bus.publisher.publish(
        topic!,
        [
          { id: 'at-1', value: 2 },
          { id: 'at-2', value: 3 },
        ],
        { deliverAt: new Date(sent + 1500) },
      );
      due.set('at-1', sent + 1500);
      due.set('at-2', sent + 1500);
      await bus.publisher.publish(topic!, { id: 'now', value: 0 });
      // 60 more, due 300 to 1,300 ms from their publish (ten delays: one broker-side queue or timer per delay).
      for (let i = 0; i < 60; i++) {
        const delayMs = 300 + (i % 10) * 100;
        const at = Date.now();
        await bus.publisher.publish(topic!, { id: `spread-${i}`, value: i }, { delayMs });
        due.set(`spread-${i}`, at + delayMs);
      }
      await arrived.waitFor(64, waitMs, 'the delayed messages');
      expect(arrivals.get('now')!).toBeLessThan(due.get('later')!);
      const lateness = [...due].map(([id, at]) => arrivals.get(id)! - at).sort((a, b) => a - b);
      expect(lateness[0]!).toBeGreaterThanOrEqual(-2); // never early (timers may round down by a millisecond)
      const pick = (q: number) => lateness[Math.min(lateness.length - 1, Math.floor(q * lateness.length))]!;
      console.log(`[measure] ${context.target.name} delayed delivery lateness over ${lateness.length} messages: p50 ${pick(0.5)} ms, p99 ${pick(0.99)} ms, max ${lateness.at(-1)} ms`);
    });
  } else {
    it('delayed delivery: refused at publish, naming delayMs (capability delayedDelivery not declared)', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('delayed-refused');
      await expect(bus.publisher.publish(topic!, { value: 1 }, { delayMs: 100 })).rejects.toThrowError(/delayMs: transport ".*" cannot hold a message for later delivery/);
      await expect(bus.publisher.publish(topic!, { value: 1 }, { deliverAt: Date.now() + 100 })).rejects.toThrowError(/deliverAt: transport/);
    });
  }

  const batches = caps.orderings.includes('key') || caps.orderings.includes('none');

  if (!batches) {
    it(`batch handlers: refused at subscribe, naming batch (orderings ${caps.orderings.join(', ')}: one message at a time)`, { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('batch-refused');
      await expect(bus.subscriber.subscribeBatch(topic!, () => undefined, { ...groupOf('b'), batch: { maxSize: 4, maxWaitMs: 100 } })).rejects.toThrowError(
        /batch: transport ".*" handles one message at a time/,
      );
    });
    return;
  }

  it('batch handlers: up to maxSize messages per call; a reported failure is retried alone (joining a later batch) or dead-lettered; metrics per message', { timeout }, async () => {
    const bus = await openBus();
    const [topic] = await topics('batch');
    const reader = await openDeadLetters(bus, topic!);
    const sizes: number[] = [];
    const handled = new Recorder<Message<{ n: number }>>();
    await bus.subscriber.subscribeBatch<{ n: number }>(
      topic!,
      (messages) => {
        sizes.push(messages.length);
        const failed: { message: Message<{ n: number }>; error: unknown }[] = [];
        for (const m of messages) {
          if (m.value.n === 5) failed.push({ message: m, error: new NonRetryableError('order 5 is malformed') });
          else if (m.value.n === 7 && m.attempt === 1) failed.push({ message: m, error: new Error('stock service timed out') });
          else handled.add(m);
        }
        return { failed };
      },
      { ...groupOf('batch'), startFrom, retry: fastRetry, batch: { maxSize: 4, maxWaitMs: 300 } },
    );
    await bus.publisher.publish(
      topic!,
      Array.from({ length: 12 }, (_, n) => ({ id: `batch-${n}`, key: `k${n}`, value: { n } })),
    );
    const [letter] = await reader.letters.waitFor(1, waitMs, 'the dead letter');
    await handled.waitFor(11, waitMs, 'handled messages');
    expect(letter!.id).toBe('batch-5');
    expect(handled.items.map((m) => m.value.n).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]);
    expect(handled.items.find((m) => m.value.n === 7)!.attempt).toBe(2);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4);
    await bus.counts.waitFor('dead-lettered', 1);
    await bus.counts.waitFor('success', 11); // reported once each message's handler call settled
    expect(bus.counts.count('success')).toBe(11);
    expect(bus.counts.count('retry-attempt')).toBe(1);
    expect(bus.counts.count('final-failure')).toBe(1);
  });

  if (caps.perKeyOrder && caps.orderings.includes('key')) {
    it('batch handlers: per-key order kept (a key has at most one message per batch); a thrown error fails the whole batch, retried', { timeout }, async () => {
      const bus = await openBus();
      const [topic] = await topics('batch-order');
      const seen = new Map<string, number[]>();
      const handled = new Recorder<string>();
      let thrown = false;
      let keyTwiceInABatch = false;
      await bus.subscriber.subscribeBatch<{ seq: number }>(
        topic!,
        (messages) => {
          const keys = messages.map((m) => m.key);
          if (new Set(keys).size !== keys.length) keyTwiceInABatch = true; // asserted below (a throw here would only retry)
          if (!thrown && messages.length > 1) {
            thrown = true;
            throw new Error('database unavailable');
          }
          for (const m of messages) {
            seen.set(m.key!, [...(seen.get(m.key!) ?? []), m.value.seq]);
            handled.add(m.id);
          }
        },
        { ...groupOf('batch-order'), startFrom, retry: fastRetry, batch: { maxSize: 8, maxWaitMs: 200 } },
      );
      const keys = ['a', 'b', 'c', 'd'];
      await bus.publisher.publish(
        topic!,
        Array.from({ length: 40 }, (_, i) => ({ id: `o-${i}`, key: keys[i % 4]!, value: { seq: Math.floor(i / 4) } })),
      );
      await handled.waitFor(40, waitMs, 'handled messages');
      expect(thrown).toBe(true);
      expect(keyTwiceInABatch).toBe(false);
      for (const key of keys) expect(seen.get(key)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    });
  }

  it('batch handlers: invalid options fail at subscribe, naming the field', { timeout }, async () => {
    const bus = await openBus();
    const [topic] = await topics('batch-options');
    await expect(bus.subscriber.subscribeBatch(topic!, () => undefined, { ...groupOf('b'), batch: { maxSize: 0, maxWaitMs: 10 } })).rejects.toThrowError(/batch\.maxSize/);
    await expect(bus.subscriber.subscribeBatch(topic!, () => undefined, { ...groupOf('b'), concurrency: 2, batch: { maxSize: 4, maxWaitMs: 10 } })).rejects.toThrowError(
      /batch\.maxSize: larger than concurrency \(2\)/,
    );
  });
}
