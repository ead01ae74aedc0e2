import { context, propagation, trace, type TextMapPropagator } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import { createBus, createMemoryTransport, type Message } from '@switchboard/core';
import { Recorder, testTracing, waitUntil } from '@switchboard/core/testing';

/** A propagator of the application's own: one header, `x-trace`, with "traceId:spanId". */
const customPropagator: TextMapPropagator = {
  fields: () => ['x-trace'],
  inject(ctx, carrier: Record<string, string>) {
    const span = trace.getSpanContext(ctx);
    if (span) carrier['x-trace'] = `${span.traceId}:${span.spanId}`;
  },
  extract(ctx, carrier: Record<string, string>) {
    const [traceId, spanId] = (carrier['x-trace'] ?? '').split(':');
    if (!traceId || !spanId) return ctx;
    return trace.setSpanContext(ctx, { traceId, spanId, traceFlags: 1, isRemote: true });
  },
};

afterEach(() => propagation.disable());

describe('trace propagation through the application propagator', () => {
  it('writes and reads the headers the registered propagator names (no W3C header then); the consumer span joins the trace', async () => {
    const { exporter, tracer } = testTracing();
    propagation.setGlobalPropagator(customPropagator);
    const bus = createBus({ transport: createMemoryTransport() });
    const got = new Recorder<Message>();
    await bus.subscriber.subscribe('traced.custom', (m) => got.add(m));
    let traceId = '';
    await tracer.startActiveSpan('checkout', async (span) => {
      traceId = span.spanContext().traceId;
      await bus.publisher.publish('traced.custom', { id: 'c-1', value: 1 });
      span.end();
    });
    const [message] = await got.waitFor(1, 5000);
    expect(message!.headers['x-trace']?.split(':')[0]).toBe(traceId);
    expect(message!.headers.traceparent).toBeUndefined();
    await waitUntil(() => exporter.getFinishedSpans().some((s) => s.name === 'process traced.custom' && s.spanContext().traceId === traceId), 5000, 'the consumer span');
    const publishSpan = exporter.getFinishedSpans().find((s) => s.name === 'publish traced.custom' && s.spanContext().traceId === traceId)!;
    const consumerSpan = exporter.getFinishedSpans().find((s) => s.name === 'process traced.custom' && s.spanContext().traceId === traceId)!;
    expect(consumerSpan.parentSpanContext?.spanId).toBe(publishSpan.spanContext().spanId);
    await bus.close();
  });

  it('without a registered propagator, still connects the trace through W3C traceparent', async () => {
    const { tracer } = testTracing();
    expect(propagation.fields()).toEqual([]);
    const bus = createBus({ transport: createMemoryTransport() });
    const got = new Recorder<Message>();
    await bus.subscriber.subscribe('traced.w3c', (m) => got.add(m));
    let traceId = '';
    await context.with(context.active(), () =>
      tracer.startActiveSpan('checkout', async (span) => {
        traceId = span.spanContext().traceId;
        await bus.publisher.publish('traced.w3c', { id: 'w-1', value: 1 });
        span.end();
      }),
    );
    const [message] = await got.waitFor(1, 5000);
    expect(message!.headers.traceparent?.split('-')[1]).toBe(traceId);
    await bus.close();
  });
});
