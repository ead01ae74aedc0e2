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
  /** Tracked deliveries, in arrival order (delivery tags increase along it). `true` = acked, not yet sent. */
  private readonly outstanding: { message: ConsumeMessage; acked: boolean }[] = [];
  private head = 0;
  private readonly byTag = new Map<number, { message: ConsumeMessage; acked: boolean }>();
  private scheduled = false;

  constructor(private readonly channel: Channel) {}

  track(message: ConsumeMessage): void {
    const entry = { message, acked: false };
    this.outstanding.push(entry);
    this.byTag.set(message.fields.deliveryTag, entry);
  }

  /** Acks `message` with the next flush. */
  ack(message: ConsumeMessage): void {
    const entry = this.byTag.get(message.fields.deliveryTag);
    if (!entry || entry.acked) return;
    entry.acked = true;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Nacks `message` now (requeued when `requeue`). Throws if the channel is closed, as amqplib does. */
  nack(message: ConsumeMessage, requeue: boolean): void {
    const entry = this.byTag.get(message.fields.deliveryTag);
    if (entry) {
      this.byTag.delete(message.fields.deliveryTag);
      entry.acked = false;
      this.remove(entry);
    }
    this.channel.nack(message, false, requeue);
  }

  /** Sends the acks made so far. */
  flush(): void {
    this.scheduled = false;
    let last: ConsumeMessage | undefined;
    while (this.head < this.outstanding.length && this.outstanding[this.head]!.acked) {
      last = this.outstanding[this.head]!.message;
      this.byTag.delete(last.fields.deliveryTag);
      this.head++;
    }
    const alone: ConsumeMessage[] = [];
    for (let i = this.head; i < this.outstanding.length; i++) {
      const entry = this.outstanding[i]!;
      if (!entry.acked) continue;
      alone.push(entry.message);
      this.byTag.delete(entry.message.fields.deliveryTag);
    }
    if (alone.length > 0) {
      const alive = this.outstanding.slice(this.head).filter((entry) => !entry.acked);
      this.outstanding.length = 0;
      this.outstanding.push(...alive);
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.outstanding.length) {
      this.outstanding.splice(0, this.head);
      this.head = 0;
    }
    try {
      if (last) this.channel.ack(last, true);
      for (const message of alone) this.channel.ack(message, false);
    } catch {
      // channel closed: the broker requeues what it did not see acked
    }
  }

  /** Deliveries tracked and not yet settled on the wire. */
  get size(): number {
    return this.byTag.size;
  }

  private remove(entry: { message: ConsumeMessage; acked: boolean }): void {
    const at = this.outstanding.indexOf(entry, this.head);
    if (at === this.head) this.head++;
    else if (at > this.head) this.outstanding.splice(at, 1);
  }
}
