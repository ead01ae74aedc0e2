import type { Channel, ConsumeMessage } from 'amqplib';

/**
 * Settles the deliveries of one channel, sending fewer ack frames: the broker's work per ack frame
 * bounds a consumer's rate (raw amqplib, prefetch 100: about 10% more messages per second with one
 * `multiple` ack per event-loop turn than with an ack per message).
 *
 * Contract:
 * - Every delivery of the channel is `track`ed when it arrives and settled exactly once through
 *   `ack` or `nack`; nothing else settles a delivery of this channel.
 * - A nack goes out at once. Acks are sent at the end of the event-loop turn (`setImmediate`), or by
 *   `flush()`: the acked deliveries at the head of the arrival order as one `multiple` ack (it
 *   covers exactly them: every earlier delivery is settled already), every other acked delivery
 *   alone. A slow delivery therefore never holds back the acks of later ones (their prefetch slots
 *   come back as soon as they are acked).
 * - On a closed channel the frames cannot be sent and are dropped: the broker requeues what it has
 *   not seen settled, as it would without batching.
 */
export class ChannelAcks {
  /**
   * Tracked deliveries not yet settled on the wire, by delivery tag, in arrival order (a Map keeps
   * insertion order, and tags increase along it). `acked`: acked, the frame not sent yet.
   */
  private readonly outstanding = new Map<number, { message: ConsumeMessage; acked: boolean }>();
  private scheduled = false;

  /** @param channel the channel the deliveries arrived on (their acks can go nowhere else). */
  constructor(readonly channel: Channel) {}

  track(message: ConsumeMessage): void {
    this.outstanding.set(message.fields.deliveryTag, { message, acked: false });
  }

  /** Acks `message` with the next flush. */
  ack(message: ConsumeMessage): void {
    const entry = this.outstanding.get(message.fields.deliveryTag);
    if (!entry || entry.acked) return;
    entry.acked = true;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Nacks `message` now (requeued when `requeue`). Throws if the channel is closed, as amqplib does. */
  nack(message: ConsumeMessage, requeue: boolean): void {
    this.outstanding.delete(message.fields.deliveryTag);
    this.channel.nack(message, false, requeue);
  }

  /** Sends the acks made so far. */
  flush(): void {
    this.scheduled = false;
    let last: ConsumeMessage | undefined;
    const alone: ConsumeMessage[] = [];
    let atHead = true;
    for (const [tag, entry] of this.outstanding) {
      if (!entry.acked) {
        atHead = false;
        continue;
      }
      this.outstanding.delete(tag);
      if (atHead) last = entry.message;
      else alone.push(entry.message);
    }
    try {
      if (last) this.channel.ack(last, true);
      for (const message of alone) this.channel.ack(message, false);
    } catch {
      // channel closed: the broker requeues what it did not see acked
    }
  }
}
