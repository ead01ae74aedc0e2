import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { createPostgresQueueTransport, type PostgresQueueOptionsInput } from '@switchboard/postgres';

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A table prefix of the test file's own (dropped by `dropQueueTables`). */
export function uniquePrefix(): string {
  return `sbtest_q_${randomUUID().slice(0, 8)}`;
}

/** A transport on the test database with short waits, so tests see leases and retries in seconds. */
export function testQueueTransport(tablePrefix: string, options: PostgresQueueOptionsInput = {}) {
  return createPostgresQueueTransport({ url: DATABASE_URL, tablePrefix, leaseMs: 3000, pollIntervalMs: 200, ...options });
}

export async function dropQueueTables(pool: pg.Pool, prefix: string): Promise<void> {
  await pool.query(`DROP TABLE IF EXISTS ${prefix}_deliveries, ${prefix}_subscriptions, ${prefix}_messages, ${prefix}_schema`);
}

/**
 * A PostgreSQL server of the test's own (initdb in a temporary directory, loopback, a free port,
 * run as the `postgres` user when the tests run as root), so an outage test stops a server no
 * other test uses. `stop()` is a fast shutdown (data stays), `start()` brings it back on the same
 * port and data, `dispose()` stops it and removes the directory.
 */
export interface OwnPostgres {
  readonly url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  dispose(): Promise<void>;
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const { execFileSync } = await import('node:child_process');
  const { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { freePort } = await import('@switchboard/core/testing');
  const bin = join('/usr/lib/postgresql', readdirSync('/usr/lib/postgresql').sort().at(-1) ?? '', 'bin');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-pg-'));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  const run = (tool: string, args: string[]) =>
    execFileSync(asRoot ? 'runuser' : join(bin, tool), asRoot ? ['-u', 'postgres', '--', join(bin, tool), ...args] : args, { stdio: 'ignore', timeout: 60_000 });
  const data = join(dir, 'data');
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const start = async () => {
    run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '30', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
  };
  const stop = async () => {
    try {
      run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
    } catch {
      // not running
    }
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop,
    dispose: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
