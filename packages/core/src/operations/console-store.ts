/**
 * What the DLQ console remembers: jobs (replay, park, discard) with a snapshot of every letter they act
 * on, and the audit trail of who did what when. A job survives the console's process: its letters are
 * copied into the store when it is created, so a job interrupted halfway resumes from the store and
 * loses nothing (an item whose effect ran but was not yet marked runs again: at least once).
 */

export type ConsoleAction = 'replay' | 'park' | 'discard';
export type ConsoleItemState = 'pending' | 'applied' | 'removed';
export type ConsoleJobState = 'running' | 'done' | 'failed';

/** One letter a job acts on. */
export interface NewConsoleJobItem {
  /** The letter's key (`letterKeyOf`), or `parking:<id>` for a parked message. */
  readonly letterKey: string;
  /** The console's name for the transport the DLQ belongs to, or `parking`. */
  readonly source: string;
  /** The DLQ the letter sits in ('' for the parking lot). */
  readonly deadLetterTopic: string;
  /** The parking-lot id, for letters from the parking lot. */
  readonly parkingId?: string | undefined;
  readonly messageId: string;
  readonly originalTopic: string;
  /** The group to replay to ('' for every group of the topic). */
  readonly group: string;
  readonly key?: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  /** The payload the action uses: the letter's own, or the operator's edit. */
  readonly payload: Uint8Array;
  readonly edited: boolean;
}

export interface ConsoleJobItem extends NewConsoleJobItem {
  /** pending → applied (replayed, parked or discarded) → removed (gone from its DLQ). */
  readonly state: ConsoleItemState;
}

export interface NewConsoleJob {
  readonly action: ConsoleAction;
  readonly actor: string;
  /** Why (required for discard; free text otherwise). */
  readonly reason: string;
  /** Replays per second; 0 = no limit. */
  readonly ratePerSecond: number;
}

export interface ConsoleJob extends NewConsoleJob {
  readonly id: string;
  readonly createdAt: number;
  readonly total: number;
  readonly applied: number;
  readonly removed: number;
  readonly state: ConsoleJobState;
  readonly error: string;
}

/** One line of the audit trail. */
export interface AuditEntry {
  readonly seq: number;
  readonly at: number;
  readonly actor: string;
  /** `job-created`, `replay`, `park`, `discard`, `job-done`, `job-failed`. */
  readonly action: string;
  readonly jobId: string;
  readonly source: string;
  readonly deadLetterTopic: string;
  readonly messageId: string;
  readonly letterKey: string;
  readonly detail: string;
}

export interface AuditFilter {
  readonly messageId?: string;
  readonly jobId?: string;
  readonly limit: number;
}

/** Contracts: every write that changes an item also writes its audit row, atomically. */
export interface ConsoleStore {
  /** Stores the job, its items (all pending) and a `job-created` audit row. */
  createJob(job: NewConsoleJob, items: readonly NewConsoleJobItem[]): Promise<ConsoleJob>;
  job(id: string): Promise<ConsoleJob | undefined>;
  /** Newest first. */
  jobs(limit: number): Promise<ConsoleJob[]>;
  unfinishedJobs(): Promise<ConsoleJob[]>;
  /** Items of a job in a state, in the order they were given. */
  items(jobId: string, state: ConsoleItemState, limit: number): Promise<ConsoleJobItem[]>;
  /** pending → applied, with the item's audit row (`action` = the job's); a no-op for other states. */
  markApplied(jobId: string, letterKey: string, detail: string): Promise<void>;
  /** applied → removed. */
  markRemoved(jobId: string, letterKeys: readonly string[]): Promise<void>;
  /** What keeps a running job from progressing now ('' once it progresses again). No audit row. */
  setJobError(jobId: string, error: string): Promise<void>;
  /** Ends the job, with a `job-done` or `job-failed` audit row. */
  finishJob(jobId: string, state: Exclude<ConsoleJobState, 'running'>, error: string): Promise<void>;
  /** Which of `letterKeys` an applied or removed item covers: handled letters a log DLQ still holds. */
  handledKeys(letterKeys: readonly string[]): Promise<Set<string>>;
  /** Newest first. */
  audit(filter: AuditFilter): Promise<AuditEntry[]>;
  close?(): Promise<void>;
}

