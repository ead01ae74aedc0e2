import type { Capabilities, DeliveryGuarantee } from '../ports/capabilities.js';
import type { Ordering } from '../ports/capabilities.js';

export interface SubscriptionRequest {
  readonly group?: string | undefined;
  readonly pattern?: boolean | undefined;
  readonly retryMode?: 'transport' | 'in-process' | undefined;
  readonly startFrom?: 'latest' | 'earliest' | undefined;
  readonly ordering?: Ordering | undefined;
  readonly transactional?: boolean | undefined;
  readonly ephemeral?: boolean | undefined;
}

/**
 * What a subscription asks for that the transport cannot do, as config-style issues (`path`: message).
 * Used both at config load (paths like `subscriptions.sales.group`) and at `subscribe` time.
 */
export function subscriptionCapabilityIssues(kind: string, caps: Capabilities, request: SubscriptionRequest, pathPrefix = ''): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  const at = (field: string) => (pathPrefix ? `${pathPrefix}.${field}` : field);
  if (request.pattern && !caps.patternSubscriptions) issues.push({ path: at('pattern'), message: `transport "${kind}" has no pattern subscriptions` });
  if (request.group !== undefined && !caps.consumerGroups) {
    issues.push({ path: at('group'), message: `transport "${kind}" has no consumer groups: every subscriber receives every message; competing consumers need kafka, rabbitmq or memory` });
  }
  if (request.retryMode === 'transport' && !caps.delayedRedelivery) issues.push({ path: at('retryMode'), message: `transport "${kind}" cannot redeliver after a delay; use "in-process"` });
  if (request.startFrom === 'earliest' && !caps.replay) issues.push({ path: at('startFrom'), message: `transport "${kind}" keeps no history to start from; replay needs kafka` });
  if (request.ordering !== undefined && !caps.orderings.includes(request.ordering)) {
    const offered = caps.orderings.map((o) => `"${o}"`).join(', ');
    const why = request.ordering === 'none' ? '' : caps.perKeyOrder ? '' : ': it spreads a queue over competing consumers, so no order by partition or key holds';
    issues.push({ path: at('ordering'), message: `"${request.ordering}" is not available on transport "${kind}" (it offers ${offered})${why}` });
  }
  if (request.transactional) {
    if (!caps.transactions)
      issues.push({ path: at('transactional'), message: `transport "${kind}" has no transactions (a handler's publishes and its acknowledgement committed together need kafka with driver kafkajs)` });
    else {
      if (request.retryMode === 'in-process') issues.push({ path: at('retryMode'), message: 'a transactional subscription retries through the transport: each attempt is a transaction of its own' });
      if (request.ordering !== undefined && request.ordering !== 'partition')
        issues.push({ path: at('ordering'), message: `a transactional subscription handles one message at a time per partition ("partition"), not "${request.ordering}"` });
      if (request.pattern) issues.push({ path: at('pattern'), message: 'a transactional subscription reads one topic, not a pattern' });
    }
  }
  if (request.ephemeral && request.pattern) issues.push({ path: at('ephemeral'), message: 'an ephemeral subscription owns one topic, not a pattern' });
  return issues;
}

/** The issue when `guarantee` is not among the transport's, else undefined. */
export function guaranteeIssue(kind: string, caps: Capabilities, guarantee: DeliveryGuarantee, path = 'publish.guarantee'): { path: string; message: string } | undefined {
  if (caps.deliveryGuarantees.includes(guarantee)) return undefined;
  const offered = caps.deliveryGuarantees.map((g) => `"${g}"`).join(', ');
  const hint = guarantee === 'all' ? '; a durable guarantee needs kafka or rabbitmq' : '';
  return { path, message: `"${guarantee}" is not available on transport "${kind}" (it offers ${offered})${hint}` };
}
