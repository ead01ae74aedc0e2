-- Switchboard's PostgreSQL queue transport, version 1. `{table}` is the table prefix
-- (default switchboard_queue). Idempotent: the transport runs it under an advisory lock at startup
-- (`migrate: false` leaves it to you) and records the version in {table}_schema.

CREATE TABLE IF NOT EXISTS {table}_schema (
  version int PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per published message, whatever number of groups receive it.
CREATE TABLE IF NOT EXISTS {table}_messages (
  seq bigserial PRIMARY KEY,
  topic text NOT NULL,
  id text NOT NULL,
  key text,
  headers bytea NOT NULL,            -- the header map as JSON (bytea: any character, NUL included)
  body bytea NOT NULL,
  ts bigint NOT NULL,                -- the message's timestamp, ms since the epoch
  stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {table}_messages_topic ON {table}_messages (topic, seq);
CREATE INDEX IF NOT EXISTS {table}_messages_stored ON {table}_messages (stored_at);

-- A group's subscription to a topic or a pattern: each gets every matching message.
CREATE TABLE IF NOT EXISTS {table}_subscriptions (
  sub_id serial PRIMARY KEY,
  group_name text NOT NULL,
  filter text NOT NULL,              -- the topic, or the core pattern
  matcher text,                      -- the pattern as a regular expression; NULL for a plain topic
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (group_name, filter)
);

-- What a subscription has still to handle. A row is deleted when its message is acknowledged.
CREATE TABLE IF NOT EXISTS {table}_deliveries (
  sub_id int NOT NULL REFERENCES {table}_subscriptions ON DELETE CASCADE,
  seq bigint NOT NULL REFERENCES {table}_messages ON DELETE CASCADE,
  key text,
  attempts int NOT NULL DEFAULT 0,   -- times a member claimed it (the trusted attempt count)
  available_at timestamptz NOT NULL DEFAULT now(),
  lease_owner text,
  lease_until timestamptz,
  PRIMARY KEY (sub_id, seq)
);
CREATE INDEX IF NOT EXISTS {table}_deliveries_seq ON {table}_deliveries (seq);
CREATE INDEX IF NOT EXISTS {table}_deliveries_key ON {table}_deliveries (sub_id, key, seq) WHERE key IS NOT NULL;

INSERT INTO {table}_schema (version) VALUES (1) ON CONFLICT DO NOTHING;
