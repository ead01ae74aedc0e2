import { createHash, randomUUID } from 'node:crypto';
import { DeadLetterHeaders } from '../pipeline/dead-letter.js';
import type { TransportMessage } from '../ports/message.js';
import type { DeadLetterSource, Transport } from '../ports/ports.js';
import type { ParkingFilter } from './parking-lot.js';

/** A dead letter as read from a transport's DLQ, with its dead-letter headers decoded. */
export interface TransportDeadLetter extends TransportMessage {
  readonly deadLetterTopic: string;
  /**
   * Identifies this dead-lettering of this message: the DLQ, the message id and the failure time and
   * attempts from its headers. A message dead-lettered again after a replay gets a new key; duplicate
   * copies of one dead-lettering (at-least-once) share it.
   */
  readonly letterKey: string;
  readonly originalTopic: string;
  /** The group that failed it (x-dlq-original-group), '' when the transport has no groups. */
  readonly group: string;
  readonly errorName: string;
  readonly errorMessage: string;
  readonly errorStack: string;
  readonly reason: string;
  readonly attempts: number;
  readonly firstFailureAt: number;
  readonly lastFailureAt: number;
}

/** The key of one dead-lettering (see {@link TransportDeadLetter.letterKey}). */
export function letterKeyOf(deadLetterTopic: string, message: Pick<TransportMessage, 'id' | 'headers' | 'timestamp'>): string {
  const h = message.headers;
  const when = h[DeadLetterHeaders.lastFailureAt] ?? String(message.timestamp);
  return createHash('sha256')
    .update(`${deadLetterTopic}\n${message.id}\n${when}\n${h[DeadLetterHeaders.attempts] ?? ''}`)
    .digest('hex')
    .slice(0, 24);
}

/** Decodes the dead-letter headers of a message read from `deadLetterTopic`. */
export function describeDeadLetter(deadLetterTopic: string, delivery: TransportMessage): TransportDeadLetter {
  const h = delivery.headers;
  const lastFailureAt = Date.parse(h[DeadLetterHeaders.lastFailureAt] ?? '') || delivery.timestamp;
  return {
    id: delivery.id,
    ...(delivery.key !== undefined ? { key: delivery.key } : {}),
    headers: h,
    body: delivery.body,
    timestamp: delivery.timestamp,
    deadLetterTopic,
    letterKey: letterKeyOf(deadLetterTopic, delivery),
    originalTopic: h[DeadLetterHeaders.originalTopic] ?? '',
    group: h[DeadLetterHeaders.originalGroup] ?? '',
    errorName: h[DeadLetterHeaders.errorName] ?? '',
    errorMessage: h[DeadLetterHeaders.errorMessage] ?? '',
    errorStack: h[DeadLetterHeaders.errorStack] ?? '',
    reason: h[DeadLetterHeaders.reason] ?? '',
    attempts: Number(h[DeadLetterHeaders.attempts] ?? 0) || 0,
    firstFailureAt: Date.parse(h[DeadLetterHeaders.firstFailureAt] ?? '') || lastFailureAt,
    lastFailureAt,
  };
}

export interface DeadLetterWalkOptions {
  readonly filter: ParkingFilter;
  /** Message ids to select (none: every letter the filter matches). */
  readonly ids: readonly string[];
  /** Letter keys to select (none: no restriction). */
  readonly keys?: readonly string[];
  readonly limit: number;
  readonly idleMs: number;
  readonly mode: 'browse' | 'replay' | 'purge';
}

function matches(letter: TransportDeadLetter, options: DeadLetterWalkOptions): boolean {
  const { filter, ids, keys } = options;
  if (ids.length > 0 && !ids.includes(letter.id)) return false;
  if (keys && keys.length > 0 && !keys.includes(letter.letterKey)) return false;
  if (filter.topic !== undefined && letter.originalTopic !== filter.topic) return false;
  if (filter.errorName !== undefined && letter.errorName !== filter.errorName) return false;
  if (filter.since !== undefined && letter.lastFailureAt < filter.since) return false;
  if (filter.until !== undefined && letter.lastFailureAt >= filter.until) return false;
  return true;
}

/** True when the transport keeps dead letters in a log (records cannot be deleted one by one). */
export function deadLettersAreLogged(transport: Transport, deadLetterTopic: string): boolean {
  return transport.deadLetterSource?.(deadLetterTopic) === undefined && transport.capabilities.replay;
}

/**
 * Walks a transport's DLQ. `browse` changes nothing; `replay` and `purge` act on the matching letters
 * (`act` runs first, then the letter is acknowledged: consumed from the DLQ).
 * - Queue transports (RabbitMQ): deliveries not acted on are held unacknowledged (prefetch covers
 *   `limit`) and handed back when the walk ends; a letter seen twice means the queue came round.
 * - Log transports (Kafka): browsing reads from the start with a throwaway group; replay reads as the
 *   group `switchboard-cli`, whose committed offset remembers what was replayed. A log cannot delete
 *   single records, so purge is refused (use the topic's retention).
 * - Stores of dead letters ({@link DeadLetterSource}, e.g. a Redis stream): read in order, act, remove.
 * Stops after `limit` matches or when nothing arrived for `idleMs`.
 */
export async function walkTransportDeadLetters(
  transport: Transport,
  deadLetterTopic: string,
  options: DeadLetterWalkOptions,
  act: (letter: TransportDeadLetter) => Promise<void> = async () => {},
): Promise<TransportDeadLetter[]> {
  const source = transport.deadLetterSource?.(deadLetterTopic);
  if (source) return walkDeadLetterSource(source, deadLetterTopic, options, act);
  const caps = transport.capabilities;
  if (!caps.acknowledgements) throw new Error(`the ${transport.kind} transport can neither browse its dead letters nor acknowledge them`);
  const log = caps.replay;
  if (log && options.mode === 'purge') throw new Error(`${transport.kind} keeps dead letters in a log: single records cannot be deleted (let the topic's retention expire them, or replay them)`);
  const seen: TransportDeadLetter[] = [];
  const seenKeys = new Set<string>();
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
      const letter = describeDeadLetter(deadLetterTopic, delivery);
      if (log) {
        if (full()) return;
        if (matches(letter, options)) {
          seen.push(letter);
          if (options.mode !== 'browse') await act(letter);
        }
        await delivery.ack(); // a throwaway group when browsing; the CLI's own group when replaying
        if (full()) finish();
        return;
      }
      if (seenKeys.has(letter.letterKey)) {
        finish(); // the queue came round: everything was seen
        await done;
        return;
      }
      seenKeys.add(letter.letterKey);
      if (full() || !matches(letter, options) || options.mode === 'browse') {
        if (matches(letter, options) && !full()) seen.push(letter);
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
  deadLetterTopic: string,
  options: DeadLetterWalkOptions,
  act: (letter: TransportDeadLetter) => Promise<void>,
): Promise<TransportDeadLetter[]> {
  const seen: TransportDeadLetter[] = [];
  let cursor: string | undefined;
  while (seen.length < options.limit) {
    const batch = await source.read(cursor, 200);
    if (batch.length === 0) break;
    for (const stored of batch) {
      cursor = stored.cursor;
      const letter = describeDeadLetter(deadLetterTopic, stored);
      if (seen.length >= options.limit || !matches(letter, options)) continue;
      seen.push(letter);
      if (options.mode === 'browse') continue;
      if (options.mode === 'replay') await act(letter);
      await source.remove([stored.cursor]);
    }
  }
  return seen;
}
