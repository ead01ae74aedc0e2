import type { TransportMessage } from '../ports/message.js';
import type { RawPublisher, TransportPublishOptions, TransportPublishResult } from '../ports/ports.js';

/**
 * Batches small publishes automatically: publishes to the same topic with the same guarantee issued
 * in the same tick (before the microtask queue runs) become one call to the target, up to
 * `maxBatch` messages. Every caller of a batch gets the batch's one promise: resolved when the whole
 * batch met the guarantee, rejected with the batch's error otherwise. Call order is kept, so per-key
 * order is too. A publish issued alone goes out alone, one microtask later.
 */
export class PublishCoalescer implements RawPublisher {
  /** Open batches by guarantee, then topic (no key string built per call). */
  private readonly open = new Map<string, Map<string, Batch>>();

  constructor(
    private readonly target: RawPublisher,
    private readonly maxBatch = 1000,
  ) {}

  publish(topic: string, messages: readonly TransportMessage[], options: TransportPublishOptions): Promise<TransportPublishResult> {
    let byTopic = this.open.get(options.guarantee);
    if (!byTopic) this.open.set(options.guarantee, (byTopic = new Map()));
    let batch = byTopic.get(topic);
    if (!batch) {
      batch = new Batch(topic, options);
      byTopic.set(topic, batch);
      const opened = batch;
      queueMicrotask(() => this.flush(byTopic, opened));
    }
    for (const message of messages) batch.messages.push(message);
    const settled = batch.settled;
    if (batch.messages.length >= this.maxBatch) this.flush(byTopic, batch);
    return settled;
  }

  private flush(byTopic: Map<string, Batch>, batch: Batch): void {
    if (byTopic.get(batch.topic) !== batch) return; // already sent
    byTopic.delete(batch.topic);
    let sent: Promise<TransportPublishResult>;
    try {
      sent = this.target.publish(batch.topic, batch.messages, batch.options);
    } catch (error) {
      batch.reject(error); // a target that throws instead of rejecting fails its batch, not the process
      return;
    }
    sent.then(batch.resolve, batch.reject);
  }
}

class Batch {
  readonly messages: TransportMessage[] = [];
  readonly settled: Promise<TransportPublishResult>;
  resolve!: (result: TransportPublishResult) => void;
  reject!: (error: unknown) => void;

  constructor(
    readonly topic: string,
    readonly options: TransportPublishOptions,
  ) {
    this.settled = new Promise<TransportPublishResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}
