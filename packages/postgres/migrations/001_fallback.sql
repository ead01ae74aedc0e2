-- Switchboard fallback store (producer resilience). `{table}` is replaced by the configured table name
-- (default switchboard_fallback). Idempotent: safe to run on every start.
CREATE TABLE IF NOT EXISTS {table} (
  seq               bigserial PRIMARY KEY,
  topic             text        NOT NULL,
  message_id        text        NOT NULL,
  message_key       text,
  headers           jsonb       NOT NULL,
  payload           bytea       NOT NULL,
  message_timestamp bigint      NOT NULL,
  guarantee         text        NOT NULL,
  via               text        NOT NULL DEFAULT 'publish',
  first_failure_at  timestamptz NOT NULL,
  attempts          integer     NOT NULL DEFAULT 1,
  last_error        text,
  created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {table}_expired (LIKE {table} INCLUDING DEFAULTS);
CREATE TABLE IF NOT EXISTS {table}_lease (
  name       text PRIMARY KEY,
  owner      text        NOT NULL,
  expires_at timestamptz NOT NULL
);
