import * as amqplib from 'amqplib';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '@switchboard/cli/testing';
import { ConfigError, CountingObserver, NonRetryableError, createBus, PublishError, type Bus, type Message, registerTransport } from '@switchboard/core';
import { BrokerLink, Recorder, uniqueName } from '@switchboard/core/testing';
import { createSwitchboardContainer } from '@switchboard/inversify';
import { createRabbitTransport, type RabbitOptionsInput, type RabbitTransport, rabbitmqTransport } from '@switchboard/rabbitmq';
import { RABBITMQ_URL, rabbitmqctl, testTransport } from './helpers.js';

// Config-driven tests (createSwitchboardContainer with transport.kind) find the adapter through the registry.
registerTransport(rabbitmqTransport);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function openBus(options: RabbitOptionsInput = {}): Promise<Bus & { counts: CountingObserver }> {
  const counts = new CountingObserver();
  const bus = createBus({ transport: await testTransport(options), observer: counts });
  cleanups.push(() => bus.close());
  return Object.assign(bus, { counts });
}

describe('rabbitmq exchange kinds route as documented', () => {
  it('direct: exact routing key only', async () => {
    const exchange = uniqueName('sb-rabbit.direct');
    const [payments, refunds] = [uniqueName('payments'), uniqueName('refunds')];
    const bus = await openBus({ routes: { [payments]: { exchange, type: 'direct' }, [refunds]: { exchange, type: 'direct' } } });
    const onPayments = new Recorder<Message>();
    const onRefunds = new Recorder<Message>();
    await bus.subscriber.subscribe(payments, (m) => onPayments.add(m));
    await bus.subscriber.subscribe(refunds, (m) => onRefunds.add(m));
    await bus.publisher.publish(payments, [{ value: 'p1' }, { value: 'p2' }]);
    await bus.publisher.publish(refunds, { value: 'r1' });
    expect((await onPayments.waitFor(2, 10_000)).map((m) => m.value).sort()).toEqual(['p1', 'p2']);
    expect((await onRefunds.waitFor(1, 10_000)).map((m) => m.value)).toEqual(['r1']);
    expect(onPayments.items[0]!.source).toMatchObject({ transport: 'rabbitmq', exchange, routingKey: payments, queue: payments });
  });

  it('fanout: every bound queue gets every message, whatever the routing key', async () => {
    const exchange = uniqueName('sb-rabbit.fanout');
    const [a, b] = [uniqueName('announce-a'), uniqueName('announce-b')];
    const bus = await openBus({ routes: { [a]: { exchange, type: 'fanout' }, [b]: { exchange, type: 'fanout' } } });
    const onA = new Recorder<Message>();
    const onB = new Recorder<Message>();
    await bus.subscriber.subscribe(a, (m) => onA.add(m));
    await bus.subscriber.subscribe(b, (m) => onB.add(m));
    await bus.publisher.publish(a, { value: 'to everyone' });
    expect((await onA.waitFor(1, 10_000)).map((m) => m.value)).toEqual(['to everyone']);
    expect((await onB.waitFor(1, 10_000)).map((m) => m.value)).toEqual(['to everyone']);
  });

  it('topic: * matches one word, # any number', async () => {
    const bus = await openBus();
    const base = uniqueName('sb-rabbit-topic');
    const star = new Recorder<Message>();
    const hash = new Recorder<Message>();
    await bus.subscriber.subscribe(`${base}.*.created`, (m) => star.add(m), { pattern: true });
    await bus.subscriber.subscribe(`${base}.#`, (m) => hash.add(m), { pattern: true });
    for (const t of [`${base}.eu.created`, `${base}.eu.west.created`, `${base}.us.deleted`]) await bus.publisher.publish(t, { value: t });
    await hash.waitFor(3, 10_000);
    await star.waitFor(1, 10_000);
    expect(star.items.map((m) => m.source.topic)).toEqual([`${base}.eu.created`]);
    expect(hash.items.map((m) => m.source.topic).sort()).toEqual([`${base}.eu.created`, `${base}.eu.west.created`, `${base}.us.deleted`].sort());
  });

  it('headers: x-match all needs every header, any needs one', async () => {
    const exchange = uniqueName('sb-rabbit.headers');
    const alerts = uniqueName('alerts');
    const bus = await openBus({
      routes: {
        [alerts]: {
          exchange,
          type: 'headers',
          headers: { 'all-eu-critical': { 'x-match': 'all', region: 'eu', level: 'critical' }, 'any-eu-critical': { 'x-match': 'any', region: 'eu', level: 'critical' } },
        },
      },
    });
    const all = new Recorder<Message>();
    const any = new Recorder<Message>();
    await bus.subscriber.subscribe(alerts, (m) => all.add(m), { group: 'all-eu-critical' });
    await bus.subscriber.subscribe(alerts, (m) => any.add(m), { group: 'any-eu-critical' });
    await bus.publisher.publish(alerts, [
      { id: 'eu-critical', headers: { region: 'eu', level: 'critical' }, value: 1 },
      { id: 'eu-info', headers: { region: 'eu', level: 'info' }, value: 2 },
      { id: 'us-critical', headers: { region: 'us', level: 'critical' }, value: 3 },
    ]);
    await any.waitFor(3, 10_000);
    await all.waitFor(1, 10_000);
    expect(any.items.map((m) => m.id).sort()).toEqual(['eu-critical', 'eu-info', 'us-critical']);
    expect(all.items.map((m) => m.id)).toEqual(['eu-critical']);
  });
  it('refuses names RabbitMQ cannot hold, naming the field: a routing key or queue over 255 bytes, a control character (amqplib threw a TypeError; a newline made a queue nobody could consume from)', async () => {
    const bus = await openBus();
    const long = `${uniqueName('sb-rabbit.long')}-${'é'.repeat(130)}`; // under 255 characters, over 255 bytes
    for (const topic of [long, `${uniqueName('sb-rabbit.ctl')}\nx`]) {
      const published = await bus.publisher.publish(topic, { value: 1 }).catch((error: unknown) => error);
      expect(published).toBeInstanceOf(ConfigError);
      expect(String(published)).toMatch(/topic: the routing key .*(bytes of UTF-8: RabbitMQ takes at most 255|holds a control character)/);
      const subscribed = await bus.subscriber.subscribe(topic, () => undefined, { group: 'g' }).catch((error: unknown) => error);
      expect(subscribed).toBeInstanceOf(ConfigError);
    }
    // The topic fits, the group's queue <topic>.<group> does not.
    const fits = `${uniqueName('sb-rabbit.fits')}-${'x'.repeat(200)}`;
    await expect(bus.subscriber.subscribe(fits, () => undefined, { group: 'g'.repeat(60) })).rejects.toThrowError(/group: the group's queue .* bytes of UTF-8/);
    await bus.subscriber.subscribe(fits, () => undefined, { group: 'g' });
  });

  it('a pattern matching a topic routed elsewhere is refused, naming the route; patterns whose topics all go through the main exchange still get them', async () => {
    const base = uniqueName('sb-rabbit-routed');
    const exchange = uniqueName('sb-rabbit.elsewhere');
    const bus = await openBus({
      routes: {
        [`${base}.orders.paid`]: { exchange, type: 'direct' },
        [`${base}.jobs.resize`]: { type: 'queue' },
        // Through the main exchange with the topic as routing key: a pattern sees it.
        [`${base}.orders.created`]: { exchange: 'switchboard', type: 'topic' },
      },
    });
    const refusals = [
      [`${base}.orders.*`, `${base}.orders.paid`, `through exchange "${exchange}" (type "direct")`],
      [`${base}.#`, `${base}.orders.paid`, 'through exchange'],
      [`${base}.jobs.*`, `${base}.jobs.resize`, 'straight to the queue of group "default"'],
    ] as const;
    for (const [pattern, topic, where] of refusals) {
      const refusal = bus.subscriber.subscribe(pattern, () => undefined, { pattern: true, group: 'watch' });
      await expect(refusal).rejects.toBeInstanceOf(ConfigError);
      await expect(refusal).rejects.toThrow(`transport.routes.${topic}: the pattern "${pattern}" matches "${topic}", which is routed ${where}`);
    }
    // A pattern whose routed matches go through the main exchange with their topic as routing key is fine.
    const seen = new Recorder<Message>();
    await bus.subscriber.subscribe(`${base}.*.created`, (m) => seen.add(m), { pattern: true, group: 'watch' });
    await bus.publisher.publish(`${base}.orders.created`, { id: 'c-1', value: 1 });
    await bus.publisher.publish(`${base}.users.created`, { id: 'u-1', value: 2 });
    expect((await seen.waitFor(2, 10_000)).map((m) => m.id).sort()).toEqual(['c-1', 'u-1']);
  });
});

describe("rabbitmq queue routes: straight to one group's queue through the default exchange", () => {
  it('delivers to that group only (competing consumers share it), and refuses the subscriptions it would never feed', async () => {
    const topic = uniqueName('sb-rabbit.work');
    const bus = await openBus({ routes: { [topic]: { type: 'queue' } } });
    // Before any subscription the queue does not exist: the default exchange returns the message.
    await expect(bus.publisher.publish(topic, { value: 'too early' })).rejects.toThrow(/unroutable/);
    const workers = [new Recorder<Message>(), new Recorder<Message>()];
    // Spare prefetch credit on both: RabbitMQ then cycles through them strictly (10 each).
    for (const w of workers) await bus.subscriber.subscribe(topic, (m) => w.add(m), { concurrency: 20 });
    const refusal = bus.subscriber.subscribe(topic, () => undefined, { group: 'audit' });
    await expect(refusal).rejects.toBeInstanceOf(ConfigError);
    await expect(refusal).rejects.toThrow(new RegExp(`transport\\.routes\\.${topic.replace(/\./g, '\\.')}: .*group "audit" would receive nothing`));
    await expect(bus.subscriber.subscribe(topic, () => undefined, { ephemeral: true })).rejects.toThrow(/request\/reply or broadcast subscription would receive nothing/);
    await bus.publisher.publish(
      topic,
      Array.from({ length: 20 }, (_, i) => ({ id: `w-${i}`, value: i })),
    );
    const union = new Set<string>();
    await Promise.all(workers.map((w) => w.waitFor(10, 10_000)));
    for (const w of workers) for (const m of w.items) union.add(m.id);
    expect(union.size).toBe(20);
    expect(workers[0]!.items[0]!.source).toMatchObject({ transport: 'rabbitmq', topic, exchange: '', routingKey: topic, queue: topic });
  });

  it('a named group: the queue <topic>.<group> gets it, the core topic travels in a header; delays and broker retries go back to that queue', async () => {
    const topic = uniqueName('sb-rabbit.billing');
    const bus = await openBus({ routes: { [topic]: { type: 'queue', group: 'billing' } }, retryMode: 'broker' });
    const received = new Recorder<Message>();
    const arrivedAt = new Map<string, number>();
    let failures = 0;
    await bus.subscriber.subscribe(
      topic,
      (m) => {
        if (m.id === 'flaky' && failures++ === 0) throw new Error('once');
        arrivedAt.set(m.id, Date.now());
        received.add(m);
      },
      { group: 'billing', retry: { maxAttempts: 3, initialIntervalMs: 200 } },
    );
    await bus.publisher.publish(topic, [
      { id: 'now', value: 1 },
      { id: 'flaky', value: 2 },
    ]);
    const published = Date.now();
    await bus.publisher.publish(topic, { id: 'later', value: 3 }, { delayMs: 400 });
    const items = await received.waitFor(3, 10_000);
    expect(items.map((m) => m.id).sort()).toEqual(['flaky', 'later', 'now']);
    const later = items.find((m) => m.id === 'later')!;
    expect(later.source).toMatchObject({ topic, exchange: '', routingKey: `${topic}.billing`, queue: `${topic}.billing` });
    expect(arrivedAt.get('later')! - published).toBeGreaterThanOrEqual(400); // held by the broker, no earlier
    expect(items.find((m) => m.id === 'flaky')!.attempt).toBe(2);
    expect(failures).toBe(2);
  });

  it('refuses a queue route with fields of an exchange route, naming the field', async () => {
    await expect(testTransport({ routes: { t: { type: 'queue', exchange: 'x' } as never } })).rejects.toThrow(/routes\.t/);
  });
});

describe('rabbitmq consumers', () => {
  it('spreads one queue round-robin over competing consumers; every group gets every message', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-rabbit.rr');
    const consumers = [new Recorder<Message>(), new Recorder<Message>(), new Recorder<Message>()];
    const union = new Recorder<Message>();
    const other = new Recorder<Message>();
    // Spare prefetch credit on every consumer: RabbitMQ then cycles through them strictly (with prefetch 1
    // it skips a consumer that has not acked yet, and the split depends on timing).
    for (const c of consumers) await bus.subscriber.subscribe(topic, (m) => (c.add(m), union.add(m)), { group: 'workers', concurrency: 20 });
    await bus.subscriber.subscribe(topic, (m) => other.add(m), { group: 'audit' });
    await bus.publisher.publish(
      topic,
      Array.from({ length: 30 }, (_, i) => ({ id: `rr-${i}`, value: i })),
    );
    await union.waitFor(30, 10_000);
    await other.waitFor(30, 10_000);
    expect(consumers.map((c) => c.count)).toEqual([10, 10, 10]);
    expect(new Set(union.items.map((m) => m.id)).size).toBe(30);
  });

  it('with broker-native retry, other messages keep flowing while a poison message backs off', async () => {
    const results: Record<string, unknown> = {};
    for (const retryMode of ['broker', 'in-process'] as const) {
      const bus = await openBus({ retryMode });
      const topic = uniqueName(`sb-rabbit.flow-${retryMode}`);
      const good = new Recorder<number>();
      const poisonAttempts: number[] = [];
      await bus.subscriber.subscribe<{ poison?: boolean }>(
        topic,
        (m) => {
          if (m.value.poison) {
            poisonAttempts.push(performance.now());
            throw new Error('still failing');
          }
          good.add(performance.now());
        },
        { concurrency: 1, retry: { maxAttempts: 2, initialIntervalMs: 1500 } },
      );
      const start = performance.now();
      await bus.publisher.publish(topic, { id: 'poison', value: { poison: true } });
      await bus.publisher.publish(
        topic,
        Array.from({ length: 200 }, (_, i) => ({ value: { i } })),
      );
      await good.waitFor(200, 20_000);
      await bus.counts.waitFor('dead-lettered', 1);
      const goodDoneMs = good.items[199]! - start;
      results[retryMode] = { goodDoneMs: Math.round(goodDoneMs), poisonRetryAtMs: Math.round(poisonAttempts[1]! - start), msgPerSecDuringBackoff: Math.round(200 / (goodDoneMs / 1000)) };
      if (retryMode === 'broker')
        expect(goodDoneMs).toBeLessThan(poisonAttempts[1]! - start); // all 200 handled during the backoff
      else expect(goodDoneMs).toBeGreaterThanOrEqual(1500 - 20); // concurrency 1: the backoff holds the only slot
    }
    console.log('[measure] rabbitmq: 200 good messages behind a poison message (backoff 1500 ms, concurrency 1):', JSON.stringify(results));
  });

  it('loses nothing confirmed when every connection is closed mid-stream; the consumer resumes by itself', async () => {
    const bus = await openBus({ publishTimeoutMs: 15_000 });
    const topic = uniqueName('sb-rabbit.kill');
    const received = new Set<string>();
    const deliveries = new Recorder<string>();
    await bus.subscriber.subscribe(
      topic,
      (m) => {
        received.add(m.id);
        deliveries.add(m.id);
      },
      { concurrency: 10, group: 'survivors' },
    );
    const confirmed: string[] = [];
    let failed = 0;
    let killed = false;
    const total = 3000;
    const publishing = (async () => {
      for (let i = 0; i < total; i += 20) {
        const batch = Array.from({ length: 20 }, (_, j) => ({ id: `k-${i + j}`, value: i + j }));
        try {
          await bus.publisher.publish(topic, batch);
          confirmed.push(...batch.map((m) => m.id));
        } catch (error) {
          expect(error).toBeInstanceOf(PublishError);
          failed += batch.length;
        }
      }
    })();
    await deliveries.waitFor(500, 20_000);
    const url = new URL(RABBITMQ_URL);
    expect(bus.health().connections).toEqual([{ name: 'connection', state: 'up', since: expect.any(Number), endpoint: `${url.hostname}:${url.port || 5672}` }]);
    const killedAt = Date.now();
    await rabbitmqctl('close_all_connections', 'switchboard test: connection killed');
    killed = true;
    await publishing;
    await bus.counts.waitFor('subscription-resumed', 1);
    // health(): the connection went down and is up again since the reconnect; the subscription is live.
    const health = bus.health();
    expect(health.status).toBe('up');
    expect(health.connections[0]!.state).toBe('up');
    expect(health.connections[0]!.since).toBeGreaterThanOrEqual(killedAt);
    expect(health.subscriptions).toEqual([{ topic, group: 'survivors', state: 'live' }]);
    const deadline = Date.now() + 30_000;
    while (confirmed.some((id) => !received.has(id)) && Date.now() < deadline) await deliveries.waitFor(deliveries.count + 1, 30_000).catch(() => undefined);
    const lost = confirmed.filter((id) => !received.has(id));
    console.log(
      `[measure] rabbitmq connection kill: published ${total}, confirmed ${confirmed.length}, failed (reported to the caller) ${failed}, delivered ${received.size}, deliveries ${deliveries.count} (duplicates ${deliveries.count - received.size}), lost confirmed ${lost.length}`,
    );
    expect(killed).toBe(true);
    expect(lost).toEqual([]);
    expect(bus.counts.count('subscription-interrupted')).toBeGreaterThanOrEqual(1);
  });
});

