import type { DeliveryGuarantee } from '../ports/capabilities.js';
import { isCallerError } from '../ports/errors.js';
import type { TransportMessage } from '../ports/message.js';
import type { RawPublisher } from '../ports/ports.js';
import { backoffDelay } from '../ports/retry.js';

export interface RelayLoopOptions {
  /** One pass of the relay; `failed`: a publish failed (the next pause is a backoff). */
  pass(): Promise<{ readonly failed: boolean }>;
  /** A pass threw (the store failed): reported, then a backoff. */
  onError(error: unknown): void;
  /** Pause after a pass that did not fail, ms. */
  readonly pollIntervalMs: number;
  /** Backoff while passes fail: from `retryInitialMs` doubling to `retryMaxMs`, with 20 % jitter. */
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  /** Where the store can say it has new work: resolves early then (at most after `ms`). */
  waitForWork?(ms: number): Promise<void>;
}

/**
 * The background loop both relays run (the fallback relay, the outbox relay): a pass, then a pause —
 * the poll interval, ended early by `waitForWork`, or a growing backoff while passes fail — until
 * `stop`, which ends a pause at once and waits for the pass under way.
 */
export class RelayLoop {
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly options: RelayLoopOptions) {}

  get isRunning(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    this.loop = undefined;
  }

  private async run(): Promise<void> {
    const { retryInitialMs, retryMaxMs, pollIntervalMs } = this.options;
    const policy = { maxAttempts: Number.MAX_SAFE_INTEGER, initialIntervalMs: retryInitialMs, multiplier: 2, maxIntervalMs: retryMaxMs, jitter: 0.2 };
    let failures = 0;
    while (this.running) {
      let backoff: number | undefined;
      try {
        const pass = await this.options.pass();
        failures = pass.failed ? failures + 1 : 0;
        if (pass.failed) backoff = backoffDelay(policy, failures);
      } catch (error) {
        failures++;
        backoff = backoffDelay(policy, failures);
        this.options.onError(error);
      }
      if (!this.running) break;
      await this.pause(backoff, pollIntervalMs);
    }
  }

  /** Waits `backoff`, or (none) until the store reports work, at most `idleMs`. `stop` ends either. */
  private pause(backoff: number | undefined, idleMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, backoff ?? idleMs);
      this.wake = done;
      if (backoff === undefined && this.options.waitForWork) void this.options.waitForWork(idleMs).then(done, done);
    });
  }
}

/** Splits records into runs of consecutive records that `sameRun` puts together (one publish each, order kept). */
export function consecutiveRuns<R>(records: readonly R[], sameRun: (head: R, next: R) => boolean): R[][] {
  const runs: R[][] = [];
  for (const record of records) {
    const last = runs[runs.length - 1];
    if (last && sameRun(last[0]!, record)) last.push(record);
    else runs.push([record]);
  }
  return runs;
}

/** What a relay keeps of a message waiting to go: its topic, its guarantee, the message itself. */
export interface WaitingRecord {
  readonly seq: string;
  readonly topic: string;
  readonly guarantee: DeliveryGuarantee;
  readonly message: TransportMessage;
}

/** What {@link publishRun} does after publishing a run: settle what went or what failed. */
export interface RunSettling<R> {
  /** The records went (confirmed): remove them, report. */
  sent(records: readonly R[]): Promise<void>;
  /** The records failed with `error`: count the attempt, report. */
  failed(records: readonly R[], error: unknown): Promise<void>;
}

/**
 * Publishes one run of stored records (same topic and guarantee: a relay's fallback store or outbox)
 * through `publisher`. A run the transport refuses for what it holds (see `isCallerError`: it would
 * fail the same way every time) is sent again one record at a time, so only the refused records stay,
 * added to `refused` for the pass to go on past them; any other failure (the broker) is `failed`: the
 * pass ends there, order kept.
 */
export async function publishRun<R extends WaitingRecord>(run: readonly R[], publisher: RawPublisher, settle: RunSettling<R>, refused: Set<string>): Promise<{ relayed: number; failed: boolean }> {
  const first = run[0]!;
  try {
    await publisher.publish(
      first.topic,
      run.map((r) => r.message),
      { guarantee: first.guarantee },
    );
  } catch (error) {
    if (isCallerError(error) && run.length > 1) {
      let relayed = 0;
      for (const record of run) {
        const one = await publishRun([record], publisher, settle, refused);
        relayed += one.relayed;
        if (one.failed) return { relayed, failed: true };
      }
      return { relayed, failed: false };
    }
    await settle.failed(run, error);
    if (!isCallerError(error)) return { relayed: 0, failed: true };
    for (const record of run) refused.add(record.seq);
    return { relayed: 0, failed: false };
  }
  await settle.sent(run);
  return { relayed: run.length, failed: false };
}
