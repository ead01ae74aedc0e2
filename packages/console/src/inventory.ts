import { randomUUID } from 'node:crypto';
import {
  type ConsoleStore,
  DeadLetterHeaders,
  deadLettersAreLogged,
  describeDeadLetter,
  failureFingerprint,
  normaliseErrorMessage,
  type ParkedMessage,
  type ParkingLot,
  type Publisher,
  type Transport,
  type TransportDeadLetter,
  walkTransportDeadLetters,
} from '@switchboard/core';
import type { TransportSubscription } from '@switchboard/core/transport';

/** A transport whose DLQs the console reads, and the publisher replays go through. */
export interface ConsoleSource {
  /** Shown in the console and recorded in the audit trail (e.g. `kafka`, `orders-rabbit`). */
  readonly name: string;
  readonly transport: Transport;
  /** Replays are published here (the bus's publisher on that transport: `bus.publisher`). */
  readonly publisher: Publisher;
  /** The dead-letter topics to show (e.g. `orders-dlq`). */
  readonly deadLetterTopics: readonly string[];
}

/** A dead letter as the console shows it: from a transport DLQ or the parking lot. */
export interface ConsoleLetter extends TransportDeadLetter {
  /** The source's name, or `parking`. */
  readonly source: string;
  readonly fingerprint: string;
  readonly parkingId?: string;
}

export interface QueueView {
  readonly source: string;
  readonly kind: string;
  readonly deadLetterTopic: string;
  readonly depth: number;
  /** The scan stopped at its limit: there are at least `depth` letters. */
  readonly truncated: boolean;
  readonly scannedAt: number;
  readonly error: string;
  /** Depth at each scan, oldest first (the chart). */
  readonly samples: ReadonlyArray<{ readonly at: number; readonly depth: number }>;
}

export interface FingerprintGroup {
  readonly fingerprint: string;
  readonly reason: string;
  readonly errorName: string;
  readonly message: string;
  readonly count: number;
  readonly firstSeen: number;
  readonly lastSeen: number;
  readonly topics: readonly string[];
}

export const PARKING_SOURCE = 'parking';

interface LogTail {
  readonly letters: Map<string, TransportDeadLetter>;
  lastActivity(): number;
  subscription: TransportSubscription | undefined;
}
const MAX_SAMPLES = 360;

function parkedLetter(m: ParkedMessage): ConsoleLetter {
  return {
    id: m.messageId,
    ...(m.key !== undefined ? { key: m.key } : {}),
    headers: m.headers,
    body: m.payload,
    timestamp: m.parkedAt,
    deadLetterTopic: m.deadLetterTopic ?? '',
    letterKey: `parking:${m.id}`,
    originalTopic: m.originalTopic,
    group: m.headers[DeadLetterHeaders.originalGroup] ?? '',
    errorName: m.errorName,
    errorMessage: m.errorMessage,
    errorStack: m.headers[DeadLetterHeaders.errorStack] ?? '',
    reason: m.reason,
    attempts: m.attempts,
    firstFailureAt: Date.parse(m.headers[DeadLetterHeaders.firstFailureAt] ?? '') || m.parkedAt,
    lastFailureAt: m.parkedAt,
    source: PARKING_SOURCE,
    fingerprint: failureFingerprint(m),
    parkingId: m.id,
  };
}

/**
 * What every DLQ holds, from periodic scans (browse walks: nothing is consumed). One scan or removal
 * at a time per DLQ (`exclusive`): a RabbitMQ walk holds the queue's letters while it runs. A log
 * (Kafka) is tailed instead, by one subscription per DLQ in a group of this console's own (one group
 * per console process, not per scan). Letters a job already handled are hidden: a log keeps them
 * after a replay.
 */
export class DeadLetterInventory {
  private readonly queues = new Map<string, QueueView>();
  private readonly letters = new Map<string, ConsoleLetter[]>();
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Log DLQs (Kafka) are tailed, not rescanned: one group per console process, read from the start once. */
  private readonly tails = new Map<string, LogTail>();
  private readonly tailGroup = `switchboard-console-${randomUUID().slice(0, 8)}`;

  constructor(
    readonly sources: readonly ConsoleSource[],
    readonly parkingLot: ParkingLot | undefined,
    private readonly store: ConsoleStore,
    private readonly scan: { readonly limit: number; readonly idleMs: number },
  ) {}

  source(name: string): ConsoleSource | undefined {
    return this.sources.find((s) => s.name === name);
  }

  /** Runs `work` alone on one DLQ (scans and removals queue up behind each other). */
  exclusive<R>(source: string, deadLetterTopic: string, work: () => Promise<R>): Promise<R> {
    const id = `${source}\u0000${deadLetterTopic}`;
    const run = (this.locks.get(id) ?? Promise.resolve()).catch(() => undefined).then(work);
    this.locks.set(id, run);
    return run;
  }

  /** Rescans every DLQ and the parking lot. A failing DLQ keeps its last letters and shows the error. */
  async refresh(): Promise<void> {
    await Promise.all([...this.sources.flatMap((s) => s.deadLetterTopics.map((topic) => this.refreshQueue(s, topic))), this.parkingLot ? this.refreshParking(this.parkingLot) : Promise.resolve()]);
  }

