import { context, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

const KEY = Symbol.for('switchboard.testing.tracing');

/**
 * An OpenTelemetry SDK recording finished spans in memory, registered once per process (the global
 * tracer provider can be set only once).
 */
export function testTracing(): { exporter: InMemorySpanExporter; tracer: Tracer } {
  const holder = globalThis as unknown as Record<symbol, { exporter: InMemorySpanExporter; tracer: Tracer } | undefined>;
  let existing = holder[KEY];
  if (!existing) {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(provider);
    existing = holder[KEY] = { exporter, tracer: trace.getTracer('switchboard-tests') };
  }
  return existing;
}
