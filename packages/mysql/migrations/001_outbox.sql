-- Switchboard transactional outbox on MySQL / MariaDB: messages written in the application's
-- transaction, published by the outbox relays. `{table}` is replaced by the configured table name
-- (default switchboard_outbox), `{shards}` by the shard rows. A row's shard comes from its key (its id
-- without one): a relay publishes only the shards it leases, so a key is published by one relay at a time.
CREATE TABLE IF NOT EXISTS {table} (
  seq               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  shard             SMALLINT        NOT NULL,
  topic             VARCHAR(512)    NOT NULL,
  message_id        VARCHAR(512)    NOT NULL,
  message_key       TEXT            NULL,
  headers           LONGTEXT        NOT NULL,
  payload           LONGBLOB        NOT NULL,
  message_timestamp BIGINT          NOT NULL,
  guarantee         VARCHAR(8)      NOT NULL,
  KEY {table}_shard_seq (shard, seq)
) ENGINE = InnoDB;
-- One lease per shard: the relay that publishes it until expires_at.
CREATE TABLE IF NOT EXISTS {table}_lease (
  shard      SMALLINT     NOT NULL PRIMARY KEY,
  owner      VARCHAR(255) NULL,
  expires_at DATETIME(3)  NOT NULL DEFAULT '1970-01-02 00:00:00'
) ENGINE = InnoDB;
INSERT IGNORE INTO {table}_lease (shard) VALUES {shards};
-- Relays alive (each renews its row every round): the shards are shared evenly among them.
CREATE TABLE IF NOT EXISTS {table}_relays (
  owner      VARCHAR(255) NOT NULL PRIMARY KEY,
  expires_at DATETIME(3)  NOT NULL
) ENGINE = InnoDB;
-- Per-key write locks: a writer locks its keys' rows (filled by the migration code) until it commits, so
-- one key's rows are in commit order.
CREATE TABLE IF NOT EXISTS {table}_keylock (
  h INT UNSIGNED NOT NULL PRIMARY KEY
) ENGINE = InnoDB;
