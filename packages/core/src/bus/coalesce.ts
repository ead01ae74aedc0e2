import type { TransportMessage } from '../ports/message.js';
import type { RawPublisher, TransportPublishOptions, TransportPublishResult } from '../ports/ports.js';

/**
 * Batches small publishes automatically: publishes to the same topic with the same guarantee issued
 * in the same tick (before the microtask queue runs) become one call to the target, up to
 * `maxBatch` messages. Each caller's promise settles with the batch's outcome: resolved when the
 * whole batch met the guarantee, rejected with the batch's error otherwise. Call order is kept, so
 * per-key order is too. A publish issued alone goes out alone, one microtask later.
 */
export class PublishCoalescer implements RawPublisher {
  private readonly open = new Map<string, Batch>();

  constructor(
    private readonly target: RawPublisher,
    private readonly maxBatch = 1000,
  ) {}

  publish(topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    const id = `${options.guarantee}\u0000${topic}`;
    let batch = this.open.get(id);
    if (!batch) {
      const created: Batch = { topic, options, messages: [], waiters: [] };
      this.open.set(id, created);
      queueMicrotask(() => this.flush(id, created));
      batch = created;
    }
    batch.messages.push(...messages);
    const settled = new Promise<TransportPublishResult>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    if (batch.messages.length >= this.maxBatch) this.flush(id, batch);
    return settled;
  }

  private flush(id: string, batch: Batch): void {
    if (this.open.get(id) !== batch) return; // already sent
    this.open.delete(id);
    this.target.publish(batch.topic, batch.messages, batch.options).then(
      (result) => {
        for (const waiter of batch.waiters) waiter.resolve(result);
      },
      (error: unknown) => {
        for (const waiter of batch.waiters) waiter.reject(error);
      },
    );
  }
}

interface Batch {
  readonly topic: string;
  readonly options: TransportPublishOptions;
  readonly messages: TransportMessage[];
  readonly waiters: { resolve: (result: TransportPublishResult) => void; reject: (error: unknown) => void }[];
}
