import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, isSpanContextValid, propagation, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { describeFailure } from '../util/failure.js';

/** The W3C trace-context header. */
export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

const tracer = () => trace.getTracer('@switchboard/core');

/**
 * Trace propagation goes through OpenTelemetry's propagation API, so the application's propagator
 * decides the headers (W3C trace context, B3, Jaeger, baggage...). Without one registered (no
 * OpenTelemetry SDK, or an SDK set up without propagators), Switchboard writes and reads the W3C
 * `traceparent` / `tracestate` itself, so traces still connect.
 */
function propagatorFields(): readonly string[] {
  return propagation.fields();
}

/**
 * Headers carrying the context of `span`, unless the message already carries one (an explicit
 * context, e.g. a replay keeping its original trace, wins). No-op without a valid span.
 */
export function withTraceHeaders(headers: Readonly<Record<string, string>>, span: Span | undefined): Readonly<Record<string, string>> {
  if (!span || carriesTrace(headers)) return headers;
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return headers;
  if (propagatorFields().length > 0) {
    const carrier: Record<string, string> = { ...headers };
    propagation.inject(trace.setSpan(context.active(), span), carrier);
    return carrier;
  }
  const traced: Record<string, string> = { ...headers, [TRACEPARENT]: `00-${sc.traceId}-${sc.spanId}-${sc.traceFlags.toString(16).padStart(2, '0')}` };
  const state = sc.traceState?.serialize();
  if (state) traced[TRACESTATE] = state;
  return traced;
}

/** The remote parent context the headers carry (per the application's propagator, else W3C), or ROOT_CONTEXT. */
export function extractTraceContext(headers: Readonly<Record<string, string>>): Context {
  if (propagatorFields().length > 0) return propagation.extract(ROOT_CONTEXT, headers);
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(headers[TRACEPARENT] ?? '');
  if (!match) return ROOT_CONTEXT;
  const spanContext = { traceId: match[1]!, spanId: match[2]!, traceFlags: Number.parseInt(match[3]!, 16), isRemote: true };
  return isSpanContextValid(spanContext) ? trace.setSpanContext(ROOT_CONTEXT, spanContext) : ROOT_CONTEXT;
}

/** True when the headers carry a trace context (a field of the registered propagator, or W3C). */
function carriesTrace(headers: Readonly<Record<string, string>>): boolean {
  if (headers[TRACEPARENT] !== undefined) return true;
  for (const field of propagatorFields()) if (headers[field] !== undefined) return true;
  return false;
}

/** A PRODUCER span for a publish, child of the active span; undefined when tracing is off. */
export function startPublishSpan(topic: string, transport: string, count: number): Span | undefined {
  const active = trace.getSpan(context.active());
  if (!active) return undefined; // nothing to propagate: keep the hot path free
  return tracer().startSpan(`publish ${topic}`, {
    kind: SpanKind.PRODUCER,
    attributes: {
      'messaging.system': transport,
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'publish',
      'messaging.destination.name': topic,
      'messaging.batch.message_count': count,
    },
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
  return carriesTrace(headers) || trace.getSpan(context.active()) !== undefined;
}

/** What a delivery span says about its message (OpenTelemetry messaging semantic conventions). */
export interface DeliverySpanInfo {
  /** The subscribed topic (span name). */
  readonly topic: string;
  readonly messageId: string;
  readonly attempt: number;
  readonly key?: string | undefined;
  readonly source: { readonly transport: string; readonly topic: string; readonly group?: string; readonly partition?: number; readonly offset?: string; readonly routingKey?: string };
  /** The broker, when the transport reports one (see {@link serverOf}). */
  readonly server?: ServerAddress | undefined;
}

/** `server.address` / `server.port` of the messaging semantic conventions. */
export interface ServerAddress {
  readonly address: string;
  readonly port?: number;
}

/** The first `host:port` of an endpoint list (`h1:9092,h2:9092`), parsed once per subscription. */
export function serverOf(endpoint: string): ServerAddress {
  const [first] = endpoint.split(',');
  const at = first!.lastIndexOf(':');
  return at > 0 ? { address: first!.slice(0, at), port: Number(first!.slice(at + 1)) } : { address: first! };
}

function deliveryAttributes(info: DeliverySpanInfo): Attributes {
  const { source } = info;
  const attributes: Attributes = {
    'messaging.system': source.transport,
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
    'messaging.destination.name': source.topic,
    'messaging.message.id': info.messageId,
    'switchboard.attempt': info.attempt,
  };
  if (source.group) attributes['messaging.consumer.group.name'] = source.group;
  if (source.partition !== undefined) attributes['messaging.destination.partition.id'] = String(source.partition);
  if (source.transport === 'kafka') {
    if (source.offset !== undefined) attributes['messaging.kafka.offset'] = Number(source.offset);
    if (info.key !== undefined) attributes['messaging.kafka.message.key'] = info.key;
  }
  if (source.routingKey !== undefined) attributes['messaging.rabbitmq.destination.routing_key'] = source.routingKey;
  if (info.server) {
    attributes['server.address'] = info.server.address;
    if (info.server.port !== undefined) attributes['server.port'] = info.server.port;
  }
  return attributes;
}

/**
 * The pipeline's trace step: runs one delivery attempt inside a CONSUMER span whose parent is the
 * publisher's (from the message's headers), so a handler's own spans join the message's trace. A
 * failed attempt ends the span as an error with the exception recorded; the span's duration is the
 * attempt's, success or not.
 */
export async function inDeliverySpan<R>(info: DeliverySpanInfo, headers: Readonly<Record<string, string>>, run: () => Promise<R>): Promise<R> {
  const parent = extractTraceContext(headers);
  const span = tracer().startSpan(`process ${info.topic}`, { kind: SpanKind.CONSUMER, attributes: deliveryAttributes(info) }, parent);
  try {
    const result = await context.with(trace.setSpan(parent, span), run);
    endSpan(span);
    return result;
  } catch (error) {
    endSpan(span, error);
    throw error;
  }
}
