import { randomUUID } from 'node:crypto';

/** A unique lower-case SQL identifier for a test table. */
export function uniqueTableName(prefix: string): string {
  return `${prefix}_${randomUUID().slice(0, 8)}`.replace(/[^a-z0-9_]/g, '_');
}