  private async refreshQueue(source: ConsoleSource, topic: string): Promise<void> {
    const id = `${source.name}\u0000${topic}`;
    try {
      const logged = deadLettersAreLogged(source.transport, topic);
      const found = logged
        ? await this.tail(id, source, topic)
        : await this.exclusive(source.name, topic, () => walkTransportDeadLetters(source.transport, topic, { filter: {}, ids: [], limit: this.scan.limit, idleMs: this.scan.idleMs, mode: 'browse' }));
      const handled = logged ? await this.store.handledKeys(found.map((l) => l.letterKey)) : new Set<string>();
      const unique = new Map<string, ConsoleLetter>();
      for (const letter of found) {
        if (handled.has(letter.letterKey) || unique.has(letter.letterKey)) continue;
        unique.set(letter.letterKey, { ...letter, source: source.name, fingerprint: failureFingerprint(letter) });
      }
      this.letters.set(id, [...unique.values()]);
      this.record(id, { source: source.name, kind: source.transport.kind, deadLetterTopic: topic, depth: unique.size, truncated: found.length >= this.scan.limit, error: '' });
    } catch (error) {
      this.record(id, {
        source: source.name,
        kind: source.transport.kind,
        deadLetterTopic: topic,
        depth: this.letters.get(id)?.length ?? 0,
        truncated: false,
        error: String((error as Error).message ?? error),
      });
    }
  }

  /**
   * The letters of a log DLQ so far: a subscription (the console's own group, from the earliest record)
   * started at the first refresh, which waits until it has read what is there (nothing new for
   * `idleMs`). Keeps at most `limit` letters (the newest).
   */
  private async tail(id: string, source: ConsoleSource, topic: string): Promise<TransportDeadLetter[]> {
    let tail = this.tails.get(id);
    if (!tail) {
      const letters = new Map<string, TransportDeadLetter>();
      let lastActivity = Date.now();
      const created: LogTail = { letters, lastActivity: () => lastActivity, subscription: undefined };
      this.tails.set(id, created);
      try {
        created.subscription = await source.transport.subscribe(
          { topic, pattern: false, group: this.tailGroup, concurrency: 1, ordering: source.transport.capabilities.orderings[0] ?? 'partition', startFrom: 'earliest' },
          async (delivery) => {
            lastActivity = Date.now();
            const letter = describeDeadLetter(topic, delivery);
            letters.delete(letter.letterKey);
            letters.set(letter.letterKey, letter);
            if (letters.size > this.scan.limit) letters.delete(letters.keys().next().value!);
            await delivery.ack();
          },
        );
      } catch (error) {
        this.tails.delete(id);
        throw error;
      }
      while (Date.now() - created.lastActivity() < this.scan.idleMs) await new Promise((resolve) => setTimeout(resolve, 100));
      tail = created;
    }
    return [...tail.letters.values()];
  }

  /** Stops the tails of log DLQs. */
  async close(): Promise<void> {
    const tails = [...this.tails.values()];
    this.tails.clear();
    await Promise.all(tails.map((t) => t.subscription?.close()));
  }

  private async refreshParking(lot: ParkingLot): Promise<void> {
    const id = `${PARKING_SOURCE}\u0000`;
    try {
      const parked = await lot.list({ limit: this.scan.limit });
      this.letters.set(id, parked.map(parkedLetter));
      this.record(id, { source: PARKING_SOURCE, kind: 'parking lot', deadLetterTopic: '', depth: parked.length, truncated: parked.length >= this.scan.limit, error: '' });
    } catch (error) {
      this.record(id, { source: PARKING_SOURCE, kind: 'parking lot', deadLetterTopic: '', depth: 0, truncated: false, error: String((error as Error).message ?? error) });
    }
  }

  private record(id: string, view: Omit<QueueView, 'samples' | 'scannedAt'>): void {
    const at = Date.now();
    const samples = [...(this.queues.get(id)?.samples ?? []), { at, depth: view.depth }].slice(-MAX_SAMPLES);
    this.queues.set(id, { ...view, scannedAt: at, samples });
  }

  /** Drops letters a job just removed or handled, until the next scan sees for itself. */
  forget(letterKeys: ReadonlySet<string>): void {
    for (const [id, letters] of this.letters) {
      const kept = letters.filter((l) => !letterKeys.has(l.letterKey));
      if (kept.length === letters.length) continue;
      this.letters.set(id, kept);
      const view = this.queues.get(id);
      if (view) this.queues.set(id, { ...view, depth: kept.length });
    }
  }

  queueViews(): QueueView[] {
    return [...this.queues.values()].sort((a, b) => a.source.localeCompare(b.source) || a.deadLetterTopic.localeCompare(b.deadLetterTopic));
  }

  allLetters(): ConsoleLetter[] {
    return [...this.letters.values()].flat();
  }

  letter(letterKey: string): ConsoleLetter | undefined {
    return this.allLetters().find((l) => l.letterKey === letterKey);
  }

  inGroup(fingerprint: string): ConsoleLetter[] {
    return this.allLetters().filter((l) => l.fingerprint === fingerprint);
  }

  groups(): FingerprintGroup[] {
    const byPrint = new Map<string, { sample: ConsoleLetter; count: number; first: number; last: number; topics: Set<string> }>();
    for (const l of this.allLetters()) {
      const g = byPrint.get(l.fingerprint);
      if (!g) {
        byPrint.set(l.fingerprint, { sample: l, count: 1, first: l.lastFailureAt, last: l.lastFailureAt, topics: new Set([l.originalTopic]) });
        continue;
      }
      g.count++;
      g.first = Math.min(g.first, l.lastFailureAt);
      g.last = Math.max(g.last, l.lastFailureAt);
      g.topics.add(l.originalTopic);
    }
    return [...byPrint.entries()]
      .map(([fingerprint, g]) => ({
        fingerprint,
        reason: g.sample.reason,
        errorName: g.sample.errorName,
        message: normaliseErrorMessage(g.sample.errorMessage),
        count: g.count,
        firstSeen: g.first,
        lastSeen: g.last,
        topics: [...g.topics].sort(),
      }))
      .sort((a, b) => b.count - a.count || b.lastSeen - a.lastSeen);
  }
}
