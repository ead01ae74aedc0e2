import { describe, expect, it } from 'vitest';
import type { FallbackStore } from '@switchboard/core';
import { runBrokerOutageScenario, type OutageScenarioOptions } from './outage-scenario.js';

/**
 * The producer-outage test as a suite: one run per store, each stopping and restarting the broker.
 * `managed` false (a broker the project does not run) skips it, saying why.
 */
export function runBrokerOutageSuite(name: string, options: Omit<OutageScenarioOptions, 'store'> & { readonly stores: Record<string, () => Promise<FallbackStore>>; readonly managed: boolean }): void {
  const title = `${name}: broker stopped and restarted while publishing through the fallback store`;
  describe.runIf(options.managed)(options.managed ? title : `${title} — skipped: the broker address comes from the environment, the project cannot stop it`, () => {
    for (const [storeName, openStore] of Object.entries(options.stores)) {
      it(`every published id reaches the consumer, ${storeName} store`, async () => {
        const report = await runBrokerOutageScenario({ ...options, store: await openStore() });
        console.log(
          `[measure] ${name} + ${storeName} store: published ${report.published} (stored for later ${report.storedForLater}), delivered ${report.delivered}, duplicates ${report.duplicates}, missing ${report.missing.length}, recovery to empty store ${report.recoveryToEmptyStoreMs} ms, breaker opened ${report.breakerOpened} and closed after recovery ${report.breakerClosedAfterRecovery}`,
        );
        expect(report.missing).toEqual([]);
        expect(report.published).toBe(options.total ?? 10_000);
        expect(report.storedForLater).toBeGreaterThan(0);
        expect(report.breakerOpened).toBe(true);
        expect(report.breakerClosedAfterRecovery).toBe(true);
      }, 420_000);
    }
  });
}
