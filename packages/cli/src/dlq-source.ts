import { randomUUID } from 'node:crypto';
import { DeadLetterHeaders, type DeadLetterSource, type ParkingFilter, type Transport } from '@switchboard/core';
import type { TransportMessage } from '@switchboard/core/transport';

/** A dead letter as read from a transport's DLQ. */
export interface TransportDeadLetter extends TransportMessage {
  readonly originalTopic: string;
  readonly errorName: string;
  readonly errorMessage: string;
  readonly reason: string;
  readonly attempts: number;
  readonly lastFailureAt: number;
}

function describe(delivery: TransportMessage): TransportDeadLetter {
  const h = delivery.headers;
  return {
    id: delivery.id,
    ...(delivery.key !== undefined ? { key: delivery.key } : {}),
    headers: h,
    body: delivery.body,
    timestamp: delivery.timestamp,
    originalTopic: h[DeadLetterHeaders.originalTopic] ?? '',
    errorName: h[DeadLetterHeaders.errorName] ?? '',
    errorMessage: h[DeadLetterHeaders.errorMessage] ?? '',
    reason: h[DeadLetterHeaders.reason] ?? '',
    attempts: Number(h[DeadLetterHeaders.attempts] ?? 0),
    lastFailureAt: Date.parse(h[DeadLetterHeaders.lastFailureAt] ?? '') || delivery.timestamp,
  };
}

function matches(letter: TransportDeadLetter, filter: ParkingFilter, ids: readonly string[]): boolean {
  if (ids.length > 0 && !ids.includes(letter.id)) return false;
  if (filter.topic !== undefined && letter.originalTopic !== filter.topic) return false;
  if (filter.errorName !== undefined && letter.errorName !== filter.errorName) return false;
  if (filter.since !== undefined && letter.lastFailureAt < filter.since) return false;
  if (filter.until !== undefined && letter.lastFailureAt >= filter.until) return false;
  return true;
}

/**
 * Walks a transport's DLQ. `browse` changes nothing; `replay` and `purge` act on the matching letters
 * (`act` runs first, then the letter is acknowledged: consumed from the DLQ).
 * - Queue transports (RabbitMQ): deliveries not acted on are held unacknowledged (prefetch covers
 *   `limit`) and handed back when the walk ends; a letter seen twice means the queue came round.
 * - Log transports (Kafka): browsing reads from the start with a throwaway group; replay reads as the
 *   group `switchboard-cli`, whose committed offset remembers what was replayed. A log cannot delete
 *   single records, so purge is refused (use the topic's retention).
 * Stops after `limit` matches or when nothing arrived for `idleMs`.
 */
export async function walkTransportDeadLetters(
  transport: Transport,
  deadLetterTopic: string,
  options: { filter: ParkingFilter; ids: readonly string[]; limit: number; idleMs: number; mode: 'browse' | 'replay' | 'purge' },
  act: (letter: TransportDeadLetter) => Promise<void> = async () => {},
): Promise<TransportDeadLetter[]> {
  const source = transport.deadLetterSource?.(deadLetterTopic);
  if (source) return walkDeadLetterSource(source, options, act);
  const caps = transport.capabilities;
  if (!caps.acknowledgements) throw new Error(`the ${transport.kind} transport can neither browse its dead letters nor acknowledge them`);
  const log = caps.replay;
  if (log && options.mode === 'purge') throw new Error(`${transport.kind} keeps dead letters in a log: single records cannot be deleted (let the topic's retention expire them, or replay them)`);
  const seen: TransportDeadLetter[] = [];
  const seenIds = new Set<string>();
  let lastActivity = Date.now();
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const full = () => seen.length >= options.limit;
  const group = log ? (options.mode === 'browse' ? `switchboard-cli-browse-${randomUUID().slice(0, 8)}` : 'switchboard-cli') : '';
  const subscription = await transport.subscribe(
    {
      topic: deadLetterTopic,
      pattern: false,
      group,
      concurrency: log ? 1 : Math.min(1000, options.limit + 100),
      ordering: transport.capabilities.orderings[0] ?? 'partition',
      startFrom: log ? 'earliest' : 'latest',
    },
    async (delivery) => {
      lastActivity = Date.now();
      const letter = describe(delivery);
      if (log) {
        if (full()) return;
        if (matches(letter, options.filter, options.ids)) {
          seen.push(letter);
          if (options.mode !== 'browse') await act(letter);
        }
        await delivery.ack(); // a throwaway group when browsing; the CLI's own group when replaying
        if (full()) finish();
        return;
      }
      if (seenIds.has(letter.id)) {
        finish(); // the queue came round: everything was seen
        await done;
        return;
      }
      seenIds.add(letter.id);
      if (full() || !matches(letter, options.filter, options.ids) || options.mode === 'browse') {
        if (matches(letter, options.filter, options.ids) && !full()) seen.push(letter);
        if (full()) finish();
        await done; // held unacknowledged, handed back when the walk ends
        return;
      }
      seen.push(letter);
      await act(letter);
      await delivery.ack();
      if (full()) finish();
    },
  );
  const idle = setInterval(() => Date.now() - lastActivity >= options.idleMs && finish(), 100);
  await done;
  clearInterval(idle);
  await subscription.close();
  return seen;
}

/** The same walk over a store of dead letters (Redis stream): read in order, act, then remove. */
async function walkDeadLetterSource(
  source: DeadLetterSource,
  options: { filter: ParkingFilter; ids: readonly string[]; limit: number; mode: 'browse' | 'replay' | 'purge' },
  act: (letter: TransportDeadLetter) => Promise<void>,
): Promise<TransportDeadLetter[]> {
  const seen: TransportDeadLetter[] = [];
  let cursor: string | undefined;
  while (seen.length < options.limit) {
    const batch = await source.read(cursor, 200);
    if (batch.length === 0) break;
    for (const stored of batch) {
      cursor = stored.cursor;
      const letter = describe(stored);
      if (seen.length >= options.limit || !matches(letter, options.filter, options.ids)) continue;
      seen.push(letter);
      if (options.mode === 'browse') continue;
      if (options.mode === 'replay') await act(letter);
      await source.remove([stored.cursor]);
    }
  }
  return seen;
}
