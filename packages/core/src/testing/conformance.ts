import { describe } from 'vitest';
import { createConformanceContext, type ConformanceTarget } from './conformance/context.js';
import { deliveryScenarios } from './conformance/delivery.js';
import { failuresScenarios } from './conformance/failures.js';
import { groupsAndOrderScenarios } from './conformance/groups-and-order.js';
import { hostileInputScenarios } from './conformance/hostile-input.js';
import { lifecycleScenarios } from './conformance/lifecycle.js';
import { outageScenarios } from './conformance/outage.js';
import { patternsScenarios } from './conformance/patterns.js';

export type { ConformanceTarget, DeadLetterReader, RawMessage, ConformanceContext } from './conformance/context.js';
export { createConformanceContext } from './conformance/context.js';

/** The suite's scenario modules by name: a transport author can run them one by one (`only`). */
export const conformanceScenarios = {
  delivery: deliveryScenarios,
  groupsAndOrder: groupsAndOrderScenarios,
  failures: failuresScenarios,
  hostileInput: hostileInputScenarios,
  lifecycle: lifecycleScenarios,
  patterns: patternsScenarios,
  outage: outageScenarios,
} as const;
export type ConformanceScenarioName = keyof typeof conformanceScenarios;

/**
 * THE conformance suite: every transport runs it, the in-memory one included. Call it inside a test
 * file of the adapter; it declares its own `describe`.
 */
export function runConformanceSuite(target: ConformanceTarget, options: { readonly only?: readonly ConformanceScenarioName[] } = {}): void {
  describe(`conformance: ${target.name}`, () => {
    const context = createConformanceContext(target);
    for (const [name, scenarios] of Object.entries(conformanceScenarios)) if (!options.only || options.only.includes(name as ConformanceScenarioName)) scenarios(context);
  });
}
