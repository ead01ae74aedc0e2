import { expect, it } from 'vitest';
import { createBus } from '../../bus/bus.js';
import { BrokerLink, type LinkFailure } from '../broker-link.js';
import { Recorder, gate } from '../recorder.js';
import type { ConformanceContext } from './context.js';

const FAILURE_NAMES: Record<LinkFailure, string> = { refuse: 'refusing connections', drop: 'dropping connections', silent: 'silent on open connections' };

/** How long a publish may stay unsettled, and a close take, once the broker stopped answering, ms. */
const OUTAGE_BOUND_MS = 20_000;

/**
 * A broker that stops answering while a handler runs and a publish is made: the publish settles
 * (rejects, unless the transport's default guarantee is "none"), and `close()` returns, each within
 * {@link OUTAGE_BOUND_MS}. Targets give the relayed transport short timeouts of their own (a few
 * seconds): the scenario checks that every wait is bounded, not how long the defaults are. Before
 * this scenario, Redis publishes over a dropped connection and a NATS close while the server was
 * down stayed pending for good.
 */
export function outageScenarios(context: ConformanceContext): void {
  const { target, caps, waitMs, timeout, groupOf, startFrom, topics, onCleanup } = context;
  for (const failure of ['refuse', 'drop', 'silent'] as const satisfies readonly LinkFailure[]) {
    const title = `a broker that stops answering (${failure}): a publish settles and close() returns, each within ${OUTAGE_BOUND_MS / 1000} s`;
    const link = target.brokerLink;
    if (!link || 'unavailable' in link) {
      it.skip(`${title} — skipped: ${link ? link.unavailable : 'the target gives no way to reach its broker through a relay (brokerLink)'}`, () => undefined);
      continue;
    }
    it(title, { timeout: timeout + 2 * OUTAGE_BOUND_MS }, async () => {
      const relay = await BrokerLink.open(link.broker);
      onCleanup(() => relay.close());
      const bus = createBus({ transport: await link.createTransport(relay) });
      let closed = false;
      onCleanup(async () => void (closed || (await bus.close().catch(() => undefined))));
      const [topic] = await topics(`outage-${failure}`);
      const release = gate();
      const started = new Recorder<string>();
      await bus.subscriber.subscribe(
        topic!,
        async (m) => {
          started.add(m.id);
          await release.promise;
        },
        { ...groupOf('outage'), startFrom },
      );
      await bus.publisher.publish(topic!, { id: 'before', value: 1 });
      await started.waitFor(1, waitMs);

      relay.cut(failure);
      release.open(); // the handler ends during the outage: its acknowledgement cannot reach the broker
      const publishStarted = Date.now();
      const published = await settledWithin(bus.publisher.publish(topic!, { id: 'during', value: 2 }), OUTAGE_BOUND_MS);
      const publishMs = Date.now() - publishStarted;
      expect(published, `publish after the broker stopped answering (${failure})`).not.toBe('pending');
      if (caps.defaultGuarantee !== 'none') expect(published, 'a publish with a guarantee cannot be confirmed through a cut link').toBe('rejected');
      const closeStarted = Date.now();
      const closing = await settledWithin(bus.close(), OUTAGE_BOUND_MS);
      closed = closing !== 'pending';
      const closeMs = Date.now() - closeStarted;
      console.log(`[measure] ${target.name}, broker ${FAILURE_NAMES[failure]}: publish ${published} after ${publishMs} ms, close() ${closeMs} ms`);
      expect(closing, `close() after the broker stopped answering (${failure})`).toBe('resolved');
    });
  }
}

/** How `promise` stands after at most `ms`: settled one way or the other, or still pending. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<'resolved' | 'rejected' | 'pending'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  try {
    return await Promise.race([
      promise.then(
        () => 'resolved' as const,
        () => 'rejected' as const,
      ),
      pending,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
