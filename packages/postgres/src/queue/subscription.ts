import type { Pool } from 'pg';
import type { BusObserver, SourceMetadata, SubscriptionStatus } from '@switchboard/core';
import {
  InFlight,
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
import { decodeRow } from './codec.js';
import type { PostgresQueueOptions } from './options.js';
import type { ServerSilence } from './silence.js';
import type { ClaimedRow, QueueStatements } from './sql.js';

/** What a subscription needs from its transport. */
export interface QueueSubscriptionContext {
  readonly pool: Pool;
  /** Connections that plan the claim walking the primary key in order (see the transport's CLAIM_PLANNING). */
  readonly claimPool: Pool;
  readonly sql: QueueStatements;
  readonly options: PostgresQueueOptions;
  /** This transport's name (host, pid, random): each subscription's lease owner name starts with it. */
  readonly member: string;
  observer(): BusObserver;
  /** The database answered (or did not): the transport's connection state. */
  reachable(up: boolean): void;
  /** Whether the server stopped answering (shared by the transport's members; see ServerSilence). */
  readonly silence: ServerSilence;
}

/** A claimed message this member holds: running, queued in its lane, or on its way back. */
interface HeldMessage {
  readonly seq: number;
  readonly message: TransportMessage;
  readonly topic: string;
  /** The claim count from the table (trusted): this delivery's attempt. */
  readonly attempts: number;
  /** Set when an earlier message of its key went back for a retry: it must not run before that one. */
  behindRetry: boolean;
}

/**
 * Wakes a waiting reader: a notification for its topic, a retry coming due, or the bounded poll.
 * A wake-up while nobody waits is kept, so a notification during a claim is not lost.
 */
class Wakeup {
  private pending = false;
  private waiter: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  notify(): void {
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      clearTimeout(this.timer);
      waiter();
    } else this.pending = true;
  }

  wait(maxMs: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.waiter = resolve;
      this.timer = setTimeout(() => this.notify(), maxMs);
    });
  }
}

/**
 * One member of a group's subscription: claims due deliveries (`FOR UPDATE SKIP LOCKED`, leased for
 * `leaseMs`, oldest first) while it holds less than half its window, hands them to the listener in
 * ordered lanes, deletes the delivery row after success or a stored dead letter. Attempts are the
 * table's claim counts, never a header. A retry goes back to the table, due after its delay
 * (`available_at`): it holds no handler slot, and with `ordering: 'key'` the key's later messages
 * are not claimed (by any member) until it is done, and those this member already holds go back too.
 * Held messages' leases are extended every third of `leaseMs`; closing hands back what it did not
 * settle (due at once, the attempt taken back).
 */
export class QueueSubscription implements TransportSubscription {
  private readonly window: ReadWindow;
  private readonly wakeup = new Wakeup();
  private readonly held = new Map<number, HeldMessage>();
  private readonly lanes: OrderedLanes<HeldMessage>;
  private readonly group: string;
  private readonly keyOrder: boolean;
  private state: 'active' | 'closing' | 'draining' | 'ended' = 'active';
  private ending: Promise<void> | undefined;
  private reading: Promise<void> | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private lagTicker: NodeJS.Timeout | undefined;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly gap: InterruptionTracker;
  private lag: number | undefined;
  private handedBackCount = 0;
  /** Acknowledgements not yet written (batched per event-loop turn), and those a failed write left. */
  private acks: number[] = [];
  private readonly unacked = new Set<number>();
  private flushing: Promise<void> | undefined;
  private flushScheduled = false;
  /**
   * Keys with a retry this member sent back, and the clock value once it was written: a claim that
   * started before then read an older snapshot and may return the key's later messages, which go
   * back at once instead of running ahead of the retry.
   */
  private readonly yielded = new Map<string, { seq: number; clock: number }>();
  /** Hand-back writes under way (see readLoop: a claim waits until none is). */
  private readonly handingBack = new InFlight();
  private clock = 0;

  /** This member's lease owner name: the transport's plus a number (two subscriptions of a process are two members). */
  private readonly member: string;

  constructor(
    private readonly context: QueueSubscriptionContext,
    private readonly spec: TransportSubscribeSpec,
    private readonly listener: DeliveryListener,
    private readonly subId: number,
    memberNumber: number,
  ) {
    this.member = `${context.member}-${memberNumber}`;
    this.group = spec.group || 'default';
    this.keyOrder = spec.ordering !== 'none';
    this.gap = new InterruptionTracker(context.observer, spec.topic, 'postgres');
    this.window = new ReadWindow(Math.max(context.options.prefetch, spec.concurrency));
    this.lanes = new OrderedLanes<HeldMessage>(
      spec.ordering,
      spec.concurrency,
      (held) => this.run(held),
      (error) => this.report('postgres: handling a message', error),
    );
  }

