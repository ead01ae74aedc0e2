import { describe, it } from 'vitest';
import { runNestExample } from './nest-scenario.js';

describe('the NestJS example application', () => {
  it('on memory: boots, consumes through @Subscribe, dead-letters, reports healthy, shuts down cleanly', async () => {
    await runNestExample({ transport: { kind: 'memory' } });
  }, 60_000);
});
