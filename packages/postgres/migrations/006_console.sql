-- Switchboard DLQ console: jobs (replay, park, discard) with a snapshot of each letter they act on,
-- and the audit trail. `{table}` is replaced by the configured prefix (default switchboard_console).
CREATE TABLE IF NOT EXISTS {table}_jobs (
  id            bigserial PRIMARY KEY,
  action        text        NOT NULL,
  actor         text        NOT NULL,
  reason        text        NOT NULL,
  rate_per_second integer   NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  total         integer     NOT NULL,
  state         text        NOT NULL DEFAULT 'running',
  error         text        NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS {table}_items (
  job_id        bigint      NOT NULL REFERENCES {table}_jobs (id) ON DELETE CASCADE,
  position      integer     NOT NULL,
  letter_key    text        NOT NULL,
  source        text        NOT NULL,
  dead_letter_topic text    NOT NULL,
  parking_id    text,
  message_id    text        NOT NULL,
  original_topic text       NOT NULL,
  group_name    text        NOT NULL,
  message_key   text,
  headers       jsonb       NOT NULL,
  payload       bytea       NOT NULL,
  edited        boolean     NOT NULL,
  state         text        NOT NULL DEFAULT 'pending',
  PRIMARY KEY (job_id, position)
);
CREATE INDEX IF NOT EXISTS {table}_items_key_idx ON {table}_items (letter_key) WHERE state <> 'pending';
CREATE TABLE IF NOT EXISTS {table}_audit (
  seq           bigserial PRIMARY KEY,
  at            timestamptz NOT NULL DEFAULT now(),
  actor         text        NOT NULL,
  action        text        NOT NULL,
  job_id        text        NOT NULL,
  source        text        NOT NULL,
  dead_letter_topic text    NOT NULL,
  message_id    text        NOT NULL,
  letter_key    text        NOT NULL,
  detail        text        NOT NULL
);
CREATE INDEX IF NOT EXISTS {table}_audit_message_idx ON {table}_audit (message_id);
CREATE INDEX IF NOT EXISTS {table}_audit_job_idx ON {table}_audit (job_id);
