import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { BusObserver, SourceMetadata, SubscriptionStatus } from '@switchboard/core';
import {
  InterruptionTracker,
  OrderedLanes,
  ReadWindow,
  TransportDelivery,
  afterListener,
  type DeliveryListener,
  type TransportMessage,
  type TransportSubscribeSpec,
  type TransportSubscription,
} from '@switchboard/core/transport';
import { decodeEntry } from './entry.js';
import type { RedisStreamsOptions } from './options.js';

/** The consumer that entries handed back by a closing member are parked on, idle, until a member of the group claims them. */
export const HANDED_BACK_CONSUMER = 'switchboard-handed-back';
/** Idle time given to a handed-back entry: claimable at once by any member. */
const HANDED_BACK_IDLE_MS = 1e12;

type MoveOwned = (stream: string, ...args: (string | number)[]) => Promise<number>;

/** What a subscription needs from its transport. */
export interface StreamSubscriptionContext {
  readonly options: RedisStreamsOptions;
  /** The shared, fail-fast connection: acknowledgements, claims, group administration. */
  readonly commands: Redis & { moveOwned: MoveOwned };
  /** A new connection for this subscription's blocking reads. */
  openReader(): Promise<Redis>;
  observer(): BusObserver;
}

/** An entry this member holds: read or claimed, running, or waiting for its redelivery. */
interface HeldEntry {
  readonly entryId: string;
  readonly message: TransportMessage;
  /** The attempt its next (or current) handler call is. */
  attempt: number;
  /** The delivery count Redis has for it (pending entry list). */
  count: number;
  /** The delivery numbered `count` was handed to the listener (else a hand-back does not count it). */
  started: boolean;
  /** Set by retryLater: Redis' count is raised to `attempt` before the next handler call. */
  redeliver: boolean;
  touchedAt: number;
}

/**
 * One member of a consumer group on one stream. Reads new entries with XREADGROUP (at most
 * `prefetch` held at once: backpressure), hands them to the listener in ordered lanes, XACKs after
 * success or a confirmed dead letter. Attempt numbers are Redis' own delivery counts (pending entry
 * list), never a header. Entries it holds are refreshed every third of `claimIdleMs`, so only a
 * crashed or frozen member's entries go idle; every member claims idle entries of its group (XCLAIM,
 * which counts a delivery). Closing parks what was not handled on {@link HANDED_BACK_CONSUMER}, idle,
 * with its count put back, so the group's next claim takes it without waiting `claimIdleMs`.
 */
export class StreamSubscription implements TransportSubscription {
  readonly consumer = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  private readonly stream: string;
  private readonly group: string;
  private readonly window: ReadWindow;
  private readonly held = new Map<string, HeldEntry>();
  private readonly lanes: OrderedLanes<HeldEntry>;
  private reader: Redis | undefined;
  private state: 'active' | 'closing' | 'draining' | 'ended' = 'active';
  private ending: Promise<void> | undefined;
  private reading: Promise<void> | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private readonly gap: InterruptionTracker;
  private lag: number | undefined;
  private handedBackCount = 0;
  /** Acknowledgements written on the next tick of the event loop, in one XACK. */
  private ackQueue: string[] = [];
  private ackFlush: Promise<void> | undefined;
  /** Entries acknowledged whose XACK failed (connection lost): written again on each tick. */
  private readonly unacked = new Set<string>();

  constructor(
    private readonly context: StreamSubscriptionContext,
    private readonly spec: TransportSubscribeSpec,
    private readonly listener: DeliveryListener,
  ) {
    this.stream = spec.topic;
    this.group = spec.group || 'default';
    this.gap = new InterruptionTracker(context.observer, spec.topic, 'redis-streams');
    this.window = new ReadWindow(Math.max(context.options.prefetch, spec.concurrency));
    this.lanes = new OrderedLanes<HeldEntry>(
      spec.ordering,
      spec.concurrency,
      (entry) => this.run(entry),
      (error) => this.report('redis-streams: handling an entry', error),
    );
  }

