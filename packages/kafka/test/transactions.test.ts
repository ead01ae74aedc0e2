import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { type Bus, CapabilityError, createBus, NonRetryableError, type Message } from '@switchboard/core';
import { eventually, Recorder, uniqueName, waitUntil } from '@switchboard/core/testing';
import { type KafkaTransport, platformaticRunsOn } from '@switchboard/kafka';
import { kafkajsClient } from '../src/kafkajs/client.js';
import { kafkaOptionsSchema } from '../src/options.js';
import { handledLines, KAFKA_BROKERS, rawKafka, TEST_DRIVER, testTransport } from './helpers.js';

const kafkaScript = fileURLToPath(new URL('../../../scripts/kafka.sh', import.meta.url));
const broker = (command: 'up' | 'down') => promisify(execFile)('bash', [kafkaScript, command], { timeout: 180_000 });
const managed = !process.env.KAFKA_BROKERS; // only a broker this project started can be stopped here
afterAll(async () => {
  if (managed) await broker('up'); // whatever happened, leave the broker running
}, 180_000);

/** Every record of `topic` from the beginning, as a raw kafkajs consumer reads it (`readUncommitted` or not), until `count` arrived or 10 s of quiet. */
async function readAll(topic: string, readUncommitted: boolean, count: number): Promise<string[]> {
  const consumer = rawKafka('switchboard-test-reader').consumer({ groupId: uniqueName('reader'), readUncommitted });
  const ids: string[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let last = Date.now();
  await consumer.run({
    eachMessage: async ({ message }) => {
      ids.push(JSON.parse(message.value!.toString()).id ?? '');
      last = Date.now();
    },
  });
  try {
    await waitUntil(() => ids.length >= count && Date.now() - last > 1000, 60_000, `${count} records on ${topic}`).catch(() => undefined);
    return ids;
  } finally {
    await consumer.disconnect();
  }
}

/** Resolves once `group`'s committed offsets on `topic` reach the log end on every partition (everything consumed). */
function groupAtLogEnd(transport: KafkaTransport, group: string, topic: string, what: string): Promise<true> {
  return eventually(
    async () => {
      const ends = await transport.admin.topicOffsets(topic).catch(() => []);
      const committed = await transport.admin.groupOffsets(group, topic).catch(() => []);
      return ends.length > 0 && ends.every((e) => committed.find((c) => c.partition === e.partition)?.offset === e.high) ? true : undefined;
    },
    120_000,
    what,
  );
}

/** Creates `input` and `output`, and publishes `total` inputs `in-<i>` (16 keys) to `input`. */
async function publishInputs(input: string, output: string, total: number): Promise<void> {
  const transport = await testTransport();
  const producer = createBus({ transport });
  await transport.ensureTopics([input, output]);
  await producer.publisher.publish(
    input,
    Array.from({ length: total }, (_, i) => ({ id: `in-${i}`, key: `k-${i % 16}`, value: { i } })),
  );
  await producer.close();
}

/**
 * The fixture's consume-transform-produce in this process, as the successor of a member in `group`:
 * each input becomes `<id>-out` on `output`, in one transaction with the input's offset. Retries
 * outlast a broker restart (a publish failing meanwhile is tried again, not dead-lettered).
 */
async function subscribeCopier(bus: Bus, input: string, output: string, group: string, handled?: Recorder<string>): Promise<void> {
  await bus.subscriber.subscribe(
    input,
    async (m) => {
      await bus.publisher.publish(output, { id: `${m.id}-out`, key: m.key ?? m.id, value: { id: `${m.id}-out` } });
      handled?.add(m.id);
    },
    { group, startFrom: 'earliest', concurrency: 4, transactional: true, retry: { maxAttempts: 30, initialIntervalMs: 200, maxIntervalMs: 2000 } },
  );
}

// Whatever the project's driver: transactional subscriptions are kafkajs only, refused on platformatic.
describe.skipIf(!platformaticRunsOn())(`kafka transactional subscriptions on driver platformatic (needs Node >= 22.22, this is ${process.versions.node})`, () => {
  it('are refused at subscribe, naming the option (the platformatic driver declares no transactions yet)', async () => {
    const bus = createBus({ transport: await testTransport({ driver: 'platformatic' }) });
    expect(bus.transport.capabilities.transactions).toBeFalsy();
    const refused = await bus.subscriber.subscribe(uniqueName('sb-kafka.tx'), () => undefined, { transactional: true }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(CapabilityError);
    expect(String(refused)).toMatch(/transactional.*driver kafkajs/);
    await bus.close();
  });
});

// On driver kafkajs whatever the project's driver (the fixture's member uses it too: one group, one driver).
const kafkajsTransport = () => testTransport({ driver: 'kafkajs', groupProtocol: 'classic' });

// Run once per CI: on the kafkajs project run. The platformatic project run (`pnpm
// test:kafka-platformatic`) would repeat the same kafkajs members and brokers' restarts.
describe.skipIf(TEST_DRIVER === 'platformatic')(
  `kafka transactional subscriptions (consume-transform-produce, driver kafkajs)${TEST_DRIVER === 'platformatic' ? ' — skipped on this run: driver kafkajs whatever the project driver, run by `pnpm test`' : ''}`,
  () => {
    it("connecting a partition's transactional producer fences the previous owner: its open transaction is aborted, its commit fails (what a join relies on before it reads the committed offsets)", async () => {
      const topic = uniqueName('sb-kafka.tx-fence');
      const transport = await kafkajsTransport();
      await transport.ensureTopics([topic]);
      const client = kafkajsClient(kafkaOptionsSchema.parse({ brokers: KAFKA_BROKERS.split(','), driver: 'kafkajs' }));
      const id = `sb.fence-test.${topic}.0`;
      const previous = client.transactionalSender!(id);
      const successor = client.transactionalSender!(id);
      try {
        await previous.connect();
        const open = await previous.begin();
        await open.send(topic, [{ key: 'k', value: Buffer.from('{"id":"from-the-previous-owner"}'), timestamp: String(Date.now()), headers: {}, partition: 0 }]);
        await successor.connect(); // a join connects the new owner's producer, then reads the committed offsets
        const committed = await open.commit().then(
          () => 'committed',
          (error: unknown) => `refused: ${String(error)}`,
        );
        expect(committed).toMatch(/^refused/);
        expect(await readAll(topic, false, 0)).toEqual([]); // nothing of the fenced transaction is visible
      } finally {
        await Promise.all([previous.close(), successor.close(), transport.close(), client.close()]);
      }
    }, 60_000);

    it('a member moved back to records it committed in transactions skips them: none is handled or committed again (the move injected with a seek of its consumer)', async () => {
      const input = uniqueName('sb-kafka.tx-back-in');
      const output = uniqueName('sb-kafka.tx-back-out');
      await publishInputs(input, output, 40);
      const skipped = new Recorder<string>();
      const transport = await kafkajsTransport();
      const bus = createBus({
        transport,
        observer: { onEvent: (e) => void (e.type === 'internal-error' && /committed in a transaction was fetched again/.test(e.context) && skipped.add(e.context)) },
      });
      const handled = new Recorder<string>();
      await subscribeCopier(bus, input, output, 'tx-back', handled);
      await handled.waitFor(40, 60_000);
      // What a stale position does (an older committed offset read at a join, a commit landing late):
      // the consumer goes back to the start of every partition.
      const [subscription] = (transport as unknown as { subscriptions: Set<{ consumer: { seek(position: { topic: string; partition: number; offset: string }): void } }> }).subscriptions;
      for (const { partition } of await transport.admin.topicOffsets(input)) subscription!.consumer.seek({ topic: input, partition, offset: '0' });
      await bus.publisher.publish(
        input,
        Array.from({ length: 10 }, (_, i) => ({ id: `in-${40 + i}`, key: `k-${i}`, value: { i: 40 + i } })),
      );
      await handled.waitFor(50, 60_000);
      await groupAtLogEnd(transport, 'tx-back', input, "the group's offsets at the log end");
      const outputs = await readAll(output, false, 50);
      console.log(`[measure] kafka transactional member moved back: ${handled.count} handled, ${skipped.count} skipped as committed already, ${outputs.length} outputs read_committed`);
      expect(handled.count).toBe(50);
      expect(skipped.count).toBe(40);
      expect(outputs.length).toBe(50);
      expect(new Set(outputs).size).toBe(50);
      await bus.close();
    }, 120_000);

    it("publishes a handler's outputs and commits its input in one transaction: outputs of failed attempts are aborted, dead letters committed once", async () => {
      const transport = await kafkajsTransport();
      const bus = createBus({ transport });
      const input = uniqueName('sb-kafka.tx-in');
      const output = uniqueName('sb-kafka.tx-out');
      const total = 200;
      const failedOnce = new Set<string>();
      const poison = (i: number) => i % 50 === 7;
      await bus.subscriber.subscribe<{ i: number }>(
        input,
        async (m: Message<{ i: number }>) => {
          // The outputs are published first, then the handler may fail: a failed attempt's outputs must never show.
          await bus.publisher.publish(output, [
            { id: `${m.id}-a`, key: m.key, value: { id: `${m.id}-a` } },
            { id: `${m.id}-b`, key: m.key, value: { id: `${m.id}-b` } },
          ]);
          if (poison(m.value.i)) throw new NonRetryableError('poison input');
          if (m.value.i % 20 === 5 && !failedOnce.has(m.id)) {
            failedOnce.add(m.id);
            throw new Error('transient failure after publishing');
          }
        },
        { group: 'tx', startFrom: 'earliest', transactional: true, retry: { maxAttempts: 3, initialIntervalMs: 10 } },
      );
      const letters = new Recorder<string>();
      await bus.subscriber.subscribe(`${input}-dlq`, (m) => letters.add(m.id), { group: 'dlq-reader', startFrom: 'earliest' });
      await bus.publisher.publish(
        input,
        Array.from({ length: total }, (_, i) => ({ id: `in-${i}`, key: `k-${i % 8}`, value: { i } })),
      );
      const poisoned = Array.from({ length: total }, (_, i) => i).filter(poison);
      await letters.waitFor(poisoned.length, 60_000);
      const expected = Array.from({ length: total }, (_, i) => i)
        .filter((i) => !poison(i))
        .flatMap((i) => [`in-${i}-a`, `in-${i}-b`]);
      // All inputs consumed: the group's committed offsets reach the log end.
      await groupAtLogEnd(transport, 'tx', input, "the group's offsets at the log end");
      const committedOutputs = await readAll(output, false, expected.length);
      const everything = await readAll(output, true, expected.length);
      console.log(
        `[measure] kafka transactions: ${total} inputs, ${failedOnce.size} failed once after publishing, ${poisoned.length} poison; outputs read_committed ${committedOutputs.length} (expected ${expected.length}), read_uncommitted ${everything.length} (aborted attempts included), dead letters ${letters.count}`,
      );
      expect([...committedOutputs].sort()).toEqual([...expected].sort()); // each exactly once
      expect(everything.length).toBeGreaterThan(committedOutputs.length); // the aborted outputs were written, and hidden
      expect([...letters.items].sort()).toEqual(poisoned.map((i) => `in-${i}`).sort());
      await bus.close();
    }, 180_000);

    it.runIf(managed)(
      'a consumer SIGKILLed mid-stream and a broker restart: every input has its output exactly once on read_committed (stops and restarts the project broker: skipped with KAFKA_BROKERS)',
      async () => {
        const input = uniqueName('sb-kafka.tx-kill-in');
        const output = uniqueName('sb-kafka.tx-kill-out');
        const group = 'tx-kill';
        const total = 1500;
        await publishInputs(input, output, total);
        const script = fileURLToPath(new URL('./fixtures/consume-transactional.mjs', import.meta.url));
        const child = spawn(process.execPath, [script, input, group, output, KAFKA_BROKERS], { stdio: ['ignore', 'pipe', 'inherit'] });
        const handledByChild = handledLines(child);
        const exited = new Promise((resolve) => child.on('exit', resolve));
        await waitUntil(() => handledByChild.items.filter((l) => l.startsWith('in-')).length >= 300, 60_000, 'inputs handled by the child');
        child.kill('SIGKILL'); // mid-stream: a transaction may be open
        await exited;

        // The same group in this process: its producers fence the dead member's and go on from the committed offsets.
        const counts = { committedAgain: 0, fetchedAgain: 0 };
        const transport = await kafkajsTransport();
        const bus = createBus({
          transport,
          observer: {
            onEvent: (e) => {
              if (e.type !== 'internal-error') return;
              if (/kafka transaction/.test(e.context)) counts.committedAgain++;
              if (/committed in a transaction was fetched again/.test(e.context)) counts.fetchedAgain++;
            },
          },
        });
        const handled = new Recorder<string>();
        await subscribeCopier(bus, input, output, group, handled);
        const letters = new Recorder<string>();
        await bus.subscriber.subscribe(`${input}-dlq`, (m) => letters.add(m.id), { group: 'dlq-reader', startFrom: 'earliest' });
        await handled.waitFor(200, 60_000);
        await broker('down'); // transactions in flight fail: aborted, handled again after the restart
        await broker('up');
        await groupAtLogEnd(transport, group, input, "the group's offsets at the log end after the restart");
        const outputs = await readAll(output, false, total);
        const distinct = new Set(outputs);
        console.log(
          `[measure] kafka transactions under SIGKILL + broker restart: ${total} inputs, ${handledByChild.items.filter((l) => l.startsWith('in-')).length} handled by the killed child, ${handled.count} by the successor (repeats included), transaction failures reported ${counts.committedAgain}, records committed already and fetched again (skipped) ${counts.fetchedAgain}; output read_committed ${outputs.length} records, ${distinct.size} distinct; dead letters ${letters.count}`,
        );
        if (distinct.size !== total || outputs.length !== total) {
          const counted = new Map<string, number>();
          for (const id of outputs) counted.set(id, (counted.get(id) ?? 0) + 1);
          const missing = Array.from({ length: total }, (_, i) => `in-${i}-out`).filter((id) => !counted.has(id));
          const repeated = [...counted].filter(([, n]) => n > 1).map(([id]) => id);
          const uncommitted = await readAll(output, true, total);
          console.log(
            'DIAG missing',
            missing.length,
            missing.slice(0, 20).join(','),
            'repeated',
            repeated.length,
            repeated.slice(0, 20).join(','),
            'uncommitted total',
            uncommitted.length,
            'missing among uncommitted',
            missing.filter((id) => uncommitted.includes(id)).length,
            'child handled sample',
            handledByChild.items.slice(0, 5).join(','),
            handledByChild.items.slice(-5).join(','),
          );
        }
        expect(letters.items).toEqual([]);
        expect(distinct.size).toBe(total);
        expect(outputs.length).toBe(total); // no duplicate among committed outputs
        await bus.close();
      },
      300_000,
    );
    it('a zombie (a member frozen past its session, SIGSTOP, then thawed) is fenced: its late commits fail, every output exactly once', async () => {
      const input = uniqueName('sb-kafka.tx-zombie-in');
      const output = uniqueName('sb-kafka.tx-zombie-out');
      const group = 'tx-zombie';
      const total = 800;
      await publishInputs(input, output, total);
      const script = fileURLToPath(new URL('./fixtures/consume-transactional.mjs', import.meta.url));
      const zombie = spawn(process.execPath, [script, input, group, output, KAFKA_BROKERS], { stdio: ['ignore', 'pipe', 'inherit'] });
      const zombieLines = handledLines(zombie);
      const exited = new Promise((resolve) => zombie.on('exit', resolve));
      try {
        await waitUntil(() => zombieLines.items.filter((l) => l.startsWith('in-')).length >= 100, 60_000, 'inputs handled by the first member');
        zombie.kill('SIGSTOP'); // frozen mid-stream: its session (10 s) expires, the group moves on without it
        const transport = await kafkajsTransport();
        const bus = createBus({ transport });
        await subscribeCopier(bus, input, output, group);
        await groupAtLogEnd(transport, group, input, "the successor's offsets at the log end");
        zombie.kill('SIGCONT'); // thawed: it goes on where it was, with producers the successor fenced
        await waitUntil(() => zombieLines.items.some((l) => l.startsWith('! ')), 30_000, 'the thawed member failing a transaction (fenced)').catch(() => undefined);
        await bus.close(); // the thawed member may take the partitions back meanwhile: all committed anyway
        const outputs = await readAll(output, false, total);
        const fenced = zombieLines.items.filter((l) => l.startsWith('! '));
        console.log(
          `[measure] kafka transactions, zombie fencing: ${total} inputs, the frozen member handled ${zombieLines.items.filter((l) => l.startsWith('in-')).length} before and after its freeze, its transaction failures after thawing ${fenced.length} (${[...new Set(fenced)].slice(0, 2).join('; ')}); output read_committed ${outputs.length} records, ${new Set(outputs).size} distinct`,
        );
        expect(new Set(outputs).size).toBe(total);
        expect(outputs.length).toBe(total);
      } finally {
        zombie.kill('SIGKILL');
        await exited;
      }
    }, 300_000);
  },
);
