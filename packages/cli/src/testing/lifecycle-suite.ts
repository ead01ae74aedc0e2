import { describe, expect, it } from 'vitest';
import { runDeadLetterLifecycle, type LifecycleOptions } from './lifecycle-scenario.js';

/** The DLQ lifecycle (dead letter, DLQ consumer, parking lot, replay, metrics) as a suite, with its expectations written once. */
export function runDeadLetterLifecycleSuite(name: string, options: LifecycleOptions | (() => Promise<LifecycleOptions & { cleanup?: () => Promise<void> }>)): void {
  describe(`${name}: DLQ -> DLQ consumer -> PostgreSQL parking lot -> switchboard CLI replay`, () => {
    it('parks permanent failures, counts exactly, replays through the CLI, and consumes them once fixed', async () => {
      const resolved: LifecycleOptions & { cleanup?: () => Promise<void> } = typeof options === 'function' ? await options() : options;
      const report = await runDeadLetterLifecycle(resolved).finally(() => resolved.cleanup?.());
      console.log(`[measure] ${name} lifecycle: ${JSON.stringify(report)}`);
      expect(report.counters.succeeded).toBe(report.counters.expectedSucceeded);
      expect(report.counters.retryAttempts).toBe(report.counters.expectedRetryAttempts);
      expect(report.counters.finalFailures).toBe(report.counters.expectedFinalFailures);
      expect(report.counters.deadLettered).toBe(report.counters.expectedFinalFailures);
      expect(report.parked).toBe(report.counters.expectedFinalFailures);
      expect(report.history).toBe(2);
      expect(report.consumedAfterFix).toHaveLength(report.parked);
      expect(report.cli).toMatchObject({ list: 0, show: 0, dryRun: 0, dryRunCount: report.parked, badUsage: 2, help: 0, replayOne: 0, replayAll: 0, purge: 0, remaining: 0 });
    }, 180_000);
  });
}
