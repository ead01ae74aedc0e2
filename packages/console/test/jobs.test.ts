/**
 * The console's job runner on the in-memory transport (a product feature; the brokers' own paths are
 * in the browser and resume tests): a publisher that fails pauses the job, shows why, and resumes it.
 */
import { describe, expect, it } from 'vitest';
import { createBus, createMemoryTransport, describeDeadLetter, failureFingerprint, MemoryConsoleStore, MemoryParkingLot, type Publisher } from '@switchboard/core';
import { eventually, Recorder } from '@switchboard/core/testing';
import { DeadLetterConsole, type ConsoleLetter, PARKING_SOURCE } from '@switchboard/console';

function letter(n: number): ConsoleLetter {
  const described = describeDeadLetter('orders-dlq', {
    id: `order-${n}`,
    headers: { 'x-dlq-original-topic': 'orders', 'x-dlq-reason': 'non-retryable', 'x-dlq-error-name': 'NotFound', 'x-dlq-error-message': `order ${n} not found`, 'x-dlq-attempts': '1' },
    body: new TextEncoder().encode(JSON.stringify({ n })),
    timestamp: Date.now(),
  });
  return { ...described, source: 'memory', fingerprint: failureFingerprint(described) };
}

describe('console jobs', () => {
  it('a replay whose publishes fail pauses with the error on the job, then finishes once they succeed', async () => {
    const bus = createBus({ transport: createMemoryTransport() });
    const handled = new Recorder<string>();
    await bus.subscriber.subscribe('orders', (m) => handled.add(m.id), { group: 'billing' });
    let failures = 2;
    const flaky: Publisher = {
      publish: ((topic: string, message: never) => {
        if (failures-- > 0) return Promise.reject(new Error('broker unreachable'));
        return bus.publisher.publish(topic, message);
      }) as Publisher['publish'],
      close: () => bus.publisher.close(),
    };
    const store = new MemoryConsoleStore();
    const console_ = new DeadLetterConsole({
      sources: [{ name: 'memory', transport: bus.transport, publisher: flaky, deadLetterTopics: ['orders-dlq'] }],
      tokens: { alice: 'console-test-token-0123456789' },
      store,
      scanIntervalMs: 0,
      idleMs: 200,
    });
    const job = await console_.jobs.submit({ action: 'replay', actor: 'alice', letters: [letter(1), letter(2), letter(3)], reason: '', ratePerSecond: 0 });
    const paused = await eventually(async () => ((await store.job(job.id))!.error.includes('broker unreachable') ? store.job(job.id) : undefined), 5000, 'the job paused with its error');
    expect(paused).toMatchObject({ state: 'running', applied: 0 });
    expect(paused!.error).toMatch(/^broker unreachable \(retrying in \d+ s\)$/);
    await console_.jobs.settled(job.id);
    expect(await store.job(job.id)).toMatchObject({ state: 'done', applied: 3, removed: 3, error: '' });
    await handled.waitFor(3, 5000, 'the replayed orders');
    expect((await store.audit({ jobId: job.id, limit: 10 })).filter((e) => e.action === 'replay')).toHaveLength(3);
    await console_.close();
    await bus.close();
  }, 30_000);

  it('replays a parked message through the source that lists its dead-letter topic, not the first one; refuses one that two sources list, naming them', async () => {
    const east = createBus({ transport: createMemoryTransport() });
    const west = createBus({ transport: createMemoryTransport() });
    const arrived = { east: new Recorder<string>(), west: new Recorder<string>() };
    await east.subscriber.subscribe('payments', (m) => arrived.east.add(m.id), { group: 'billing' });
    await west.subscriber.subscribe('payments', (m) => arrived.west.add(m.id), { group: 'billing' });
    const parkingLot = new MemoryParkingLot();
    const park = async (id: string, deadLetterTopic: string): Promise<ConsoleLetter> => {
      const parked = await parkingLot.park({
        messageId: id,
        originalTopic: 'payments',
        deadLetterTopic,
        headers: {},
        payload: new TextEncoder().encode('{}'),
        reason: 'test',
        errorName: 'Error',
        errorMessage: 'x',
        attempts: 1,
      });
      const described = describeDeadLetter(deadLetterTopic, { id, headers: { 'x-dlq-original-topic': 'payments', 'x-dlq-original-group': 'billing' }, body: parked.payload, timestamp: Date.now() });
      return { ...described, source: PARKING_SOURCE, fingerprint: failureFingerprint(described), parkingId: parked.id };
    };
    const store = new MemoryConsoleStore();
    const console_ = new DeadLetterConsole({
      sources: [
        { name: 'east', transport: east.transport, publisher: east.publisher, deadLetterTopics: ['orders-dlq', 'shared-dlq'] },
        { name: 'west', transport: west.transport, publisher: west.publisher, deadLetterTopics: ['payments-dlq', 'shared-dlq'] },
      ],
      tokens: { alice: 'console-test-token-0123456789' },
      store,
      parkingLot,
      scanIntervalMs: 0,
      idleMs: 200,
    });
    const job = await console_.jobs.submit({ action: 'replay', actor: 'alice', letters: [await park('pay-1', 'payments-dlq')], reason: '', ratePerSecond: 0 });
    await console_.jobs.settled(job.id);
    expect(await store.job(job.id)).toMatchObject({ state: 'done', applied: 1 });
    expect(await arrived.west.waitFor(1, 5000, 'the replay on west')).toEqual(['pay-1']);
    expect(arrived.east.items).toEqual([]); // east is the first source: the replay went there before
    for (const deadLetterTopic of ['shared-dlq', 'unknown-dlq']) {
      const refused = await console_.jobs
        .submit({ action: 'replay', actor: 'alice', letters: [await park(`pay-${deadLetterTopic}`, deadLetterTopic)], reason: '', ratePerSecond: 0 })
        .catch((error: unknown) => error);
      expect(String(refused)).toMatch(new RegExp(`dead-letter topic "${deadLetterTopic}", which .*\\(east, west\\): list it on exactly one source`));
    }
    await console_.close();
    await Promise.all([east.close(), west.close()]);
  }, 30_000);
});
