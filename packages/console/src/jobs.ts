import { createHash } from 'node:crypto';
import {
  type ConsoleAction,
  type ConsoleJob,
  type ConsoleJobItem,
  type ConsoleStore,
  deadLettersAreLogged,
  describeDeadLetter,
  type NewConsoleJobItem,
  type Publisher,
  REPLAY_COUNT_HEADER,
  replayTo,
  walkTransportDeadLetters,
} from '@switchboard/core';
import { type ConsoleLetter, type DeadLetterInventory, PARKING_SOURCE } from './inventory.js';

export interface JobRequest {
  readonly action: ConsoleAction;
  readonly actor: string;
  readonly letters: readonly ConsoleLetter[];
  readonly reason: string;
  readonly ratePerSecond: number;
  /** Replaces the payload (one letter only: edit and replay). */
  readonly editedPayload?: Uint8Array;
}

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

/**
 * Runs console jobs from the store. Per item: the effect (publish the replay, park, or nothing for a
 * discard), then `markApplied` with its audit row; then, in chunks, the letters are removed from their
 * DLQ (a queue or stream: consumed; the parking lot: marked replayed or deleted; a log: nothing, the
 * store's handled keys hide them) and marked removed. A job interrupted anywhere resumes from the
 * store: an effect that ran but was not marked runs again (at least once, never lost).
 */
export class JobRunner {
  private readonly running = new Map<string, Promise<void>>();
  private stopped = false;

  constructor(
    private readonly store: ConsoleStore,
    private readonly inventory: DeadLetterInventory,
    private readonly removalIdleMs: number,
  ) {}

  async submit(request: JobRequest): Promise<ConsoleJob> {
    if (request.letters.length === 0) throw new ActionError('no letters selected');
    if (request.action === 'discard' && !request.reason.trim()) throw new ActionError('a discard needs a reason');
    if (request.action === 'park' && !this.inventory.parkingLot) throw new ActionError('parking needs a parking lot (start the console with a database)');
    if (request.editedPayload && (request.letters.length !== 1 || request.action !== 'replay')) throw new ActionError('an edited payload replays one letter');
    for (const letter of request.letters) {
      if (request.action === 'replay' && !letter.originalTopic) throw new ActionError(`letter ${letter.id} has no original topic: it cannot be replayed`);
      if (request.action === 'park' && letter.source === PARKING_SOURCE) throw new ActionError(`letter ${letter.id} is parked already`);
      if (letter.source !== PARKING_SOURCE && !this.inventory.source(letter.source)) throw new ActionError(`unknown source ${letter.source}`);
      if (request.action === 'replay' && letter.source === PARKING_SOURCE) this.parkedSourceOf(letter.id, letter.deadLetterTopic); // refused now, not halfway through the job
    }
    const items: NewConsoleJobItem[] = request.letters.map((l) => ({
      letterKey: l.letterKey,
      source: l.source,
      deadLetterTopic: l.deadLetterTopic,
      ...(l.parkingId !== undefined ? { parkingId: l.parkingId } : {}),
      messageId: l.id,
      originalTopic: l.originalTopic,
      group: l.group,
      ...(l.key !== undefined ? { key: l.key } : {}),
      headers: l.headers,
      payload: request.editedPayload ?? l.body,
      edited: request.editedPayload !== undefined,
    }));
    const job = await this.store.createJob({ action: request.action, actor: request.actor, reason: request.reason, ratePerSecond: request.ratePerSecond }, items);
    this.start(job.id);
    return job;
  }

  /** Resumes the jobs a previous process left running. */
  async resumeUnfinished(): Promise<number> {
    const jobs = await this.store.unfinishedJobs();
    for (const job of jobs) this.start(job.id);
    return jobs.length;
  }

  /** Waits for the job to end (tests, shutdown). */
  async settled(jobId: string): Promise<void> {
    await this.running.get(jobId);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled(this.running.values());
  }

  private start(jobId: string): void {
    if (this.running.has(jobId)) return;
    const run = this.run(jobId)
      .catch(async (error) => {
        if (!this.stopped) await this.store.finishJob(jobId, 'failed', String((error as Error).message ?? error)).catch(() => undefined);
      })
      .finally(() => this.running.delete(jobId));
    this.running.set(jobId, run);
  }

  private async run(jobId: string): Promise<void> {
    const job = await this.store.job(jobId);
    if (job?.state !== 'running') return;
    const interval = job.ratePerSecond > 0 ? 1000 / job.ratePerSecond : 0;
    let next = Date.now();
    for (;;) {
      const pending = await this.store.items(jobId, 'pending', 100);
      if (pending.length === 0) break;
      for (const item of pending) {
        if (this.stopped) return;
        if (interval > 0) {
          const wait = next - Date.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          next = Math.max(next, Date.now()) + interval;
        }
        const detail = await this.persist(job, () => this.apply(job, item));
        if (detail === undefined) return;
        await this.store.markApplied(jobId, item.letterKey, detail);
      }
      if ((await this.persist(job, () => this.removeApplied(job).then(() => true))) === undefined) return;
    }
    if ((await this.persist(job, () => this.removeApplied(job).then(() => true))) === undefined) return;
    if (!this.stopped) await this.store.finishJob(jobId, 'done', '');
  }

