-- Switchboard transactional outbox: messages written in the application's transaction, published by
-- the outbox relays. `{table}` is replaced by the configured table name (default switchboard_outbox),
-- `{last_shard}` by the number of shards - 1. A row's shard comes from its key (its id without one):
-- a relay publishes only the shards it leases, so a key is published by one relay at a time.
CREATE TABLE IF NOT EXISTS {table} (
  seq               bigserial PRIMARY KEY,
  shard             smallint  NOT NULL,
  topic             text      NOT NULL,
  message_id        text      NOT NULL,
  message_key       text,
  headers           jsonb     NOT NULL,
  payload           bytea     NOT NULL,
  message_timestamp bigint    NOT NULL,
  guarantee         text      NOT NULL
);
CREATE INDEX IF NOT EXISTS {table}_shard_seq_idx ON {table} (shard, seq);
-- One lease per shard: the relay that publishes it until expires_at.
CREATE TABLE IF NOT EXISTS {table}_lease (
  shard      smallint    PRIMARY KEY,
  owner      text,
  expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO {table}_lease (shard) SELECT generate_series(0, {last_shard}) ON CONFLICT DO NOTHING;
-- Relays alive (each renews its row every round): the shards are shared evenly among them.
CREATE TABLE IF NOT EXISTS {table}_relays (
  owner      text        PRIMARY KEY,
  expires_at timestamptz NOT NULL
);