describe('rabbitmq publishing and config', () => {
  it('closes over a silent connection (a partition) within one publishTimeoutMs: once a wait went unanswered, the rest are not waited for', async () => {
    const link = await BrokerLink.open(BrokerLink.addressOf(RABBITMQ_URL));
    cleanups.push(() => link.close());
    const bus = createBus({ transport: await testTransport({ url: link.urlThrough(RABBITMQ_URL), publishTimeoutMs: 2000 }) });
    const topic = uniqueName('sb-rabbit.silent-close');
    await bus.subscriber.subscribe(topic, () => undefined, { group: 'a' });
    await bus.subscriber.subscribe(topic, () => undefined, { group: 'b' });
    link.cut('silent');
    const started = performance.now();
    await bus.close();
    const closeMs = performance.now() - started;
    console.log(`[measure] rabbitmq close over a silent connection, publishTimeoutMs 2000: ${Math.round(closeMs)} ms`);
    // The subscriptions' cancels go unanswered for one bound (2 s, side by side); their channel closes
    // and the connection's close-ok are then not waited for (the socket is destroyed). Before, the
    // connection's close waited a second bound: 4 s.
    expect(closeMs).toBeGreaterThanOrEqual(1900);
    expect(closeMs).toBeLessThan(3500);
  });

  it('heartbeatSeconds: asked of the broker unless the URL asks itself; 0 turns heartbeats off; out of range is refused naming the field', async () => {
    const heartbeatOf = async (options: RabbitOptionsInput) => {
      const name = uniqueName('sb-hb');
      const transport = await testTransport({ ...options, connectionName: name });
      cleanups.push(() => transport.close());
      const listed = await rabbitmqctl('list_connections', 'client_properties', 'timeout', '--formatter', 'json');
      const connection = (JSON.parse(listed) as { client_properties: unknown[]; timeout: number }[]).find((c) => JSON.stringify(c.client_properties).includes(name));
      return connection?.timeout;
    };
    expect(await heartbeatOf({})).toBe(10);
    expect(await heartbeatOf({ heartbeatSeconds: 7 })).toBe(7);
    expect(await heartbeatOf({ heartbeatSeconds: 0 })).toBe(0);
    expect(await heartbeatOf({ url: `${RABBITMQ_URL}?heartbeat=5`, heartbeatSeconds: 7 })).toBe(5);
    await expect(testTransport({ heartbeatSeconds: -1 })).rejects.toThrow(/heartbeatSeconds/);
  });

  it('reports unroutable messages (mandatory) instead of losing them silently: "leader" per the noReceivers policy, "all" always rejects', async () => {
    const counts = new CountingObserver();
    const bus = createBus({ transport: await testTransport(), publisher: { guarantee: 'leader' }, observer: counts });
    cleanups.push(() => bus.close());
    const topic = uniqueName('sb-rabbit.nobody');
    const receipt = await bus.publisher.publish(topic, { value: 1 });
    expect(receipt.receivers).toBe(0);
    expect(counts.count('no-receivers', topic)).toBe(1);
    const strict = createBus({ transport: await testTransport(), publisher: { guarantee: 'leader', noReceivers: 'reject' } });
    cleanups.push(() => strict.close());
    await expect(strict.publisher.publish(topic, { value: 1 })).rejects.toThrowError(/no receiver for ".*" on rabbitmq/);
    // "all" (the default): a returned message was stored nowhere, so the publish fails, even with noReceivers "ignore".
    for (const noReceivers of ['warn', 'ignore'] as const) {
      const durable = createBus({ transport: await testTransport(), publisher: { guarantee: 'all', noReceivers } });
      cleanups.push(() => durable.close());
      await expect(durable.publisher.publish(topic, { value: 1 })).rejects.toThrowError(/returned message\(s\) to ".*" as unroutable.*guarantee "all" is not met/);
    }
    // The same with the lean envelope (a generated id is still the messageId a return is matched by).
    const lean = createBus({ transport: await testTransport(), publisher: { guarantee: 'all', envelope: { id: 'given', timestamp: 'broker' } } });
    cleanups.push(() => lean.close());
    await expect(lean.publisher.publish(topic, [{ value: 1 }, { value: 2 }])).rejects.toThrowError(/returned message\(s\) to ".*" as unroutable/);
    // Once a group's queue exists, the same publish is confirmed and delivered.
    const got = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => got.add(m.id), { group: 'late' });
    const durable = createBus({ transport: await testTransport(), publisher: { guarantee: 'all' } });
    cleanups.push(() => durable.close());
    await durable.publisher.publish(topic, { id: 'stored', value: 1 });
    await got.waitFor(1, 10_000);
  });

  it('guarantee "none" publishes on a channel without confirms, "leader"/"all" on a confirm channel; the connection carries its connectionName', async () => {
    /** The confirm flag of each channel of the connection named `name`, as the broker lists them. */
    const confirmFlags = async (name: string): Promise<boolean[]> => {
      const connections = JSON.parse(await rabbitmqctl('list_connections', 'pid', 'client_properties', '--formatter', 'json')) as { pid: string; client_properties: [string, string, unknown][] }[];
      const pid = connections.find((c) => c.client_properties.some(([key, , value]) => key === 'connection_name' && value === name))?.pid;
      expect(pid, `a connection named ${name}`).toBeDefined();
      const channels = JSON.parse(await rabbitmqctl('list_channels', 'connection', 'confirm', '--formatter', 'json')) as { connection: string; confirm: boolean }[];
      return channels.filter((c) => c.connection === pid).map((c) => c.confirm);
    };
    const name = uniqueName('sb-rabbit-conn');
    const bus = createBus({ transport: await testTransport({ connectionName: name }), publisher: { guarantee: 'none', noReceivers: 'ignore' } });
    cleanups.push(() => bus.close());
    const topic = uniqueName('sb-rabbit.unconfirmed');
    const got = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => got.add(m.id), { group: 'g' });
    await bus.publisher.publish(
      topic,
      Array.from({ length: 20 }, (_, i) => ({ id: `none-${i}`, value: i })),
    );
    await got.waitFor(20, 10_000);
    // The consumer's channel and the publisher's: neither in confirm mode.
    expect(await confirmFlags(name)).toEqual([false, false]);
    await bus.transport.publish(topic, [{ id: 'all-1', headers: {}, body: Buffer.from('1'), timestamp: Date.now() }], { guarantee: 'all' });
    await got.waitFor(21, 10_000);
    expect((await confirmFlags(name)).sort()).toEqual([false, false, true]);
  });

  it('refuses a connectionName outside its bounds (empty, or over 255 characters), naming the field', async () => {
    for (const connectionName of ['', 'n'.repeat(256)]) {
      const refused = await createRabbitTransport({ url: RABBITMQ_URL, connectionName }).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(ConfigError);
      expect((refused as Error).message).toMatch(/connectionName/);
    }
  });

  it('puts only what AMQP cannot carry in headers: key and ms timestamp; the topic only where the routing key is not it', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-rabbit.lean');
    const connection = await amqplib.connect(RABBITMQ_URL);
    cleanups.push(() => connection.close());
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, 'switchboard', topic);
    await bus.publisher.publish(topic, { id: 'lean-1', key: 'k-1', headers: { app: 'yes' }, value: { n: 1 }, timestamp: 1_764_600_000_123 });
    let got: amqplib.GetMessage | false = false;
    for (let i = 0; i < 50 && !got; i++) {
      got = await channel.get(queue, { noAck: true });
      if (!got) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(got).not.toBe(false);
    const message = got as amqplib.GetMessage;
    expect(message.fields.routingKey).toBe(topic);
    expect(message.properties.messageId).toBe('lean-1');
    expect(Object.keys(message.properties.headers ?? {}).sort()).toEqual(['app', 'x-sb-key', 'x-sb-timestamp']);
    expect(Number(message.properties.headers!['x-sb-timestamp'])).toBe(1_764_600_000_123);
  });

  it('honours backpressure: a 20 MB batch waits for drain and arrives whole', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-rabbit.drain');
    const got = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => got.add(m.id), { group: 'big', concurrency: 50 });
    const blob = 'x'.repeat(10_000);
    await bus.publisher.publish(
      topic,
      Array.from({ length: 2000 }, (_, i) => ({ id: `big-${i}`, value: blob })),
    );
    expect((bus.transport as RabbitTransport).backpressureWaits).toBeGreaterThan(0);
    await got.waitFor(2000, 30_000);
    expect(new Set(got.items).size).toBe(2000);
  });

  it('fails fast with a clear error, password redacted, when the broker does not answer', async () => {
    const attempt = testTransport({ url: 'amqp://guest:s3cret@127.0.0.1:1', connectTimeoutMs: 500 });
    await expect(attempt).rejects.toThrowError(/cannot connect to RabbitMQ at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1/);
    await expect(attempt).rejects.toMatchObject({ name: 'ConnectError', code: 'SB_CONNECT' });
    await expect(attempt).rejects.not.toThrowError(/s3cret/);
  });

  it('validates options with field paths', async () => {
    const attempt = createSwitchboardContainer({ env: {}, object: { transport: { kind: 'rabbitmq', url: RABBITMQ_URL, deliveryLimit: 5, retryMode: 'later' } } });
    await expect(attempt).rejects.toThrowError(/transport\.retryMode/);
    await expect(createSwitchboardContainer({ env: {}, object: { transport: { kind: 'rabbitmq', url: RABBITMQ_URL, deliveryLimit: 5 } } })).rejects.toThrowError(
      /transport\.deliveryLimit: needs queueType "quorum"/,
    );
    const direct = await createRabbitTransport({ url: RABBITMQ_URL, deliveryLimit: 5 }).catch((error: unknown) => error);
    expect(direct).toBeInstanceOf(ConfigError);
    expect((direct as Error).message).toMatch(/deliveryLimit: needs queueType "quorum"/);
  });

  it('supports quorum queues with a delivery limit: the broker dead-letters a message redelivered past it', async () => {
    const bus = await openBus({ queueType: 'quorum', deliveryLimit: 2 });
    const topic = uniqueName('sb-rabbit.quorum');
    const got = new Recorder<Message>();
    const subscription = await bus.subscriber.subscribe(topic, (m) => got.add(m), { group: 'q' });
    await bus.publisher.publish(topic, { value: 'quorum ok' });
    expect((await got.waitFor(1, 10_000))[0]!.value).toBe('quorum ok');
    await subscription.close();
    // A consumer that keeps crashing (nack + requeue), as amqplib sees it: past the limit, the broker dead-letters.
    await bus.publisher.publish(topic, { id: 'crasher', value: 'poison' });
    const connection = await amqplib.connect(RABBITMQ_URL);
    cleanups.push(() => connection.close());
    const channel = await connection.createChannel();
    const queue = `${topic}.q`;
    let redeliveries = 0;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const message = await channel.get(queue, { noAck: false });
      if (message === false) {
        if ((await channel.checkQueue(`${queue}-dlq`)).messageCount > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      redeliveries++;
      channel.nack(message, false, true);
    }
    const dead = await channel.get(`${queue}-dlq`, { noAck: true });
    expect(dead ? dead.properties.messageId : undefined).toBe('crasher');
    expect(redeliveries).toBe(3); // the first delivery plus deliveryLimit redeliveries
  });
});

