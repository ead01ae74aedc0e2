import type { ClientBase } from 'pg';
import { jsonCodec, newMessageId, type Codec, type OutgoingMessage } from '@switchboard/core';
import { refuseOversizeMessages, type TransportMessage } from '@switchboard/core/transport';
import { assertTableName } from '../migration.js';
import { encodeBatch } from './codec.js';
import { queueStatements } from './sql.js';

export interface TransactionalPublisherOptions {
  /** The queue transport's `tablePrefix`. Default `switchboard_queue`. */
  readonly tablePrefix?: string;
  /** Encodes `value`s (default JSON, as the bus). */
  readonly codec?: Codec;
  /** As the transport's `maxMessageBytes`. Default 8 MiB. */
  readonly maxMessageBytes?: number;
}

/** Publishes into the caller's own database transaction. */
export interface TransactionalPublisher {
  /**
   * Writes `messages` to `topic` through `client`, inside whatever transaction it has open: the
   * messages exist (and members are notified) exactly when that transaction commits, and never if
   * it rolls back. Resolves with their ids. The queue tables must exist (a transport migrated them).
   */
  publish<T>(client: ClientBase, topic: string, messages: OutgoingMessage<T> | readonly OutgoingMessage<T>[]): Promise<{ ids: string[] }>;
}

/**
 * The PostgreSQL queue's publish in the application's transaction (`BEGIN; UPDATE orders …;
 * publisher.publish(client, 'orders.paid', …); COMMIT`): the database change and the message commit
 * together. The subscribers are the queue transport's, as for `bus.publisher.publish`.
 */
export function createTransactionalPublisher(options: TransactionalPublisherOptions = {}): TransactionalPublisher {
  const prefix = options.tablePrefix ?? 'switchboard_queue';
  assertTableName(prefix);
  const sql = queueStatements(prefix);
  const codec = options.codec ?? jsonCodec;
  const limit = options.maxMessageBytes ?? 8 * 1024 * 1024;
  return {
    async publish(client, topic, input) {
      const list = (Array.isArray(input) ? input : [input]) as readonly OutgoingMessage<unknown>[];
      const now = Date.now();
      const messages: TransportMessage[] = list.map((m) => ({
        id: m.id ?? newMessageId(),
        ...(m.key !== undefined ? { key: m.key } : {}),
        headers: m.headers ?? {},
        body: m.payload ?? codec.encode(m.value),
        timestamp: m.timestamp ?? now,
      }));
      refuseOversizeMessages(topic, messages, limit);
      const batch = encodeBatch(messages);
      await client.query(sql.publish, [topic, batch.ids, batch.keys, batch.headers, batch.bodies, batch.timestamps]);
      return { ids: batch.ids };
    },
  };
}
