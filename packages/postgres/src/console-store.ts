import type { Pool, PoolClient } from 'pg';
import type { AuditEntry, AuditFilter, ConsoleItemState, ConsoleJob, ConsoleJobItem, ConsoleJobState, ConsoleStore, NewConsoleJob, NewConsoleJobItem } from '@switchboard/core';
import { assertTableName, inTransaction, runMigration } from './migration.js';

/** Creates the console's tables if missing (the shipped migration `migrations/006_console.sql`). */
export async function migratePostgresConsoleStore(pool: Pool, prefix = 'switchboard_console'): Promise<void> {
  await runMigration(pool, '006_console.sql', prefix);
}

interface JobRow {
  id: string;
  action: ConsoleJob['action'];
  actor: string;
  reason: string;
  rate_per_second: number;
  created_at: Date;
  total: number;
  state: ConsoleJobState;
  error: string;
  applied: string;
  removed: string;
}

interface ItemRow {
  letter_key: string;
  source: string;
  dead_letter_topic: string;
  parking_id: string | null;
  message_id: string;
  original_topic: string;
  group_name: string;
  message_key: string | null;
  headers: Record<string, string>;
  payload: Buffer;
  edited: boolean;
  state: ConsoleItemState;
}

interface AuditRow {
  seq: string;
  at: Date;
  actor: string;
  action: string;
  job_id: string;
  source: string;
  dead_letter_topic: string;
  message_id: string;
  letter_key: string;
  detail: string;
}

const toJob = (r: JobRow): ConsoleJob => ({
  id: r.id,
  action: r.action,
  actor: r.actor,
  reason: r.reason,
  ratePerSecond: r.rate_per_second,
  createdAt: r.created_at.getTime(),
  total: r.total,
  applied: Number(r.applied) + Number(r.removed),
  removed: Number(r.removed),
  state: r.state,
  error: r.error,
});

const toItem = (r: ItemRow): ConsoleJobItem => ({
  letterKey: r.letter_key,
  source: r.source,
  deadLetterTopic: r.dead_letter_topic,
  ...(r.parking_id !== null ? { parkingId: r.parking_id } : {}),
  messageId: r.message_id,
  originalTopic: r.original_topic,
  group: r.group_name,
  ...(r.message_key !== null ? { key: r.message_key } : {}),
  headers: r.headers,
  payload: r.payload,
  edited: r.edited,
  state: r.state,
});

const toAudit = (r: AuditRow): AuditEntry => ({
  seq: Number(r.seq),
  at: r.at.getTime(),
  actor: r.actor,
  action: r.action,
  jobId: r.job_id,
  source: r.source,
  deadLetterTopic: r.dead_letter_topic,
  messageId: r.message_id,
  letterKey: r.letter_key,
  detail: r.detail,
});

/** The DLQ console's jobs and audit trail in PostgreSQL: jobs resume after the console restarts. */
export class PostgresConsoleStore implements ConsoleStore {
  private readonly t: string;

  constructor(
    private readonly pool: Pool,
    prefix = 'switchboard_console',
  ) {
    assertTableName(prefix);
    this.t = prefix;
  }

  static async open(pool: Pool, prefix?: string): Promise<PostgresConsoleStore> {
    await migratePostgresConsoleStore(pool, prefix);
    return new PostgresConsoleStore(pool, prefix);
  }

  private jobSelect(where: string): string {
    const t = this.t;
    return `SELECT j.*, (SELECT count(*) FROM ${t}_items i WHERE i.job_id = j.id AND i.state = 'applied') AS applied,
                        (SELECT count(*) FROM ${t}_items i WHERE i.job_id = j.id AND i.state = 'removed') AS removed
            FROM ${t}_jobs j ${where}`;
  }

  async createJob(job: NewConsoleJob, items: readonly NewConsoleJobItem[]): Promise<ConsoleJob> {
    const id = await inTransaction(this.pool, async (client) => {
      const { rows } = await client.query<{ id: string }>(`INSERT INTO ${this.t}_jobs (action, actor, reason, rate_per_second, total) VALUES ($1, $2, $3, $4, $5) RETURNING id`, [
        job.action,
        job.actor,
        job.reason,
        job.ratePerSecond,
        items.length,
      ]);
      const jobId = rows[0]!.id;
      for (let start = 0; start < items.length; start += 500) {
        const chunk = items.slice(start, start + 500);
        const values: unknown[] = [];
        const tuples = chunk.map((item, i) => {
          values.push(
            jobId,
            start + i,
            item.letterKey,
            item.source,
            item.deadLetterTopic,
            item.parkingId ?? null,
            item.messageId,
            item.originalTopic,
            item.group,
            item.key ?? null,
            JSON.stringify(item.headers),
            Buffer.from(item.payload),
            item.edited,
          );
          const base = i * 13;
          return `(${Array.from({ length: 13 }, (_, k) => `$${base + k + 1}${k === 10 ? '::jsonb' : ''}`).join(', ')})`;
        });
        await client.query(
          `INSERT INTO ${this.t}_items (job_id, position, letter_key, source, dead_letter_topic, parking_id, message_id, original_topic, group_name, message_key, headers, payload, edited) VALUES ${tuples.join(', ')}`,
          values,
        );
      }
      await this.record(client, { actor: job.actor, action: 'job-created', jobId, detail: `${items.length} letter(s)${job.reason ? `: ${job.reason}` : ''}` });
      return jobId;
    });
    return (await this.job(id))!;
  }