describe('rabbitmq: switchboard CLI over the transport DLQ and server-side cancels', () => {
  it('lists, replays and purges dead letters straight from the <topic>-dlq queue', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-rabbit.cli');
    const got = new Recorder<string>();
    let fixed = false;
    await bus.subscriber.subscribe(
      topic,
      (m) => {
        if (!fixed) throw new NonRetryableError('unknown product');
        got.add(m.id);
      },
      { group: 'orders' },
    );
    await bus.publisher.publish(topic, [
      { id: 'bad-1', value: 1 },
      { id: 'bad-2', value: 2 },
      { id: 'bad-3', value: 3 },
    ]);
    await bus.counts.waitFor('dead-lettered', 3);
    // The CLI uses the application's config: same queue arguments (RabbitMQ refuses a redeclare with others).
    const env = { SWITCHBOARD__TRANSPORT__KIND: 'rabbitmq', SWITCHBOARD__TRANSPORT__URL: RABBITMQ_URL, SWITCHBOARD__TRANSPORT__QUEUE_EXPIRES_MS: '600000' };
    const listed = await runCli(['--json', 'dlq', 'list', '--source', 'transport', '--dlq-topic', `${topic}-dlq`, '--idle-ms', '500'], env);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { id: string; originalTopic: string; errorName: string }[]).map((l) => [l.id, l.originalTopic, l.errorName]).sort()).toEqual([
      ['bad-1', topic, 'NonRetryableError'],
      ['bad-2', topic, 'NonRetryableError'],
      ['bad-3', topic, 'NonRetryableError'],
    ]);
    fixed = true;
    const replayed = await runCli(['--json', 'dlq', 'replay', 'bad-1', 'bad-2', '--source', 'transport', '--dlq-topic', `${topic}-dlq`, '--idle-ms', '500'], env);
    expect(replayed.code).toBe(0);
    await got.waitFor(2, 10_000);
    expect(got.items.sort()).toEqual(['bad-1', 'bad-2']);
    const purged = await runCli(['--json', 'dlq', 'purge', '--source', 'transport', '--dlq-topic', `${topic}-dlq`, '--idle-ms', '500'], env);
    expect(JSON.parse(purged.stdout)).toMatchObject({ dryRun: false, ids: ['bad-3'] });
    const empty = await runCli(['--json', 'dlq', 'list', '--source', 'transport', '--dlq-topic', `${topic}-dlq`, '--idle-ms', '500'], env);
    expect(JSON.parse(empty.stdout)).toEqual([]);
  });

  it('recovers from a server-side consumer cancel (queue deleted): consumes again by itself', async () => {
    const bus = await openBus();
    const topic = uniqueName('sb-rabbit.cancel');
    const got = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => got.add(m.id), { group: 'cancel' });
    await bus.publisher.publish(topic, { id: 'before', value: 1 });
    await got.waitFor(1, 10_000);
    await rabbitmqctl('delete_queue', `${topic}.cancel`);
    await bus.counts.waitFor('subscription-resumed', 1);
    await bus.publisher.publish(topic, { id: 'after', value: 2 });
    await got.waitFor(2, 10_000);
    expect(got.items).toEqual(['before', 'after']);
    expect(bus.counts.count('subscription-interrupted')).toBeGreaterThanOrEqual(1);
  });
});

