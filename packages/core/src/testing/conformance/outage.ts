import { expect, it } from 'vitest';
import { createBus } from '../../bus/bus.js';
import { BrokerLink, type LinkFailure } from '../broker-link.js';
import { CountingObserver } from '../../observability/observer.js';
import { Recorder, gate, waitUntil } from '../recorder.js';
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
  const { target, caps, waitMs, timeout, groupOf, startFrom, topics, onCleanup, openBus } = context;
  for (const failure of ['refuse', 'drop', 'silent'] as const satisfies readonly LinkFailure[]) {
    const title = `a broker that stops answering (${failure}): a publish settles and close() returns, each within ${OUTAGE_BOUND_MS / 1000} s`;
    const link = relayOrSkip(context, title);
    if (!link) continue;
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
      // A silent link lets new connections through: a subscriber on a direct connection witnesses
      // whether a publish that resolved was really stored.
      const witnessed = new Recorder<string>();
      if (failure === 'silent') await (await openBus()).subscriber.subscribe(topic!, (m) => witnessed.add(m.id), { ...groupOf('witness'), startFrom });
      await bus.publisher.publish(topic!, { id: 'before', value: 1 });
      await started.waitFor(1, waitMs);

      relay.cut(failure);
      release.open(); // the handler ends during the outage: its acknowledgement cannot reach the broker
      const publishStarted = Date.now();
      const published = await settledWithin(bus.publisher.publish(topic!, { id: 'during', value: 2 }), OUTAGE_BOUND_MS);
      const publishMs = Date.now() - publishStarted;
      expect(published, `publish after the broker stopped answering (${failure})`).not.toBe('pending');
      if (caps.defaultGuarantee !== 'none') {
        // A transport that noticed the silence before its publish timed out may have sent the message
        // again on a new connection and had it confirmed (MQTT with a short keep-alive): then it is stored.
        if (failure === 'silent' && published === 'resolved') await waitUntil(() => witnessed.items.includes('during'), waitMs, 'the confirmed publish at a subscriber on a direct connection');
        else expect(published, 'a publish with a guarantee cannot be confirmed through a cut link').toBe('rejected');
      }
      const closeStarted = Date.now();
      const closing = await settledWithin(bus.close(), OUTAGE_BOUND_MS);
      closed = closing !== 'pending';
      const closeMs = Date.now() - closeStarted;
      console.log(`[measure] ${target.name}, broker ${FAILURE_NAMES[failure]}: publish ${published} after ${publishMs} ms, close() ${closeMs} ms`);
      expect(closing, `close() after the broker stopped answering (${failure})`).toBe('resolved');
    });
  }
  silentConsumerScenario(context);
}

/**
 * A subscription whose connection goes silent (a partition; new connections still reach the broker):
 * the transport notices by its own means (heartbeats, PINGs, keep-alives, timed-out reads), reports
 * the subscription interrupted, resumes on a new connection, and a message published after that
 * arrives, all within {@link OUTAGE_BOUND_MS}. On a persistent transport with durable groups, the
 * message published while the link was silent arrives too (some give it to the dead connection
 * first and deliver it again after their redelivery timeout). Targets give the relayed transport
 * short heartbeat and timeout settings. Before this scenario a RabbitMQ consumer read as live for 2-3
 * minutes (the broker's 60 s heartbeat), a NATS one stayed deaf 4-6 minutes (2-minute PINGs), and a
 * PostgreSQL LISTEN connection was never replaced.
 */
function silentConsumerScenario(context: ConformanceContext): void {
  const { target, caps, waitMs, timeout, groupOf, startFrom, topics, openBus, onCleanup } = context;
  const keeps = caps.persistent && caps.durableGroups;
  const title = `a subscription whose connection goes silent reports interrupted, resumes and receives again within ${OUTAGE_BOUND_MS / 1000} s${keeps ? ', losing nothing published meanwhile' : ''}`;
  const link = relayOrSkip(context, title);
  if (!link) return;
  it(title, { timeout: timeout + 3 * OUTAGE_BOUND_MS }, async () => {
    const relay = await BrokerLink.open(link.broker);
    onCleanup(() => relay.close());
    const counts = new CountingObserver();
    const bus = createBus({ transport: await link.createTransport(relay), observer: counts });
    onCleanup(() => bus.close());
    const direct = await openBus();
    const [topic] = await topics('silent-consumer');
    const got = new Recorder<string>();
    await bus.subscriber.subscribe(topic!, (m) => got.add(m.id), { ...groupOf('silent'), startFrom });
    await direct.publisher.publish(topic!, { id: 'before', value: 1 });
    await got.waitFor(1, waitMs);

    relay.cut('silent');
    const cut = Date.now();
    if (keeps) await direct.publisher.publish(topic!, { id: 'meanwhile', value: 2 });
    await waitUntil(() => counts.count('subscription-resumed', topic) >= 1, OUTAGE_BOUND_MS, 'subscription-resumed after the link went silent');
    const resumedMs = Date.now() - cut;
    expect(counts.count('subscription-interrupted', topic), 'interrupted before resumed').toBeGreaterThanOrEqual(1);
    await direct.publisher.publish(topic!, { id: 'after', value: 3 });
    await waitUntil(() => got.items.includes('after'), waitMs, 'the message published after the resume');
    if (keeps) await waitUntil(() => got.items.includes('meanwhile'), OUTAGE_BOUND_MS, 'the message published while the link was silent');
    console.log(`[measure] ${target.name}, consumer's link silent: resumed after ${resumedMs} ms, everything received after ${Date.now() - cut} ms`);
    // "before" may come twice: its acknowledgement may have been on its way when the link went silent.
    expect(new Set(got.items)).toEqual(new Set(keeps ? ['before', 'meanwhile', 'after'] : ['before', 'after']));
  });
}

/** The target's way to its broker through a relay; without one, the scenario `title` is registered as skipped, with the reason. */
function relayOrSkip({ target }: ConformanceContext, title: string) {
  const link = target.brokerLink;
  if (link && !('unavailable' in link)) return link;
  it.skip(`${title} — skipped: ${link ? link.unavailable : 'the target gives no way to reach its broker through a relay (brokerLink)'}`, () => undefined);
  return undefined;
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