  async job(id: string): Promise<ConsoleJob | undefined> {
    if (!/^\d{1,18}$/.test(id)) return undefined;
    const { rows } = await this.pool.query<JobRow>(this.jobSelect('WHERE j.id = $1'), [id]);
    return rows[0] ? toJob(rows[0]) : undefined;
  }

  async jobs(limit: number): Promise<ConsoleJob[]> {
    const { rows } = await this.pool.query<JobRow>(this.jobSelect('ORDER BY j.id DESC LIMIT $1'), [limit]);
    return rows.map(toJob);
  }

  async unfinishedJobs(): Promise<ConsoleJob[]> {
    const { rows } = await this.pool.query<JobRow>(this.jobSelect(`WHERE j.state = 'running' ORDER BY j.id`));
    return rows.map(toJob);
  }

  async items(jobId: string, state: ConsoleItemState, limit: number): Promise<ConsoleJobItem[]> {
    const { rows } = await this.pool.query<ItemRow>(`SELECT * FROM ${this.t}_items WHERE job_id = $1 AND state = $2 ORDER BY position LIMIT $3`, [jobId, state, limit]);
    return rows.map(toItem);
  }

  async markApplied(jobId: string, letterKey: string, detail: string): Promise<void> {
    await inTransaction(this.pool, async (client) => {
      const { rows } = await client.query<ItemRow & { actor: string; action: string }>(
        `UPDATE ${this.t}_items i SET state = 'applied' FROM ${this.t}_jobs j
         WHERE i.job_id = $1 AND i.letter_key = $2 AND i.state = 'pending' AND j.id = i.job_id
         RETURNING i.*, j.actor, j.action`,
        [jobId, letterKey],
      );
      for (const row of rows) {
        await this.record(client, { actor: row.actor, action: row.action, jobId, source: row.source, deadLetterTopic: row.dead_letter_topic, messageId: row.message_id, letterKey, detail });
      }
    });
  }

  async markRemoved(jobId: string, letterKeys: readonly string[]): Promise<void> {
    if (letterKeys.length === 0) return;
    await this.pool.query(`UPDATE ${this.t}_items SET state = 'removed' WHERE job_id = $1 AND state = 'applied' AND letter_key = ANY($2::text[])`, [jobId, letterKeys]);
  }

  async setJobError(jobId: string, error: string): Promise<void> {
    await this.pool.query(`UPDATE ${this.t}_jobs SET error = $2 WHERE id = $1 AND state = 'running'`, [jobId, error]);
  }

  async finishJob(jobId: string, state: Exclude<ConsoleJobState, 'running'>, error: string): Promise<void> {
    await inTransaction(this.pool, async (client) => {
      const { rows } = await client.query<{ actor: string }>(`UPDATE ${this.t}_jobs SET state = $2, error = $3 WHERE id = $1 AND state = 'running' RETURNING actor`, [jobId, state, error]);
      if (rows[0]) await this.record(client, { actor: rows[0].actor, action: `job-${state}`, jobId, detail: error });
    });
  }

  async handledKeys(letterKeys: readonly string[]): Promise<Set<string>> {
    if (letterKeys.length === 0) return new Set();
    const { rows } = await this.pool.query<{ letter_key: string }>(`SELECT DISTINCT letter_key FROM ${this.t}_items WHERE state <> 'pending' AND letter_key = ANY($1::text[])`, [letterKeys]);
    return new Set(rows.map((r) => r.letter_key));
  }

  async audit(filter: AuditFilter): Promise<AuditEntry[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    if (filter.messageId !== undefined) where.push(`message_id = $${values.push(filter.messageId)}`);
    if (filter.jobId !== undefined) where.push(`job_id = $${values.push(filter.jobId)}`);
    const { rows } = await this.pool.query<AuditRow>(
      `SELECT * FROM ${this.t}_audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $${values.push(filter.limit)}`,
      values,
    );
    return rows.map(toAudit);
  }

  private async record(
    client: PoolClient,
    e: { actor: string; action: string; jobId: string; source?: string; deadLetterTopic?: string; messageId?: string; letterKey?: string; detail: string },
  ): Promise<void> {
    await client.query(`INSERT INTO ${this.t}_audit (actor, action, job_id, source, dead_letter_topic, message_id, letter_key, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, [
      e.actor,
      e.action,
      e.jobId,
      e.source ?? '',
      e.deadLetterTopic ?? '',
      e.messageId ?? '',
      e.letterKey ?? '',
      e.detail,
    ]);
  }
}
