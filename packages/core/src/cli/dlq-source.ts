import type { Delivery, TransportMessage } from '../message.js';
import type { Transport } from '../ports.js';
import { DeadLetterHeaders } from '../dead-letter.js';
import type { ParkingFilter } from '../operations/parking-lot.js';

/** A dead letter as read from a transport's DLQ. */
export interface TransportDeadLetter extends TransportMessage {
  readonly originalTopic: string;
  readonly errorName: string;
  readonly errorMessage: string;
  readonly reason: string;
  readonly attempts: number;
  readonly lastFailureAt: number;
}

function describe(delivery: Delivery): TransportDeadLetter {
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
 * Walks a transport's DLQ as the group `switchboard-cli` (from the earliest message where the
 * transport keeps history). `act` decides per matching letter: true = acknowledge (consumed: replayed
 * or purged), false = leave it (handed back unacknowledged). Stops after `limit` matches or when
 * nothing arrived for `idleMs`.
 */
export async function walkTransportDeadLetters(
  transport: Transport,
  deadLetterTopic: string,
  options: { filter: ParkingFilter; ids: readonly string[]; limit: number; idleMs: number },
  act: (letter: TransportDeadLetter) => Promise<boolean>,
): Promise<TransportDeadLetter[]> {
  if (!transport.capabilities.acknowledgements) {
    throw new Error(`the ${transport.kind} transport keeps its dead letters outside the broker's queues (Redis: a stream); use --source parking, or read the stream ${deadLetterTopic} with XRANGE`);
  }
  const seen: TransportDeadLetter[] = [];
  let lastActivity = Date.now();
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const subscription = await transport.subscribe(
    { topic: deadLetterTopic, pattern: false, group: transport.kind === 'rabbitmq' ? '' : 'switchboard-cli', concurrency: 1, startFrom: transport.capabilities.replay ? 'earliest' : 'latest' },
    async (delivery) => {
      lastActivity = Date.now();
      const letter = describe(delivery);
      if (seen.length >= options.limit || !matches(letter, options.filter, options.ids)) return; // unsettled: handed back
      seen.push(letter);
      if (await act(letter)) await delivery.ack();
      if (seen.length >= options.limit) finish();
    },
  );
  const idle = setInterval(() => Date.now() - lastActivity >= options.idleMs && finish(), 100);
  await done;
  clearInterval(idle);
  await subscription.close();
  return seen;
}
