/**
 * The queue transport's statements, for one table prefix (checked to be a plain identifier before it
 * is spliced in). Every value is a bind parameter.
 */
export function queueStatements(p: string) {
  const messages = `${p}_messages`;
  const subscriptions = `${p}_subscriptions`;
  const deliveries = `${p}_deliveries`;
  /** Subscriptions a message of topic `m.topic` goes to: the topic's own, and patterns matching it. */
  const matching = `(s.matcher IS NULL AND s.filter = m.topic) OR (s.matcher IS NOT NULL AND m.topic ~ s.matcher)`;
  const insertMessages = `INSERT INTO ${messages} (topic, id, key, headers, body, ts)
      SELECT $1, u.id, u.key, u.headers, u.body, u.ts
      FROM unnest($2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::bigint[]) WITH ORDINALITY AS u(id, key, headers, body, ts, n)
      ORDER BY u.n
      RETURNING seq, topic, key`;
  return {
    channel: p,
    /**
     * Publishes a batch: one message row each, one delivery row per subscription it matches, and a
     * notification (sent by the server at commit). $1 topic, $2..$6 ids, keys, headers, bodies, timestamps.
     */
    publish: `WITH m AS (${insertMessages}),
      d AS (INSERT INTO ${deliveries} (sub_id, seq, key) SELECT s.sub_id, m.seq, m.key FROM m JOIN ${subscriptions} s ON ${matching})
      SELECT pg_notify('${p}', $1)`,
    /** As `publish`, its deliveries due at $7 (ms since the epoch): delayed publishes. No notification: the publisher sends one when they are due. */
    publishDelayed: `WITH m AS (${insertMessages})
      INSERT INTO ${deliveries} (sub_id, seq, key, available_at) SELECT s.sub_id, m.seq, m.key, to_timestamp($7::double precision / 1000) FROM m JOIN ${subscriptions} s ON ${matching}`,
    /** Deletes subscription $1 with its deliveries (an ephemeral subscription closed). */
    unsubscribe: `DELETE FROM ${subscriptions} WHERE sub_id = $1`,
    /** Wakes the readers of topic $1 (a delayed publish came due). */
    notify: `SELECT pg_notify('${p}', $1)`,
    /** As `publish`, to the subscriptions of one group only ($7): replays. */
    publishToGroup: `WITH m AS (${insertMessages}),
      d AS (INSERT INTO ${deliveries} (sub_id, seq, key) SELECT s.sub_id, m.seq, m.key FROM m JOIN ${subscriptions} s ON s.group_name = $7 AND (${matching}))
      SELECT pg_notify('${p}', $1)`,
    /** Registers a group's subscription ($1 group, $2 filter, $3 matcher); returns sub_id and whether it is new. */
    subscribe: `WITH ins AS (
        INSERT INTO ${subscriptions} (group_name, filter, matcher) VALUES ($1, $2, $3)
        ON CONFLICT (group_name, filter) DO NOTHING RETURNING sub_id)
      SELECT sub_id, true AS created FROM ins
      UNION ALL SELECT sub_id, false FROM ${subscriptions} WHERE group_name = $1 AND filter = $2 AND NOT EXISTS (SELECT 1 FROM ins)`,
    /** A new subscription starting at the earliest kept message: a delivery for each kept message it matches ($1 sub_id). */
    backfill: `INSERT INTO ${deliveries} (sub_id, seq, key)
      SELECT s.sub_id, m.seq, m.key FROM ${subscriptions} s JOIN ${messages} m ON ${matching} WHERE s.sub_id = $1
      ON CONFLICT DO NOTHING`,
    /**
     * Claims up to $2 due deliveries of subscription $1 for member $3, leased for $4 ms, oldest first,
     * skipping rows another member is claiming; each claim counts an attempt. With $5 (per-key
     * order) a keyed message is claimed only when every earlier message of its key is done or held
     * by this member itself (its lanes keep their order).
     */
    claim: `WITH c AS (
        SELECT d.sub_id, d.seq FROM ${deliveries} d
        WHERE d.sub_id = $1 AND d.available_at <= now() AND (d.lease_until IS NULL OR d.lease_until < now())
          AND (NOT $5::boolean OR d.key IS NULL OR NOT EXISTS (
            SELECT 1 FROM ${deliveries} e WHERE e.sub_id = d.sub_id AND e.key = d.key AND e.seq < d.seq
              AND (e.lease_owner IS DISTINCT FROM $3 OR e.lease_until < now())))
        ORDER BY d.seq LIMIT $2 FOR UPDATE SKIP LOCKED)
      UPDATE ${deliveries} d SET attempts = d.attempts + 1, lease_owner = $3, lease_until = now() + $4 * interval '1 millisecond'
      FROM c, ${messages} m WHERE d.sub_id = c.sub_id AND d.seq = c.seq AND m.seq = d.seq
      RETURNING d.seq, d.attempts, m.topic, m.id, m.key, m.headers, m.body, m.ts`,
    /** Done: deletes the deliveries ($1 sub_id, $2 seqs), whoever holds them now (handled is handled). */
    ack: `DELETE FROM ${deliveries} WHERE sub_id = $1 AND seq = ANY($2::bigint[])`,
    /** Extends the leases member $3 holds ($1 sub_id, $2 seqs) by $4 ms. */
    extend: `UPDATE ${deliveries} SET lease_until = now() + $4 * interval '1 millisecond' WHERE sub_id = $1 AND seq = ANY($2::bigint[]) AND lease_owner = $3`,
    /** A retry: due again in $4 ms, held by no one ($1 sub_id, $2 seq, $3 member). */
    retry: `UPDATE ${deliveries} SET available_at = now() + $4 * interval '1 millisecond', lease_owner = NULL, lease_until = NULL WHERE sub_id = $1 AND seq = $2 AND lease_owner = $3`,
    /** Handed back unhandled (closing, or behind a retry of its key): due at once, the claim's attempt taken back. */
    handBack: `UPDATE ${deliveries} SET lease_owner = NULL, lease_until = NULL, attempts = greatest(attempts - 1, 0) WHERE sub_id = $1 AND seq = ANY($2::bigint[]) AND lease_owner = $3`,
    /** Lag of subscription $1: what it has still to handle. */
    lag: `SELECT count(*)::int AS lag FROM ${deliveries} WHERE sub_id = $1`,
    /** Deletes up to $2 messages no subscription has to handle any more, stored more than $1 ms ago. */
    retention: `DELETE FROM ${messages} WHERE seq IN (
        SELECT m.seq FROM ${messages} m
        WHERE m.stored_at < now() - $1 * interval '1 millisecond' AND NOT EXISTS (SELECT 1 FROM ${deliveries} d WHERE d.seq = m.seq)
        ORDER BY m.seq LIMIT $2 FOR UPDATE SKIP LOCKED)`,
    /** Messages of topic $1 after seq $2, oldest first, at most $3 (dead-letter tooling). */
    readTopic: `SELECT seq, topic, id, key, headers, body, ts FROM ${messages} WHERE topic = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
    /** Deletes messages of topic $1 by seq ($2), with their deliveries. */
    removeMessages: `DELETE FROM ${messages} WHERE topic = $1 AND seq = ANY($2::bigint[])`,
  };
}

export type QueueStatements = ReturnType<typeof queueStatements>;

/** A claimed row. */
export interface ClaimedRow {
  seq: string;
  attempts: number;
  topic: string;
  id: string;
  key: string | null;
  headers: Buffer;
  body: Buffer;
  ts: string;
}
