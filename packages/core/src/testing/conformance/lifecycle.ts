import { expect, it } from 'vitest';
import { ClosedError, NonRetryableError } from '../../ports/errors.js';
import type { Message } from '../../ports/message.js';
import { Recorder, gate, waitUntil } from '../recorder.js';
import { testTracing } from '../tracing.js';
import type { ConformanceContext } from './context.js';

/** Lifecycle: close and drain let in-flight work finish; trace context propagates. */
export function lifecycleScenarios(context: ConformanceContext): void {
  const { caps, waitMs, timeout, groupOf, startFrom, openBus, openDeadLetters, topics } = context;
  it('close lets in-flight handlers finish (and acknowledges them)', { timeout }, async () => {
    const bus = await openBus();
    const [topic] = await topics('close');
    const release = gate();
    const started = new Recorder<string>();
    const finished = new Recorder<string>();
    const subscription = await bus.subscriber.subscribe(
      topic!,
      async (m) => {
        started.add(m.id);
        await release.promise;
        finished.add(m.id);
      },
      { ...groupOf('close'), startFrom },
    );
    await bus.publisher.publish(topic!, { id: 'slow', value: 1 });
    await started.waitFor(1, waitMs);
    let closed = false;
    const closing = subscription.close().then(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(false); // still waiting for the handler
    release.open();
    await closing;
    expect(finished.items).toEqual(['slow']);
    await bus.counts.waitFor('success', 1);
    if (caps.durableGroups && caps.acknowledgements) {
      // It was acknowledged: a new member of the group gets the next message, not 'slow' again.
      const again = new Recorder<string>();
      await bus.subscriber.subscribe(topic!, (m) => again.add(m.id), { ...groupOf('close'), startFrom });
      await bus.publisher.publish(topic!, { id: 'next', value: 2 });
      await again.waitFor(1, waitMs);
      expect(again.items).toEqual(['next']);
    }
  });

  it('close while a subscribe is under way: the subscribe rejects with ClosedError and nothing is handled afterwards (it resolved and went on handling on three transports)', { timeout }, async () => {
    const bus = await openBus();
    const [topic] = await topics('close-subscribing');
    const handled = new Recorder<string>();
    const subscribing = bus.subscriber.subscribe(topic!, (m) => handled.add(m.id), { ...groupOf('closed'), startFrom });
    const closing = bus.close();
    await expect(subscribing).rejects.toBeInstanceOf(ClosedError);
    await closing;
    // A witness on another bus receives what is published next; the closed subscription must not.
    const other = await openBus();
    const witness = new Recorder<string>();
    await other.subscriber.subscribe(topic!, (m) => witness.add(m.id), { ...groupOf('witness'), startFrom });
    await other.publisher.publish(topic!, { id: 'after-close', value: 1 });
    await witness.waitFor(1, waitMs, 'the witness');
    expect(handled.items).toEqual([]);
  });

  it("propagates the W3C trace context: the consumer span joins the publisher's trace, dead letters keep it", { timeout }, async () => {
    const { exporter, tracer } = testTracing();
    const bus = await openBus();
    const [topic] = await topics('trace');
    const reader = await openDeadLetters(bus, topic!);
    const got = new Recorder<Message<{ poison: boolean }>>();
    await bus.subscriber.subscribe<{ poison: boolean }>(
      topic!,
      (m) => {
        got.add(m);
        if (m.value.poison) throw new NonRetryableError('bad');
      },
      { ...groupOf('g'), startFrom },
    );
    let traceId = '';
    await tracer.startActiveSpan('checkout', async (span) => {
      traceId = span.spanContext().traceId;
      await bus.publisher.publish(topic!, [
        { id: 'traced', value: { poison: false } },
        { id: 'traced-poison', value: { poison: true } },
      ]);
      span.end();
    });
    await got.waitFor(2, waitMs);
    expect(got.items.every((m) => m.headers.traceparent?.split('-')[1] === traceId)).toBe(true);
    const [letter] = await reader.letters.waitFor(1, waitMs, 'dead letters');
    expect(letter!.headers.traceparent?.split('-')[1]).toBe(traceId); // the DLQ stays in the original trace
    await waitUntil(() => exporter.getFinishedSpans().some((s) => s.name === `process ${topic}` && s.spanContext().traceId === traceId), waitMs, 'the consumer span');
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const publishSpan = spans.find((s) => s.name === `publish ${topic}`)!;
    const consumerSpan = spans.find((s) => s.name === `process ${topic}` && s.attributes['messaging.message.id'] === 'traced')!;
    expect(consumerSpan.parentSpanContext?.spanId).toBe(publishSpan.spanContext().spanId);
    // Messaging semantic conventions: operation, destination, group, partition, server.
    const traced = got.items.find((m) => m.id === 'traced')!;
    expect(publishSpan.attributes).toMatchObject({ 'messaging.system': bus.transport.kind, 'messaging.operation.type': 'send', 'messaging.destination.name': topic });
    expect(consumerSpan.attributes).toMatchObject({ 'messaging.system': bus.transport.kind, 'messaging.operation.type': 'process', 'messaging.destination.name': topic, 'switchboard.attempt': 1 });
    if (traced.source.group) expect(consumerSpan.attributes['messaging.consumer.group.name']).toBe(traced.source.group);
    if (traced.source.partition !== undefined) expect(consumerSpan.attributes['messaging.destination.partition.id']).toBe(String(traced.source.partition));
    if (bus.transport.connections) expect(consumerSpan.attributes['server.address']).toEqual(expect.any(String));
    // A failed attempt's span is an error, with the exception recorded.
    await waitUntil(() => exporter.getFinishedSpans().some((s) => s.attributes['messaging.message.id'] === 'traced-poison'), waitMs, 'the failed attempt span');
    const failedSpan = exporter.getFinishedSpans().find((s) => s.attributes['messaging.message.id'] === 'traced-poison')!;
    expect(failedSpan.status.code).toBe(2); // SpanStatusCode.ERROR
    expect(failedSpan.events.some((e) => e.name === 'exception')).toBe(true);
  });

  it('drain finishes in-flight work, including a message backing off, before resolving', { timeout }, async () => {
    const bus = await openBus();
    const [topic] = await topics('drain');
    const attempts = new Recorder<number>();
    const subscription = await bus.subscriber.subscribe(
      topic!,
      (m) => {
        attempts.add(m.attempt);
        if (m.attempt === 1) throw new Error('transient');
      },
      // in-process: a retry held by a broker (RabbitMQ retry queues) stays there, by contract
      { ...groupOf('drain'), startFrom, retry: { maxAttempts: 2, initialIntervalMs: 300 }, retryMode: 'in-process' },
    );
    await bus.publisher.publish(topic!, { id: 'backing-off', value: 1 });
    await attempts.waitFor(1, waitMs);
    await bus.counts.waitFor('will-retry', 1);
    await subscription.drain();
    expect(attempts.items).toEqual([1, 2]);
    expect(bus.counts.count('success')).toBe(1);
  });
}