interface MemoryJob {
  job: ConsoleJob;
  items: ConsoleJobItem[];
}

/** A console store in the process: jobs do not survive a restart. For tests and read-mostly use. */
export class MemoryConsoleStore implements ConsoleStore {
  private readonly jobsById = new Map<string, MemoryJob>();
  private readonly trail: AuditEntry[] = [];
  private nextJob = 1;

  async createJob(job: NewConsoleJob, items: readonly NewConsoleJobItem[]): Promise<ConsoleJob> {
    const created: ConsoleJob = { ...job, id: String(this.nextJob++), createdAt: Date.now(), total: items.length, applied: 0, removed: 0, state: 'running', error: '' };
    this.jobsById.set(created.id, { job: created, items: items.map((item) => ({ ...item, state: 'pending' })) });
    this.record(created, 'job-created', undefined, `${items.length} letter(s)${job.reason ? `: ${job.reason}` : ''}`);
    return created;
  }

  async job(id: string): Promise<ConsoleJob | undefined> {
    return this.jobsById.get(id)?.job;
  }

  async jobs(limit: number): Promise<ConsoleJob[]> {
    return [...this.jobsById.values()]
      .map((j) => j.job)
      .reverse()
      .slice(0, limit);
  }

  async unfinishedJobs(): Promise<ConsoleJob[]> {
    return [...this.jobsById.values()].map((j) => j.job).filter((j) => j.state === 'running');
  }

  async items(jobId: string, state: ConsoleItemState, limit: number): Promise<ConsoleJobItem[]> {
    return (this.jobsById.get(jobId)?.items ?? []).filter((i) => i.state === state).slice(0, limit);
  }

  async markApplied(jobId: string, letterKey: string, detail: string): Promise<void> {
    const entry = this.jobsById.get(jobId);
    const index = entry?.items.findIndex((i) => i.letterKey === letterKey && i.state === 'pending') ?? -1;
    if (!entry || index < 0) return;
    const item = entry.items[index]!;
    entry.items[index] = { ...item, state: 'applied' };
    entry.job = { ...entry.job, applied: entry.job.applied + 1 };
    this.record(entry.job, entry.job.action, item, detail);
  }

  async markRemoved(jobId: string, letterKeys: readonly string[]): Promise<void> {
    const entry = this.jobsById.get(jobId);
    if (!entry) return;
    entry.items = entry.items.map((i) => {
      if (i.state !== 'applied' || !letterKeys.includes(i.letterKey)) return i;
      entry.job = { ...entry.job, removed: entry.job.removed + 1 };
      return { ...i, state: 'removed' };
    });
  }

  async setJobError(jobId: string, error: string): Promise<void> {
    const entry = this.jobsById.get(jobId);
    if (entry?.job.state === 'running') entry.job = { ...entry.job, error };
  }

  async finishJob(jobId: string, state: Exclude<ConsoleJobState, 'running'>, error: string): Promise<void> {
    const entry = this.jobsById.get(jobId);
    if (entry?.job.state !== 'running') return;
    entry.job = { ...entry.job, state, error };
    this.record(entry.job, `job-${state}`, undefined, error);
  }

  async handledKeys(letterKeys: readonly string[]): Promise<Set<string>> {
    const wanted = new Set(letterKeys);
    const handled = new Set<string>();
    for (const { items } of this.jobsById.values()) for (const i of items) if (i.state !== 'pending' && wanted.has(i.letterKey)) handled.add(i.letterKey);
    return handled;
  }

  async audit(filter: AuditFilter): Promise<AuditEntry[]> {
    return this.trail
      .filter((e) => (filter.messageId === undefined || e.messageId === filter.messageId) && (filter.jobId === undefined || e.jobId === filter.jobId))
      .reverse()
      .slice(0, filter.limit);
  }

  private record(job: ConsoleJob, action: string, item: NewConsoleJobItem | undefined, detail: string): void {
    this.trail.push({
      seq: this.trail.length + 1,
      at: Date.now(),
      actor: job.actor,
      action,
      jobId: job.id,
      source: item?.source ?? '',
      deadLetterTopic: item?.deadLetterTopic ?? '',
      messageId: item?.messageId ?? '',
      letterKey: item?.letterKey ?? '',
      detail,
    });
  }
}
