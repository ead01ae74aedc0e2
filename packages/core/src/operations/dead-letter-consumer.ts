import { describeFailure } from '../util/failure.js';
import { DeadLetterHeaders, defaultDeadLetterTopic } from '../pipeline/dead-letter.js';
import type { OutgoingMessage } from '../ports/message.js';
import type { FinalFailure, GroupPublisher, Handler, Publisher, SubscribeOptions, Subscriber, Subscription } from '../ports/ports.js';
import type { RetryPolicyInput } from '../ports/retry.js';
import type { NewParkedMessage, ParkedMessage, ParkingFilter, ParkingLot } from './parking-lot.js';

/** Header carrying earlier trips through the parking lot (JSON array), so a replayed message keeps its history. */
export const PARKING_HISTORY_HEADER = 'x-parking-history';
/** Header counting replays from the parking lot. */
export const REPLAY_COUNT_HEADER = 'x-replay-count';

export interface ParkingHistoryEntry {
  readonly parkedAt: string;
  readonly reason: string;
  readonly errorName: string;
  readonly errorMessage: string;
  readonly attempts: number;
  /** The first failure, from the dead letter's own headers. */
  readonly originalError?: string | undefined;
}

export function parkingHistory(headers: Readonly<Record<string, string>>): ParkingHistoryEntry[] {
  try {
    const parsed = JSON.parse(headers[PARKING_HISTORY_HEADER] ?? '[]') as unknown;
    return Array.isArray(parsed) ? (parsed as ParkingHistoryEntry[]) : [];
  } catch {
    return [];
  }
}

/** What the parking lot stores for a dead letter that failed again. */
export function toParkedMessage(deadLetterTopic: string, failure: FinalFailure): NewParkedMessage {
  const { message } = failure;
  const error = failure.error;
  const { name: errorName, message: errorMessage } = describeFailure(error, 4096);
  const history: ParkingHistoryEntry[] = [
    ...parkingHistory(message.headers),
    { parkedAt: new Date().toISOString(), reason: failure.reason, errorName, errorMessage, attempts: failure.attempts, originalError: message.headers[DeadLetterHeaders.errorMessage] },
  ];
  return {
    messageId: message.id,
    originalTopic: message.headers[DeadLetterHeaders.originalTopic] ?? message.source.topic,
    deadLetterTopic,
    key: message.key,
    headers: { ...message.headers, [PARKING_HISTORY_HEADER]: JSON.stringify(history) },
    payload: message.payload,
    reason: failure.reason,
    errorName,
    errorMessage,
    attempts: failure.attempts,
  };
}

export interface DeadLetterConsumerOptions<T> extends Omit<SubscribeOptions<T>, 'deadLetter' | 'onFinalFailure' | 'retry'> {
  /** The DLQ to consume. Default `<topic>-dlq`. */
  readonly deadLetterTopic?: string;
  /** The DLQ consumer's own retry policy (it tries again); default: the default retry policy. */
  readonly retry?: RetryPolicyInput;
  readonly parkingLot: ParkingLot;
}

/**
 * The DLQ consumer: runs `handler` again on the dead letters of `topic` with its own retry
 * policy; what still fails is parked (no DLQ of the DLQ). The dead letter is acknowledged only once
 * it is parked: if parking fails, it is redelivered.
 */
export function consumeDeadLetters<T>(subscriber: Subscriber, topic: string, handler: Handler<T>, options: DeadLetterConsumerOptions<T>): Promise<Subscription> {
  const { deadLetterTopic = defaultDeadLetterTopic(topic), parkingLot, ...rest } = options;
  return subscriber.subscribe<T>(deadLetterTopic, handler, {
    ...rest,
    deadLetter: false,
    onFinalFailure: async (failure) => {
      await parkingLot.park(toParkedMessage(deadLetterTopic, failure));
    },
  });
}

/** The parked messages named by `selection`: a list of ids (unknown ones skipped) or a filter. */
export async function selectParked(parkingLot: ParkingLot, selection: readonly string[] | ParkingFilter): Promise<ParkedMessage[]> {
  if (!Array.isArray(selection)) return parkingLot.list(selection as ParkingFilter);
  const found = await Promise.all((selection as readonly string[]).map((id) => parkingLot.get(id)));
  return found.filter((m): m is ParkedMessage => m !== undefined);
}

export interface ReplayOptions {
  /** Report what would be replayed, send nothing. */
  readonly dryRun?: boolean;
  /** Messages per second at most (default: unlimited). */
  readonly ratePerSecond?: number;
  readonly onProgress?: (done: number, total: number, message: ParkedMessage) => void;
}

/**
 * Sends one message back to `topic` for `group` only (the group that failed it), where a group is
 * known: groups that handled it already do not get it again. Without a group (transports without
 * groups), to the topic.
 */
export async function replayTo(publisher: Publisher, topic: string, group: string | undefined, message: OutgoingMessage): Promise<void> {
  if (group !== undefined && group !== '' && 'publishToGroup' in publisher) {
    await (publisher as Publisher & GroupPublisher).publishToGroup(topic, group, message);
    return;
  }
  await publisher.publish(topic, message);
}

/**
 * Sends parked messages back to their original topic and group (same id, key, payload; headers with
 * the parking history and a replay count) and marks them replayed. A replayed message that fails again
 * comes back to the parking lot with its history intact.
 */
export async function replayParked(parkingLot: ParkingLot, publisher: Publisher, selection: readonly string[] | ParkingFilter, options: ReplayOptions = {}): Promise<ParkedMessage[]> {
  const messages = await selectParked(parkingLot, selection);
  if (options.dryRun) return messages;
  const interval = options.ratePerSecond ? 1000 / options.ratePerSecond : 0;
  let next = Date.now();
  for (const [i, message] of messages.entries()) {
    if (interval > 0) {
      const wait = next - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      next = Math.max(next, Date.now()) + interval;
    }
    const headers: Record<string, string> = { ...message.headers, [REPLAY_COUNT_HEADER]: String(message.replayCount + 1) };
    await replayTo(publisher, message.originalTopic, message.headers[DeadLetterHeaders.originalGroup], {
      id: message.messageId,
      ...(message.key !== undefined ? { key: message.key } : {}),
      headers,
      payload: message.payload,
    });
    await parkingLot.markReplayed([message.id]);
    options.onProgress?.(i + 1, messages.length, message);
  }
  return messages;
}