  /** Creates the group if needed (at `$` for `latest`, `0` for `earliest`), connects the reader, starts reading and claiming. */
  async start(): Promise<void> {
    await this.createGroup(this.spec.startFrom === 'earliest' ? '0' : '$');
    const reader = await this.context.openReader();
    this.reader = reader;
    reader.on('close', () => {
      if (this.state === 'active') this.gap.interrupt();
    });
    this.reading = this.readLoop(reader);
    this.ticker = setInterval(() => {
      this.ticking ??= this.tick().finally(() => (this.ticking = undefined));
    }, this.context.options.claimIntervalMs);
    this.ticking = this.tick().finally(() => (this.ticking = undefined));
  }

  status(): SubscriptionStatus {
    return this.gap.status(this.lag, this.lanes.pending);
  }

  handedBack(): number {
    return this.handedBackCount;
  }

  close(): Promise<void> {
    return this.end('closing');
  }

  drain(): Promise<void> {
    return this.end('draining');
  }

  private async createGroup(from: '$' | '0'): Promise<void> {
    try {
      await this.context.commands.xgroup('CREATE', this.stream, this.group, from, 'MKSTREAM');
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('BUSYGROUP')) throw error;
    }
  }

  private async readLoop(reader: Redis): Promise<void> {
    for (let backoff = 100; this.state === 'active'; ) {
      const free = this.window.room(this.held.size);
      if (free === 0) {
        await this.window.changed();
        continue;
      }
      let reply: unknown;
      try {
        reply = await reader.callBuffer('XREADGROUP', 'GROUP', this.group, this.consumer, 'COUNT', free, 'BLOCK', this.context.options.blockMs, 'STREAMS', this.stream, '>');
      } catch (error) {
        if (this.state !== 'active') return;
        if (String((error as Error)?.message).startsWith('NOGROUP')) {
          // The stream or the group was deleted under us: what is in it now was not handled by this
          // group, so the group starts again from its beginning (duplicates rather than loss).
          this.gap.interrupt(error);
          await this.createGroup('0').catch((e: unknown) => this.report('redis-streams: creating the group again', e));
        } else this.report('redis-streams: reading', error);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, 2000);
        continue;
      }
      backoff = 100;
      this.gap.resume();
      if (!reply) continue;
      for (const [id, fields] of streamEntries(reply)) if (fields) this.accept(id.toString('latin1'), fields, 1);
    }
  }

  /** Takes an entry read or claimed as delivery `count` into the lanes. */
  private accept(entryId: string, fields: Buffer[], count: number): void {
    if (this.held.has(entryId)) return;
    const { message, rejected } = decodeEntry(entryId, fields);
    for (const { header, value } of rejected) {
      this.context.observer().onEvent({ type: 'untrusted-header', topic: this.spec.topic, transport: 'redis-streams', header, value, messageId: message.id });
    }
    const entry: HeldEntry = { entryId, message, attempt: count, count, started: false, redeliver: false, touchedAt: Date.now() };
    this.held.set(entryId, entry);
    this.lanes.push(message.key, entry);
  }

  /** Runs one entry; returns a delay to hold its key for a retry. */
  private run(entry: HeldEntry): Promise<number | void> | number | void {
    if (this.state === 'closing' || this.state === 'ended') return; // stays held: handed back at the end
    if (entry.redeliver) {
      // Redis' count first, so a crash from here on is counted as this attempt.
      entry.redeliver = false;
      return this.moveOwned([entry], this.consumer, 0, () => entry.attempt)
        .then(
          () => (entry.count = entry.attempt),
          (error: unknown) => this.report('redis-streams: counting a redelivery', error),
        )
        .then(() => this.deliver(entry));
    }
    return this.deliver(entry);
  }

  private deliver(entry: HeldEntry): Promise<number | void> | number | void {
    entry.started = true;
    const source: SourceMetadata = { transport: 'redis-streams', topic: this.stream, group: this.group, offset: entry.entryId };
    const delivery = new StreamDelivery(this, entry, source);
    return afterListener(this.listener, delivery, () => this.afterDelivery(delivery));
  }

  private afterDelivery(delivery: StreamDelivery): number | void {
    if (delivery.outcome === 'acked') return;
    if (this.state === 'closing' || this.state === 'ended') return; // unsettled or waiting: handed back
    if (delivery.outcome === 'retry') return delivery.delayMs;
    return 0; // left unsettled while active: handled again in its key's turn
  }

  /**
   * Records the acknowledgement: XACK, batched per tick of the event loop, not awaited by the handler
   * lane (a round trip per message would bound a lane to one message per round trip). A failed write
   * is kept and written again on every tick and before the consumer leaves the group; a crash before
   * it lands brings the entry back (duplicates, never loss).
   */
  acknowledge(entry: HeldEntry): boolean {
    this.release(entry);
    this.ackQueue.push(entry.entryId);
    this.ackFlush ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      const ids = this.ackQueue;
      this.ackQueue = [];
      this.ackFlush = undefined;
      return this.context.commands.xack(this.stream, this.group, ...ids).then(
        () => undefined,
        (error: unknown) => {
          for (const id of ids) this.unacked.add(id);
          this.report('redis-streams: acknowledging (written again on the next tick)', error);
        },
      );
    });
    return true;
  }

  private release(entry: HeldEntry): void {
    this.held.delete(entry.entryId);
    this.window.wake();
  }

  /** Moves `entries` this member still owns to `target` with `idleMs` and each one's count (see MOVE_OWNED_SCRIPT). */
  private moveOwned(entries: readonly HeldEntry[], target: string, idleMs: number, count: (entry: HeldEntry) => number): Promise<number> {
    const args: (string | number)[] = [this.group, this.consumer, target, idleMs];
    for (const entry of entries) args.push(entry.entryId, count(entry));
    return this.context.commands.moveOwned(this.stream, ...args);
  }

  /** Writes failed acks again, refreshes what this member holds, claims idle entries of the group, reads the lag. */
  private async tick(): Promise<void> {
    const { commands, options } = this.context;
    try {
      if (this.unacked.size > 0) {
        const ids = [...this.unacked];
        await commands.xack(this.stream, this.group, ...ids);
        for (const id of ids) this.unacked.delete(id);
      }
      const now = Date.now();
      const stale = [...this.held.values()].filter((e) => now - e.touchedAt >= options.claimIdleMs / 3);
      if (stale.length > 0) {
        await this.moveOwned(stale, this.consumer, 0, (e) => e.count);
        for (const entry of stale) entry.touchedAt = now;
      }
      if (this.state !== 'active') return;
      await this.claimIdle();
      const groups = (await commands.xinfo('GROUPS', this.stream)) as unknown[][];
      for (const fields of groups) {
        const info = new Map<string, unknown>();
        for (let i = 0; i + 1 < fields.length; i += 2) info.set(String(fields[i]), fields[i + 1]);
        if (info.get('name') !== this.group) continue;
        const lag = info.get('lag');
        const pending = Number(info.get('pending') ?? 0);
        this.lag = typeof lag === 'number' ? lag + pending : undefined;
      }
    } catch (error) {
      if (this.state === 'active') this.report('redis-streams: claiming and refreshing entries', error);
    }
  }

  /** Claims entries of the group idle for `claimIdleMs` (a crashed member's, or handed back), as many as there is room for. */
  private async claimIdle(): Promise<void> {
    const free = this.window.limit - this.held.size;
    if (free <= 0) return;
    const { commands, options } = this.context;
    const idle = (await commands.xpending(this.stream, this.group, 'IDLE', options.claimIdleMs, '-', '+', free)) as [string, string, number, number][];
    const counts = new Map<string, number>();
    for (const [id, , , count] of idle) if (!this.held.has(id) && !this.unacked.has(id)) counts.set(id, count);
    if (counts.size === 0) return;
    const claimed = (await commands.callBuffer('XCLAIM', this.stream, this.group, this.consumer, options.claimIdleMs, ...counts.keys())) as [Buffer, Buffer[] | null][];
    for (const [id, fields] of claimed) {
      const entryId = id.toString('latin1');
      // XCLAIM counted this delivery: Redis now has count + 1.
      if (fields && this.state === 'active') this.accept(entryId, fields, (counts.get(entryId) ?? 0) + 1);
    }
  }

  private report(context: string, error: unknown): void {
    this.context.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context, error });
  }

  private end(mode: 'closing' | 'draining'): Promise<void> {
    if (mode === 'closing' && this.state === 'draining') this.state = 'closing';
    this.ending ??= (async () => {
      if (this.state === 'active') this.state = mode;
      clearInterval(this.ticker);
      // Stop reading at once (a reply lost on the way stays pending on this consumer: handed back below).
      this.reader?.disconnect();
      this.window.wake();
      await this.reading;
      await this.ticking;
      if (this.state === 'draining') await this.lanes.whenIdle(true);
      else {
        this.lanes.takePending();
        await this.lanes.whenIdle(false);
      }
      this.state = 'ended';
      await this.ackFlush;
      await this.handBack();
    })();
    return this.ending;
  }

  /**
   * Parks everything this consumer still has pending on {@link HANDED_BACK_CONSUMER}, idle, with the
   * count of deliveries that reached a handler, then removes the consumer from the group (only once
   * nothing is pending on it: XGROUP DELCONSUMER drops a consumer's pending entries).
   */
  private async handBack(): Promise<void> {
    const { commands } = this.context;
    try {
      if (this.unacked.size > 0) await commands.xack(this.stream, this.group, ...this.unacked);
      this.unacked.clear();
      for (;;) {
        const pending = (await commands.xpending(this.stream, this.group, '-', '+', 1000, this.consumer)) as [string, string, number, number][];
        if (pending.length === 0) break;
        const entries = pending.map(
          ([entryId, , , count]): HeldEntry => this.held.get(entryId) ?? { entryId, message: undefined as never, attempt: count, count, started: false, redeliver: false, touchedAt: 0 },
        );
        this.handedBackCount += await this.moveOwned(entries, HANDED_BACK_CONSUMER, HANDED_BACK_IDLE_MS, (e) => (e.started ? e.count : Math.max(0, e.count - 1)));
      }
      this.held.clear();
      await commands.xgroup('DELCONSUMER', this.stream, this.group, this.consumer);
    } catch (error) {
      // Redis unreachable: what is pending stays on this consumer and is claimed after claimIdleMs.
      this.report('redis-streams: handing entries back', error);
    }
  }
}

