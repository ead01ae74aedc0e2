-- Switchboard deduplication: ids of handled messages (state done) and claims in progress (state busy),
-- each until expires_at. `{table}` is replaced by the configured table name (default switchboard_dedup).
CREATE TABLE IF NOT EXISTS {table} (
  key        text        PRIMARY KEY,
  state      text        NOT NULL CHECK (state IN ('busy', 'done')),
  expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS {table}_expires_idx ON {table} (expires_at);
