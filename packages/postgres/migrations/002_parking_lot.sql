-- Switchboard parking lot: messages that failed again in the DLQ consumer, kept for manual
-- reprocessing. `{table}` is replaced by the configured table name (default switchboard_parked).
CREATE TABLE IF NOT EXISTS {table} (
  id             bigserial PRIMARY KEY,
  message_id     text        NOT NULL,
  original_topic text        NOT NULL,
  dead_letter_topic text,
  message_key    text,
  headers        jsonb       NOT NULL,
  payload        bytea       NOT NULL,
  reason         text        NOT NULL,
  error_name     text        NOT NULL,
  error_message  text        NOT NULL,
  attempts       integer     NOT NULL,
  parked_at      timestamptz NOT NULL DEFAULT now(),
  replayed_at    timestamptz,
  replay_count   integer     NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS {table}_topic_idx ON {table} (original_topic, parked_at);
CREATE INDEX IF NOT EXISTS {table}_error_idx ON {table} (error_name);