describe('rabbitmq topology recovery: exchange, binding or queue deleted under live consumers', () => {
  /** A raw amqplib channel, as an operator's tool or another service would use. */
  async function rawChannel(): Promise<amqplib.Channel> {
    const connection = await amqplib.connect(RABBITMQ_URL);
    cleanups.push(() => connection.close().catch(() => undefined));
    return connection.createChannel();
  }

  /** A bus on its own exchange (so deleting it touches no other test), a group 'g' subscribed, one message handled. */
  async function liveSubscription(name: string, options: RabbitOptionsInput) {
    const exchange = uniqueName('sb-rabbit.topo');
    const bus = await openBus({ exchange, ...options });
    const topic = uniqueName(name);
    const got = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => got.add(m.id), { group: 'g' });
    await bus.publisher.publish(topic, { id: 'before', value: 0 });
    await got.waitFor(1, 10_000);
    return { exchange, bus, topic, got };
  }

  /**
   * Publishes one message at a time (bounded: 300 of them, 30 s) until the handler saw one of them;
   * failed publishes (the exchange gone, the message unroutable) are counted, not thrown.
   */
  async function publishUntilHandled(publish: (id: string) => Promise<unknown>, got: Recorder<string>, prefix: string) {
    const deadline = Date.now() + 30_000;
    let failed = 0;
    for (let i = 0; i < 300 && Date.now() < deadline; i++) {
      await publish(`${prefix}-${i}`).catch(() => failed++);
      if (got.items.some((id) => id.startsWith(prefix))) return { sent: i + 1, failed };
      await got.waitFor(got.count + 1, 100).catch(() => undefined);
    }
    throw new Error(`no ${prefix}-* message was handled again within 300 publishes / 30 s`);
  }

  it('exchange deleted: the first unroutable return re-declares exchange, queue and binding; interrupted, then resumed, then live', async () => {
    const { exchange, bus, topic, got } = await liveSubscription('sb-rabbit.topo-a', { topologyCheckIntervalMs: 0 }); // the unroutable return alone must repair it
    await (await rawChannel()).deleteExchange(exchange);
    const { sent, failed } = await publishUntilHandled((id) => bus.publisher.publish(topic, { id, value: 1 }), got, 'gap');
    await bus.counts.waitFor('subscription-resumed', 1);
    expect(bus.counts.count('subscription-interrupted')).toBeGreaterThanOrEqual(1);
    // After the repair nothing more is lost: 100 of 100 handled.
    await bus.publisher.publish(
      topic,
      Array.from({ length: 100 }, (_, i) => ({ id: `after-${i}`, value: i })),
    );
    await eventuallyHandled(got, 'after-', 100);
    expect(bus.health().subscriptions).toEqual([{ topic, group: 'g', state: 'live' }]);
    console.log(`[measure] rabbitmq exchange deleted: ${sent} publishes until handled again, ${failed} of them failed (exchange gone or unroutable)`);
  });

  it('exchange deleted and re-declared by another service (bindings gone): the periodic check binds the queue again', async () => {
    const { exchange, bus, topic, got } = await liveSubscription('sb-rabbit.topo-b', { topologyCheckIntervalMs: 500 });
    const raw = await rawChannel();
    await raw.deleteExchange(exchange);
    await raw.assertExchange(exchange, 'topic', { durable: true }); // as another service's publisher does
    const { sent } = await publishUntilHandled(async (id) => raw.publish(exchange, topic, Buffer.from('1'), { messageId: id, persistent: true }), got, 'raw');
    expect(sent).toBeGreaterThan(0);
    expect(bus.health().subscriptions).toEqual([{ topic, group: 'g', state: 'live' }]);
  });

  it('exchange and queue deleted while a publisher keeps sending: the consumer comes back and handles again', async () => {
    const { exchange, bus, topic, got } = await liveSubscription('sb-rabbit.topo-c', {});
    const raw = await rawChannel();
    await raw.deleteExchange(exchange);
    await raw.deleteQueue(`${topic}.g`);
    await publishUntilHandled((id) => bus.publisher.publish(topic, { id, value: 1 }), got, 'gap');
    await bus.counts.waitFor('subscription-resumed', 1);
    await bus.publisher.publish(
      topic,
      Array.from({ length: 100 }, (_, i) => ({ id: `after-${i}`, value: i })),
    );
    await eventuallyHandled(got, 'after-', 100);
    expect(bus.health().subscriptions).toEqual([{ topic, group: 'g', state: 'live' }]);
  });
});

/** Waits (bounded, 15 s) until `count` distinct ids starting with `prefix` were handled. */
async function eventuallyHandled(got: Recorder<string>, prefix: string, count: number): Promise<void> {
  const distinct = () => new Set(got.items.filter((id) => id.startsWith(prefix))).size;
  const deadline = Date.now() + 15_000;
  while (distinct() < count && Date.now() < deadline) await got.waitFor(got.count + 1, 1000).catch(() => undefined);
  expect(distinct()).toBe(count);
}
