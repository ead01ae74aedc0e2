import pg from 'pg';
import { afterAll } from 'vitest';
import { runConformanceSuite, type RawMessage, BrokerLink } from '@switchboard/core/testing';
import { postgresQueueCapabilities } from '@switchboard/postgres';
import { DATABASE_URL, dropQueueTables, testQueueTransport, uniquePrefix } from './helpers.js';

const prefix = uniquePrefix();
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
afterAll(async () => {
  await dropQueueTables(pool, prefix);
  await pool.end();
});

/**
 * A producer that does not use Switchboard: plain SQL, a message row with the headers as given
 * (forged x-sb-* included) and a delivery row for every subscription of the topic.
 */
async function publishRaw(_transport: unknown, topic: string, message: RawMessage): Promise<void> {
  await pool.query(
    `WITH m AS (INSERT INTO ${prefix}_messages (topic, id, key, headers, body, ts) VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq, topic, key)
     INSERT INTO ${prefix}_deliveries (sub_id, seq, key) SELECT s.sub_id, m.seq, m.key FROM m JOIN ${prefix}_subscriptions s ON s.filter = m.topic AND s.matcher IS NULL`,
    [topic, message.id, message.key ?? null, Buffer.from(JSON.stringify(message.headers)), Buffer.from(message.body), Date.now()],
  );
  await pool.query(`SELECT pg_notify($1, $2)`, [prefix, topic]);
}

const maxMessageBytes = 8 * 1024 * 1024;
for (const ordering of ['key', 'none'] as const) {
  runConformanceSuite({
    name: `postgres (ordering ${ordering})`,
    capabilities: postgresQueueCapabilities({ maxMessageBytes }),
    createTransport: () => testQueueTransport(prefix, { maxMessageBytes }),
    brokerLink: { broker: BrokerLink.addressOf(DATABASE_URL), createTransport: (link) => testQueueTransport(prefix, { url: link.urlThrough(DATABASE_URL), maxMessageBytes, queryTimeoutMs: 2000 }) },
    publishRaw,
    ephemeralStateLeft: async (_transport, topic, group) => (await pool.query(`SELECT 1 FROM ${prefix}_subscriptions WHERE group_name = $1 AND filter = $2`, [group, topic])).rowCount! > 0,
    defaults: { ordering },
    waitMs: 10_000,
  });
}
