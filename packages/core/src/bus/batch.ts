import { z } from 'zod';
import type { BatchHandler, BatchOptions, BatchResult } from '../ports/ports.js';
import type { Message } from '../ports/message.js';
import type { Handler } from '../ports/ports.js';

/** Validates {@link BatchOptions} (errors are reported under `batch.`). */
export const batchOptionsSchema = z.object({ maxSize: z.number().int().min(1).max(10_000), maxWaitMs: z.number().int().min(0).max(600_000) }).strict();

interface Waiting<T> {
  readonly message: Message<T>;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The failures a batch handler reported, by message id; or, when its result cannot say which messages
 * failed (`failed` not a list, an entry without a message of this batch), an error that fails the
 * whole batch: a message is never acknowledged on an outcome nobody can read. A result without
 * `failed` (nothing, or whatever the handler's last call returned) means every message was handled.
 */
function failuresOf<T>(result: BatchResult<T> | unknown, batch: readonly Waiting<T>[]): Map<string, unknown> | Error {
  const failed = new Map<string, unknown>();
  if (typeof result !== 'object' || result === null || !('failed' in result) || result.failed === undefined) return failed;
  const list = (result as { failed: unknown }).failed;
  const unreadable = (why: string) => new Error(`the batch handler's result cannot say which messages failed: ${why}; the whole batch counts as failed`);
  if (!Array.isArray(list)) return unreadable(`\`failed\` must be a list of { message, error } (got ${typeof list})`);
  const ids = new Set(batch.map((w) => w.message.id));
  for (const entry of list as unknown[]) {
    const id = (entry as { message?: { id?: unknown } } | null)?.message?.id;
    if (typeof id !== 'string' || !ids.has(id)) return unreadable(`an entry of \`failed\` names no message of this batch (${typeof id === 'string' ? `id "${id.slice(0, 64)}"` : 'no message'})`);
    failed.set(id, (entry as { error?: unknown }).error);
  }
  return failed;
}

/**
 * Turns a batch handler into a per-message handler for the pipeline: each message waits until its
 * batch is full or `maxWaitMs` passed since the batch's first message, then settles with its own
 * outcome. So retries, backoff, dead letters, acks and metrics stay per message: a failed message is
 * retried by the pipeline and joins a later batch.
 */
export function batchingHandler<T>(handler: BatchHandler<T>, options: BatchOptions): Handler<T> {
  let pending: Waiting<T>[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;

  const run = async (batch: Waiting<T>[]) => {
    let result: BatchResult<T>;
    try {
      result = await handler(batch.map((w) => w.message));
    } catch (error) {
      for (const w of batch) w.reject(error);
      return;
    }
    const failed = failuresOf(result, batch);
    if (failed instanceof Error) {
      for (const w of batch) w.reject(failed);
      return;
    }
    for (const w of batch) {
      if (failed.has(w.message.id)) w.reject(failed.get(w.message.id));
      else w.resolve();
    }
  };

  const flush = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const batch = pending.slice(0, options.maxSize);
    pending = pending.slice(options.maxSize);
    if (pending.length > 0) timer = setTimeout(flush, options.maxWaitMs);
    if (batch.length > 0) void run(batch);
  };

  return (message) =>
    new Promise<void>((resolve, reject) => {
      pending.push({ message, resolve, reject });
      if (pending.length >= options.maxSize) flush();
      else timer ??= setTimeout(flush, options.maxWaitMs);
    });
}