  /**
   * Runs `step` until it succeeds: a broker or database that is down pauses the job (its error shown
   * on the job page, retried after 1 s, doubling up to 30 s) instead of failing it. Undefined when the
   * runner stopped meanwhile. A step that can never succeed (no transport to replay through) fails the job.
   */
  private async persist<R>(job: ConsoleJob, step: () => Promise<R>): Promise<R | undefined> {
    let delay = 1000;
    let failing = false;
    for (;;) {
      if (this.stopped) return undefined;
      try {
        const result = await step();
        if (failing) await this.store.setJobError(job.id, '');
        return result;
      } catch (error) {
        if (error instanceof ActionError) throw error;
        failing = true;
        await this.store.setJobError(job.id, `${String((error as Error)?.message ?? error).slice(0, 500)} (retrying in ${Math.round(delay / 1000)} s)`).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  private async apply(job: ConsoleJob, item: ConsoleJobItem): Promise<string> {
    const edited = item.edited ? ` (payload edited, sha256 ${sha(item.payload)})` : '';
    if (job.action === 'discard') return `discarded: ${job.reason}`;
    if (job.action === 'park') {
      const failure = describeDeadLetter(item.deadLetterTopic, { id: item.messageId, headers: item.headers, body: item.payload, timestamp: Date.now() });
      const parked = await this.inventory.parkingLot!.park({
        messageId: item.messageId,
        originalTopic: item.originalTopic,
        deadLetterTopic: item.deadLetterTopic,
        ...(item.key !== undefined ? { key: item.key } : {}),
        headers: item.headers,
        payload: item.payload,
        reason: failure.reason || 'parked from the console',
        errorName: failure.errorName,
        errorMessage: failure.errorMessage,
        attempts: failure.attempts,
      });
      return `parked as ${parked.id}${job.reason ? `: ${job.reason}` : ''}`;
    }
    const publisher = item.source === PARKING_SOURCE ? this.parkedSourceOf(item.messageId, item.deadLetterTopic).publisher : this.inventory.source(item.source)?.publisher;
    if (!publisher) throw new ActionError(`no transport to replay ${item.messageId} through`);
    const count = Number(item.headers[REPLAY_COUNT_HEADER] ?? 0) || 0;
    await replayTo(publisher, item.originalTopic, item.group || undefined, {
      id: item.messageId,
      ...(item.key !== undefined ? { key: item.key } : {}),
      headers: { ...item.headers, [REPLAY_COUNT_HEADER]: String(count + 1) },
      payload: item.payload,
    });
    return `replayed to ${item.originalTopic}${item.group ? ` (group ${item.group})` : ''}${edited}`;
  }

  /**
   * The source a parked message is replayed through: the one whose dead-letter topics include the
   * message's (the parking lot stores no source; its headers came over the wire and never choose).
   * With one source, that one. Anything else is refused, naming the candidates.
   */
  private parkedSourceOf(messageId: string, deadLetterTopic: string): { publisher: Publisher } {
    const sources = this.inventory.sources;
    const owners = sources.filter((s) => s.deadLetterTopics.includes(deadLetterTopic));
    if (owners.length === 1) return owners[0]!;
    if (owners.length === 0 && sources.length === 1) return sources[0]!;
    const candidates = (owners.length > 0 ? owners : sources).map((s) => s.name).join(', ');
    throw new ActionError(
      `parked message ${messageId} came from dead-letter topic "${deadLetterTopic}", which ${owners.length === 0 ? 'no source lists' : `${owners.length} sources list`} (${candidates}): list it on exactly one source to replay it`,
    );
  }

  /** Takes the applied letters out of their DLQs, one DLQ at a time. */
  private async removeApplied(job: ConsoleJob): Promise<void> {
    const applied = await this.store.items(job.id, 'applied', 10_000);
    const byQueue = new Map<string, ConsoleJobItem[]>();
    for (const item of applied) {
      const id = `${item.source}\u0000${item.deadLetterTopic}`;
      byQueue.set(id, [...(byQueue.get(id) ?? []), item]);
    }
    for (const items of byQueue.values()) {
      const { source: sourceName, deadLetterTopic } = items[0]!;
      const keys = items.map((i) => i.letterKey);
      if (sourceName === PARKING_SOURCE) {
        const lot = this.inventory.parkingLot!;
        const ids = items.map((i) => i.parkingId!).filter(Boolean);
        if (job.action === 'replay') await lot.markReplayed(ids);
        else await lot.delete(ids);
      } else {
        const source = this.inventory.source(sourceName);
        if (!source) throw new ActionError(`unknown source ${sourceName}: it is no longer configured`);
        if (!deadLettersAreLogged(source.transport, deadLetterTopic)) {
          // Consumed from the queue or stream; a letter not found is gone already (an earlier run removed it).
          await this.inventory.exclusive(sourceName, deadLetterTopic, () =>
            walkTransportDeadLetters(source.transport, deadLetterTopic, { filter: {}, ids: [], keys, limit: keys.length, idleMs: this.removalIdleMs, mode: 'purge' }),
          );
        }
      }
      await this.store.markRemoved(job.id, keys);
      this.inventory.forget(new Set(keys));
    }
  }
}

/** A request the console refuses (shown to the operator, HTTP 400). */
export class ActionError extends Error {}
