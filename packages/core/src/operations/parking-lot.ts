/** A message the DLQ consumer could not handle either, parked for manual reprocessing. */
export interface ParkedMessage {
  /** Parking-lot id (store-assigned). */
  readonly id: string;
  readonly messageId: string;
  readonly originalTopic: string;
  readonly deadLetterTopic?: string | undefined;
  readonly key?: string | undefined;
  /** All headers, including the x-dlq-* metadata and the `x-parking-history` of earlier trips. */
  readonly headers: Readonly<Record<string, string>>;
  readonly payload: Uint8Array;
  readonly reason: string;
  readonly errorName: string;
  readonly errorMessage: string;
  readonly attempts: number;
  readonly parkedAt: number;
  readonly replayedAt?: number | undefined;
  readonly replayCount: number;
}

export type NewParkedMessage = Omit<ParkedMessage, 'id' | 'parkedAt' | 'replayedAt' | 'replayCount'>;

export interface ParkingFilter {
  readonly topic?: string;
  readonly errorName?: string;
  /** Parked at or after (ms since the epoch). */
  readonly since?: number;
  /** Parked before (ms since the epoch). */
  readonly until?: number;
  /** Include messages already replayed (default false). */
  readonly includeReplayed?: boolean;
  readonly limit?: number;
}

/**
 * Where messages that failed in the DLQ consumer too are kept. Contracts: `park` resolves once the
 * message is stored; `markReplayed` never deletes (the row stays, marked); `delete` is explicit.
 */
export interface ParkingLot {
  park(message: NewParkedMessage): Promise<ParkedMessage>;
  list(filter?: ParkingFilter): Promise<ParkedMessage[]>;
  get(id: string): Promise<ParkedMessage | undefined>;
  markReplayed(ids: readonly string[]): Promise<void>;
  delete(ids: readonly string[]): Promise<number>;
  close?(): Promise<void>;
}

export function matchesFilter(message: ParkedMessage, filter: ParkingFilter): boolean {
  if (filter.topic !== undefined && message.originalTopic !== filter.topic) return false;
  if (filter.errorName !== undefined && message.errorName !== filter.errorName) return false;
  if (filter.since !== undefined && message.parkedAt < filter.since) return false;
  if (filter.until !== undefined && message.parkedAt >= filter.until) return false;
  if (!filter.includeReplayed && message.replayedAt !== undefined) return false;
  return true;
}

/** In-process parking lot, for tests. */
export class MemoryParkingLot implements ParkingLot {
  private readonly messages = new Map<string, ParkedMessage>();
  private nextId = 1;

  async park(message: NewParkedMessage): Promise<ParkedMessage> {
    const parked: ParkedMessage = { ...message, id: String(this.nextId++), parkedAt: Date.now(), replayCount: 0 };
    this.messages.set(parked.id, parked);
    return parked;
  }

  async list(filter: ParkingFilter = {}): Promise<ParkedMessage[]> {
    return [...this.messages.values()].filter((m) => matchesFilter(m, filter)).slice(0, filter.limit ?? Infinity);
  }

  async get(id: string): Promise<ParkedMessage | undefined> {
    return this.messages.get(id);
  }

  async markReplayed(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      const m = this.messages.get(id);
      if (m) this.messages.set(id, { ...m, replayedAt: Date.now(), replayCount: m.replayCount + 1 });
    }
  }

  async delete(ids: readonly string[]): Promise<number> {
    let n = 0;
    for (const id of ids) if (this.messages.delete(id)) n++;
    return n;
  }
}
