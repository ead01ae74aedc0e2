import type { Pool } from 'pg';
import type { NewParkedMessage, ParkedMessage, ParkingFilter, ParkingLot } from '@switchboard/core';
import { assertTableName, runMigration } from './migration.js';

/** Creates the parking-lot table if missing (the shipped migration `migrations/002_parking_lot.sql`). */
export async function migratePostgresParkingLot(pool: Pool, table = 'switchboard_parked'): Promise<void> {
  await runMigration(pool, '002_parking_lot.sql', table);
}

interface Row {
  id: string;
  message_id: string;
  original_topic: string;
  dead_letter_topic: string | null;
  message_key: string | null;
  headers: Record<string, string>;
  payload: Buffer;
  reason: string;
  error_name: string;
  error_message: string;
  attempts: number;
  parked_at: Date;
  replayed_at: Date | null;
  replay_count: number;
}

const toParked = (r: Row): ParkedMessage => ({
  id: r.id,
  messageId: r.message_id,
  originalTopic: r.original_topic,
  deadLetterTopic: r.dead_letter_topic ?? undefined,
  key: r.message_key ?? undefined,
  headers: r.headers,
  payload: r.payload,
  reason: r.reason,
  errorName: r.error_name,
  errorMessage: r.error_message,
  attempts: r.attempts,
  parkedAt: r.parked_at.getTime(),
  replayedAt: r.replayed_at?.getTime(),
  replayCount: r.replay_count,
});

/** The parking lot in PostgreSQL. */
export class PostgresParkingLot implements ParkingLot {
  private readonly table: string;

  constructor(
    private readonly pool: Pool,
    table = 'switchboard_parked',
  ) {
    assertTableName(table);
    this.table = table;
  }

  static async open(pool: Pool, table?: string): Promise<PostgresParkingLot> {
    await migratePostgresParkingLot(pool, table);
    return new PostgresParkingLot(pool, table);
  }

  async park(m: NewParkedMessage): Promise<ParkedMessage> {
    const { rows } = await this.pool.query<Row>(
      `INSERT INTO ${this.table} (message_id, original_topic, dead_letter_topic, message_key, headers, payload, reason, error_name, error_message, attempts)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10) RETURNING *`,
      [m.messageId, m.originalTopic, m.deadLetterTopic ?? null, m.key ?? null, JSON.stringify(m.headers), Buffer.from(m.payload), m.reason, m.errorName, m.errorMessage, m.attempts],
    );
    return toParked(rows[0]!);
  }

  async list(filter: ParkingFilter = {}): Promise<ParkedMessage[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      values.push(value);
      where.push(sql.replace('?', `$${values.length}`));
    };
    if (filter.topic !== undefined) add('original_topic = ?', filter.topic);
    if (filter.errorName !== undefined) add('error_name = ?', filter.errorName);
    if (filter.since !== undefined) add('parked_at >= ?', new Date(filter.since));
    if (filter.until !== undefined) add('parked_at < ?', new Date(filter.until));
    if (!filter.includeReplayed) where.push('replayed_at IS NULL');
    values.push(filter.limit ?? 1000);
    const { rows } = await this.pool.query<Row>(`SELECT * FROM ${this.table} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT $${values.length}`, values);
    return rows.map(toParked);
  }

  async get(id: string): Promise<ParkedMessage | undefined> {
    if (!/^\d+$/.test(id)) return undefined;
    const { rows } = await this.pool.query<Row>(`SELECT * FROM ${this.table} WHERE id = $1`, [id]);
    return rows[0] ? toParked(rows[0]) : undefined;
  }

  async markReplayed(ids: readonly string[]): Promise<void> {
    if (ids.length) await this.pool.query(`UPDATE ${this.table} SET replayed_at = now(), replay_count = replay_count + 1 WHERE id = ANY($1::bigint[])`, [ids]);
  }

  async delete(ids: readonly string[]): Promise<number> {
    if (!ids.length) return 0;
    const result = await this.pool.query(`DELETE FROM ${this.table} WHERE id = ANY($1::bigint[])`, [ids]);
    return result.rowCount ?? 0;
  }
}
