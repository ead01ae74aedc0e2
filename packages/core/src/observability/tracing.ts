import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, isSpanContextValid, trace, type Context, type Span } from '@opentelemetry/api';
import { describeFailure } from '../failure.js';

/** The W3C trace-context header. */
export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

const tracer = () => trace.getTracer('@switchboard/core');

/**
 * Headers with the W3C `traceparent` (and `tracestate`) of `span`, unless the message already has
 * one (an explicit traceparent, e.g. a replay keeping its original trace, wins). No-op without a
 * valid span (no OpenTelemetry SDK registered: nothing is added).
 */
export function withTraceHeaders(headers: Readonly<Record<string, string>>, span: Span | undefined): Readonly<Record<string, string>> {
  if (!span || headers[TRACEPARENT] !== undefined) return headers;
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return headers;
  const traced: Record<string, string> = { ...headers, [TRACEPARENT]: `00-${sc.traceId}-${sc.spanId}-${sc.traceFlags.toString(16).padStart(2, '0')}` };
  const state = sc.traceState?.serialize();
  if (state) traced[TRACESTATE] = state;
  return traced;
}

/** The remote parent context carried by `headers`, or ROOT_CONTEXT. */
export function extractTraceContext(headers: Readonly<Record<string, string>>): Context {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(headers[TRACEPARENT] ?? '');
  if (!match) return ROOT_CONTEXT;
  const spanContext = { traceId: match[1]!, spanId: match[2]!, traceFlags: Number.parseInt(match[3]!, 16), isRemote: true };
  return isSpanContextValid(spanContext) ? trace.setSpanContext(ROOT_CONTEXT, spanContext) : ROOT_CONTEXT;
}

/** A PRODUCER span for a publish, child of the active span; undefined when tracing is off. */
export function startPublishSpan(topic: string, transport: string, count: number): Span | undefined {
  const active = trace.getSpan(context.active());
  if (!active) return undefined; // nothing to propagate: keep the hot path free
  return tracer().startSpan(`publish ${topic}`, {
    kind: SpanKind.PRODUCER,
    attributes: { 'messaging.system': transport, 'messaging.destination.name': topic, 'messaging.batch.message_count': count },
  });
}

/** Ends `span`; with a second argument (any thrown value, `undefined` included) marks it failed. */
export function endSpan(span: Span | undefined, ...failed: [error?: unknown]): void {
  if (!span) return;
  if (failed.length > 0) {
    const failure = describeFailure(failed[0], 4096);
    span.recordException({ name: failure.name, message: failure.message, ...(failure.stack ? { stack: failure.stack } : {}) });
    span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
  }
  span.end();
}

/** True when a delivery with these headers should get a span (it carries a trace, or one is active). */
export function isTraced(headers: Readonly<Record<string, string>>): boolean {
  return headers[TRACEPARENT] !== undefined || trace.getSpan(context.active()) !== undefined;
}

/**
 * Runs one delivery attempt inside a CONSUMER span whose parent is the publisher's (from the
 * message's traceparent), so a handler's own spans join the message's trace.
 */
export async function inDeliverySpan<R>(topic: string, transport: string, messageId: string, attempt: number, headers: Readonly<Record<string, string>>, run: () => Promise<R>): Promise<R> {
  const parent = extractTraceContext(headers);
  const span = tracer().startSpan(
    `process ${topic}`,
    { kind: SpanKind.CONSUMER, attributes: { 'messaging.system': transport, 'messaging.destination.name': topic, 'messaging.message.id': messageId, 'switchboard.attempt': attempt } },
    parent,
  );
  try {
    const result = await context.with(trace.setSpan(parent, span), run);
    endSpan(span);
    return result;
  } catch (error) {
    endSpan(span, error);
    throw error;
  }
}
