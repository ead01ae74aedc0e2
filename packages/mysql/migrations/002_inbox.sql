-- Switchboard inbox on MySQL / MariaDB: ids of handled messages, recorded in the handler's transaction,
-- each until expires_at. `{table}` is replaced by the configured table name (default switchboard_inbox).
CREATE TABLE IF NOT EXISTS {table} (
  message_key VARCHAR(512) NOT NULL PRIMARY KEY,
  expires_at  DATETIME(3)  NOT NULL,
  KEY {table}_expires (expires_at)
) ENGINE = InnoDB;
