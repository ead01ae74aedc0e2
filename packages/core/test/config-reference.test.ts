import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

describe('options reference', () => {
  it('docs/options.md and docs/switchboard.schema.json match the zod schemas (regenerate: node scripts/config-reference.mjs)', async () => {
    const script = fileURLToPath(new URL('../../../scripts/config-reference.mjs', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, [script, '--check']);
    expect(stdout).toContain('up to date');
  }, 60_000);
});