  start(): void {
    const { leaseMs, lagIntervalMs } = this.context.options;
    this.reading = this.readLoop();
    this.ticker = setInterval(() => void this.extendLeases(), leaseMs / 3);
    this.lagTicker = setInterval(() => void this.readLag(), lagIntervalMs);
    void this.readLag();
  }

  /** A message for this subscription's topic was published (NOTIFY), or the listener reconnected. */
  notify(): void {
    this.wakeup.notify();
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

  private async readLoop(): Promise<void> {
    const { claimPool, sql, options } = this.context;
    for (let backoff = 100; this.state === 'active'; ) {
      const room = this.window.room(this.held.size);
      if (room === 0) {
        await this.window.changed();
        continue;
      }
      // Half the window per claim: the other members of the group get a share of a burst.
      const ask = Math.min(room, Math.ceil(this.window.limit / 2));
      // Until a hand-back is written, the table shows its messages leased by this member, and the claim
      // lets this member take later messages of their keys ("its lanes keep their order"), though they
      // are in no lane any more: those would run ahead. So a claim waits for hand-backs under way.
      await this.handingBack.idle();
      const startedAt = this.clock;
      try {
        const { rows } = await claimPool.query<ClaimedRow>(sql.claim, [this.subId, ask, this.member, options.leaseMs, this.keyOrder]);
        this.context.reachable(true);
        this.context.silence.answered();
        this.gap.resume();
        rows.sort((a, b) => Number(a.seq) - Number(b.seq));
        for (const row of rows) this.accept(row, startedAt);
        for (const [key, entry] of this.yielded) if (entry.clock <= startedAt) this.yielded.delete(key);
        backoff = 100;
        // Nothing due: wait for a notification, a retry coming due, or the poll. With per-key order a
        // partial claim may have left keys whose earlier messages only now became this member's: claim again.
        if (rows.length === 0 || (!this.keyOrder && rows.length < ask)) await this.wakeup.wait(options.pollIntervalMs);
      } catch (error) {
        this.context.silence.failed(error);
        if (this.state !== 'active') return;
        this.context.reachable(false);
        this.gap.interrupt(error);
        this.report('postgres: claiming messages', error);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }

  private accept(row: ClaimedRow, claimStartedAt: number): void {
    const seq = Number(row.seq);
    const { message, rejected } = decodeRow(row);
    for (const { header, value } of rejected) {
      this.context.observer().onEvent({ type: 'untrusted-header', topic: this.spec.topic, transport: 'postgres', header, value, messageId: message.id });
    }
    const held: HeldMessage = { seq, message, topic: row.topic, attempts: row.attempts, behindRetry: false };
    this.held.set(seq, held);
    const yielded = message.key !== undefined ? this.yielded.get(message.key) : undefined;
    if (this.state !== 'active' || (this.keyOrder && yielded && claimStartedAt < yielded.clock && seq > yielded.seq)) {
      this.handBack([held]);
      return;
    }
    this.lanes.push(message.key, held);
  }

  private run(held: HeldMessage): Promise<number | void> | number | void {
    if (this.state === 'closing' || this.state === 'ended') return; // stays held: handed back at the end
    if (held.behindRetry) {
      this.handBack([held]);
      return;
    }
    const source: SourceMetadata = {
      transport: 'postgres',
      topic: held.topic,
      group: this.group,
      offset: String(held.seq),
      ...(this.spec.pattern ? { pattern: this.spec.topic } : {}),
    };
    return afterListener(this.listener, new QueueDelivery(this, held, source), () => undefined);
  }

  /** Done: the delivery row is deleted in the next batch (not waited for: a lost delete brings the message back after its lease, a duplicate, never a loss). */
  acknowledge(held: HeldMessage): boolean {
    this.release(held);
    this.acks.push(held.seq);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => void this.flushAcks());
    }
    return true;
  }

  private flushAcks(): Promise<void> {
    this.flushScheduled = false;
    const seqs = [...this.unacked, ...this.acks];
    this.acks = [];
    if (seqs.length === 0) return this.flushing ?? Promise.resolve();
    const previous = this.flushing ?? Promise.resolve();
    const write = previous.then(async () => {
      try {
        await this.context.pool.query(this.context.sql.ack, [this.subId, seqs]);
        this.context.silence.answered();
        for (const seq of seqs) this.unacked.delete(seq);
      } catch (error) {
        for (const seq of seqs) this.unacked.add(seq); // written again with the next batch or tick
        this.writeFailed('postgres: acknowledging', error);
      }
    });
    this.flushing = write;
    return write;
  }

  /**
   * A retry: due again after `delayMs`, held by nobody meanwhile. With per-key order, this member's
   * later messages of the key go back too, so the key resumes in order with the retry.
   */
  async retry(held: HeldMessage, delayMs: number): Promise<void> {
    this.release(held);
    const key = held.message.key;
    if (this.keyOrder && key !== undefined) {
      for (const other of this.held.values()) if (other.message.key === key && other.seq > held.seq) other.behindRetry = true;
      // Until the retry is written, whatever a claim returns for the key goes back (clock: not yet).
      this.yielded.set(key, { seq: held.seq, clock: Number.POSITIVE_INFINITY });
    }
    try {
      await this.context.pool.query(this.context.sql.retry, [this.subId, held.seq, this.member, Math.max(0, Math.round(delayMs))]);
    } catch (error) {
      this.writeFailed('postgres: scheduling a retry (the message returns when its lease expires)', error);
    }
    if (this.keyOrder && key !== undefined) this.yielded.set(key, { seq: held.seq, clock: ++this.clock });
    if (this.state === 'active') {
      const timer = setTimeout(() => {
        this.retryTimers.delete(timer);
        this.wakeup.notify();
      }, delayMs + 5);
      this.retryTimers.add(timer);
    }
  }

  /** Hands messages back unhandled: due at once, for any member, the claim's attempt taken back. */
  private handBack(messages: readonly HeldMessage[]): void {
    if (messages.length === 0) return;
    for (const held of messages) this.release(held);
    this.handedBackCount += messages.length;
    const seqs = messages.map((m) => m.seq);
    this.handingBack.begin();
    this.context.pool
      .query(this.context.sql.handBack, [this.subId, seqs, this.member])
      .then(() => this.wakeup.notify())
      .catch((error: unknown) => this.writeFailed('postgres: handing messages back (they return when their lease expires)', error))
      .finally(() => this.handingBack.end());
  }

  private release(held: HeldMessage): void {
    if (this.held.delete(held.seq)) this.window.wake();
  }

  private async extendLeases(): Promise<void> {
    if (this.unacked.size > 0) void this.flushAcks();
    if (this.held.size === 0) return;
    const { pool, sql, options } = this.context;
    try {
      await pool.query(sql.extend, [this.subId, [...this.held.keys()], this.member, options.leaseMs]);
    } catch (error) {
      this.writeFailed('postgres: extending leases', error);
    }
  }

  private async readLag(): Promise<void> {
    try {
      const { rows } = await this.context.pool.query<{ lag: number }>(this.context.sql.lag, [this.subId]);
      this.lag = rows[0]?.lag;
    } catch {
      // unreachable: the claim loop reports it; the last figure stays
    }
  }

  /** A write the server did not take: reported, and, if it went unanswered, the server counts as silent. */
  private writeFailed(context: string, error: unknown): void {
    this.context.silence.failed(error);
    this.report(context, error);
  }

  private report(context: string, error: unknown): void {
    this.context.observer().onEvent({ type: 'internal-error', topic: this.spec.topic, context, error });
  }

  private end(mode: 'closing' | 'draining'): Promise<void> {
    if (mode === 'closing' && this.state === 'draining') this.state = 'closing';
    this.ending ??= (async () => {
      if (this.state === 'active') this.state = mode;
      clearInterval(this.ticker);
      clearInterval(this.lagTicker);
      this.window.wake();
      this.wakeup.notify();
      await this.reading;
      // Drain: what is held runs to its end; a retry is in the table (due later, for the group).
      if (this.state === 'draining') await this.lanes.whenIdle(true);
      else {
        this.lanes.takePending();
        await this.lanes.whenIdle(false);
      }
      this.state = 'ended';
      for (const timer of this.retryTimers) clearTimeout(timer);
      // Once the server stopped answering, these writes would each wait queryTimeoutMs for nothing:
      // what they would settle comes again when its lease ends (see ServerSilence).
      const { silence } = this.context;
      if (!silence.noticed) await this.flushAcks();
      // What was not settled goes back at once, for the group's other members.
      const rest = [...this.held.values()];
      for (const held of rest) this.release(held);
      if (rest.length > 0 && !silence.noticed) {
        this.handedBackCount += rest.length;
        await this.context.pool
          .query(this.context.sql.handBack, [this.subId, rest.map((m) => m.seq), this.member])
          .catch((error: unknown) => this.writeFailed('postgres: handing messages back on close', error));
      }
    })();
    return this.ending;
  }
}

/** One delivery of a held message; settles once. */
class QueueDelivery extends TransportDelivery {
  private settled = false;
  readonly deliveryCount: number;

  constructor(
    private readonly subscription: QueueSubscription,
    private readonly held: HeldMessage,
    source: SourceMetadata,
  ) {
    super(held.message, held.attempts, source);
    this.deliveryCount = held.attempts;
  }

  ack(): boolean {
    if (this.settled) return false;
    this.settled = true;
    return this.subscription.acknowledge(this.held);
  }

  async retryLater(delayMs: number): Promise<boolean> {
    if (this.settled) return false;
    this.settled = true;
    await this.subscription.retry(this.held, delayMs);
    return true;
  }
}
