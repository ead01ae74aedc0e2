import type { DeliveryGuarantee } from '../ports/capabilities.js';
import type { TransportMessage } from '../ports/message.js';

/** A message that could not be published, kept for the relay. The message id is kept, so consumers can deduplicate. */
export interface FallbackRecord {
  readonly topic: string;
  readonly message: TransportMessage;
  readonly guarantee: DeliveryGuarantee;
  /** `dead-letter`: it was a dead letter, relayed through the transport's dead-letter publisher. */
  readonly via: 'publish' | 'dead-letter';
  /** When the first publish attempt failed (ms since the epoch). */
  readonly firstFailureAt: number;
  /** Publish attempts so far (1: the original publish). */
  readonly attempts: number;
  readonly lastError?: string;
}

/** A stored record with its store-assigned position (order of append). */
export interface StoredRecord extends FallbackRecord {
  readonly seq: string;
}

/**
 * Where diverted messages wait for the broker. Contracts:
 * - `append` resolves only once the records are stored (as durably as the store is configured);
 * - `peek` returns the oldest records in append order and removes nothing;
 * - `remove` is called only after the broker confirmed the records;
 * - one relay at a time drains a store: `acquireLease` grants or renews a time-bound lease.
 */
export interface FallbackStore {
  append(records: readonly FallbackRecord[]): Promise<void>;
  peek(limit: number): Promise<StoredRecord[]>;
  remove(seqs: readonly string[]): Promise<void>;
  /** Counts one more failed relay attempt for these records. */
  markAttempt(seqs: readonly string[], error: string): Promise<void>;
  /** Moves records whose first failure is older than `maxAgeMs` aside (never drops them); returns how many moved. */
  expire(maxAgeMs: number): Promise<number>;
  /** Records moved aside by `expire`. */
  expired(limit: number): Promise<StoredRecord[]>;
  depth(): Promise<number>;
  /** True when `owner` holds the relay lease for the next `ttlMs` (taken if free or expired, renewed if held). */
  acquireLease(owner: string, ttlMs: number): Promise<boolean>;
  releaseLease(owner: string): Promise<void>;
  close?(): Promise<void>;
}

/** In-process store, for tests and for the in-memory transport. Nothing survives the process. */
export class MemoryFallbackStore implements FallbackStore {
  private records: StoredRecord[] = [];
  private readonly aside: StoredRecord[] = [];
  private nextSeq = 1;
  private lease: { owner: string; until: number } | undefined;

  async append(records: readonly FallbackRecord[]): Promise<void> {
    for (const record of records) this.records.push({ ...record, seq: String(this.nextSeq++) });
  }

  async peek(limit: number): Promise<StoredRecord[]> {
    return this.records.slice(0, limit);
  }

  async remove(seqs: readonly string[]): Promise<void> {
    const gone = new Set(seqs);
    this.records = this.records.filter((r) => !gone.has(r.seq));
  }

  async markAttempt(seqs: readonly string[], error: string): Promise<void> {
    const marked = new Set(seqs);
    this.records = this.records.map((r) => (marked.has(r.seq) ? { ...r, attempts: r.attempts + 1, lastError: error } : r));
  }

  async expire(maxAgeMs: number): Promise<number> {
    const cutoff = Date.now() - maxAgeMs;
    const old = this.records.filter((r) => r.firstFailureAt < cutoff);
    this.aside.push(...old);
    this.records = this.records.filter((r) => r.firstFailureAt >= cutoff);
    return old.length;
  }

  async expired(limit: number): Promise<StoredRecord[]> {
    return this.aside.slice(0, limit);
  }

  async depth(): Promise<number> {
    return this.records.length;
  }

  async acquireLease(owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    if (this.lease && this.lease.owner !== owner && this.lease.until > now) return false;
    this.lease = { owner, until: now + ttlMs };
    return true;
  }

  async releaseLease(owner: string): Promise<void> {
    if (this.lease?.owner === owner) this.lease = undefined;
  }
}