type RawEntry = [Buffer, Buffer[] | null];

/**
 * The entries of an XREADGROUP reply on one stream, whichever protocol answered: RESP2 gives
 * `[[stream, entries]]`, RESP3 a map that ioredis flattens to `[stream, entries]`.
 */
export function streamEntries(reply: unknown): RawEntry[] {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  if (Array.isArray(reply[0])) return (reply as [Buffer, RawEntry[] | null][]).flatMap(([, entries]) => entries ?? []);
  const entries: RawEntry[] = [];
  for (let i = 1; i < reply.length; i += 2) if (Array.isArray(reply[i])) entries.push(...(reply[i] as RawEntry[]));
  return entries;
}

/** One delivery of a held entry; settles once. */
class StreamDelivery extends TransportDelivery {
  outcome: 'acked' | 'retry' | undefined;
  delayMs = 0;
  readonly deliveryCount: number;

  constructor(
    private readonly subscription: StreamSubscription,
    private readonly entry: HeldEntry,
    source: SourceMetadata,
  ) {
    super(entry.message, entry.attempt, source);
    this.deliveryCount = entry.count;
  }

  ack(): boolean {
    if (this.outcome) return false;
    this.outcome = 'acked';
    return this.subscription.acknowledge(this.entry);
  }

  async retryLater(delayMs: number, nextAttempt = this.attempt + 1): Promise<boolean> {
    if (this.outcome) return false;
    this.outcome = 'retry';
    this.delayMs = Math.max(0, delayMs);
    this.entry.attempt = nextAttempt;
    this.entry.started = true;
    this.entry.redeliver = true;
    return true;
  }
}
