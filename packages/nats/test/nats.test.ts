import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, CountingObserver, DeadLetterHeaders, createBus, registerTransport, type Bus, type Message } from '@switchboard/core';
import { Recorder, recordLines, uniqueName, waitUntil } from '@switchboard/core/testing';
import { createSwitchboardContainer } from '@switchboard/inversify';
import { createNatsTransport, durableName, filterOf, natsTransport, type NatsOptionsInput } from '@switchboard/nats';
import { NATS_URL, startOwnNats, startProxy, testTransport } from './helpers.js';

registerTransport(natsTransport);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function openBus(options: NatsOptionsInput = {}): Promise<Bus & { counts: CountingObserver }> {
  const counts = new CountingObserver();
  const bus = createBus({ transport: await testTransport(options), observer: counts });
  cleanups.push(() => bus.close());
  return Object.assign(bus, { counts });
}

async function admin(url = NATS_URL) {
  const nc = await connect({ servers: url });
  cleanups.push(() => nc.close());
  return { nc, js: jetstream(nc), jsm: await jetstreamManager(nc) };
}

describe('nats jetstream semantics', () => {
  it('competing members of a group share the messages (each once); another group gets every message', async () => {
    const topic = uniqueName('sb-nats.compete');
    const [one, two, other] = [await openBus({ prefetch: 2 }), await openBus({ prefetch: 2 }), await openBus()];
    const byMember = { one: new Recorder<string>(), two: new Recorder<string>() };
    const slow = (recorder: Recorder<string>) => async (m: Message) => {
      recorder.add(m.id);
      await new Promise((resolve) => setTimeout(resolve, 10));
    };
    await one.subscriber.subscribe(topic, slow(byMember.one), { group: 'g', concurrency: 2, ordering: 'none' });
    await two.subscriber.subscribe(topic, slow(byMember.two), { group: 'g', concurrency: 2, ordering: 'none' });
    const audit = new Recorder<string>();
    await other.subscriber.subscribe(topic, (m) => audit.add(m.id), { group: 'audit' });
    const ids = Array.from({ length: 40 }, (_, i) => `m-${i}`);
    await one.publisher.publish(
      topic,
      ids.map((id) => ({ id, value: id })),
    );
    await audit.waitFor(40, 10_000);
    await waitUntil(() => byMember.one.count + byMember.two.count >= 40, 10_000, 'the group to handle 40 messages');
    expect([...byMember.one.items, ...byMember.two.items].sort()).toEqual([...ids].sort());
    expect(byMember.one.count).toBeGreaterThan(0);
    expect(byMember.two.count).toBeGreaterThan(0);
    expect([...audit.items].sort()).toEqual([...ids].sort());
  });

  it('a group keeps its position while no member runs; a new group starts at the first stored message (earliest) or at new ones (latest)', async () => {
    const topic = uniqueName('sb-nats.durable');
    const bus = await openBus();
    const before = new Recorder<string>();
    const sub = await bus.subscriber.subscribe(topic, (m) => before.add(m.value as string), { group: 'orders' });
    await bus.publisher.publish(topic, { value: 'a' });
    await before.waitFor(1, 5000);
    await sub.close();
    await bus.publisher.publish(topic, [{ value: 'b' }, { value: 'c' }]);
    const after = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => after.add(m.value as string), { group: 'orders' });
    const history = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => history.add(m.value as string), { group: 'late', startFrom: 'earliest' });
    const fresh = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => fresh.add(m.value as string), { group: 'fresh', startFrom: 'latest' });
    await bus.publisher.publish(topic, { value: 'd' });
    await after.waitFor(3, 5000);
    await history.waitFor(4, 5000);
    await fresh.waitFor(1, 5000);
    expect(after.items).toEqual(['b', 'c', 'd']);
    expect(history.items).toEqual(['a', 'b', 'c', 'd']);
    expect(fresh.items).toEqual(['d']);
  });

  it('stores a message published twice with the same id once (Nats-Msg-Id within the duplicate window)', async () => {
    const topic = uniqueName('sb-nats.dedup');
    const bus = await openBus();
    const received = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => received.add(`${m.id}:${m.value}`), { group: 'g' });
    await bus.publisher.publish(topic, { id: 'order-1', value: 'first' });
    await bus.publisher.publish(topic, { id: 'order-1', value: 'producer retry' });
    await bus.publisher.publish(topic, { id: 'order-2', value: 'next' });
    await received.waitFor(2, 5000);
    await bus.publisher.publish(topic, { id: 'order-3', value: 'sentinel' });
    await received.waitFor(3, 5000);
    expect(received.items).toEqual(['order-1:first', 'order-2:next', 'order-3:sentinel']);
  });

  it('ordering "none": a retry is the server\'s redelivery after the delay (nak), its attempt the server\'s delivery count', async () => {
    const topic = uniqueName('sb-nats.nak');
    const bus = await openBus();
    const calls: { attempt: number; at: number }[] = [];
    const done = new Recorder<number>();
    await bus.subscriber.subscribe(
      topic,
      (m) => {
        calls.push({ attempt: m.attempt, at: Date.now() });
        if (m.attempt < 3) throw new Error('database down');
        done.add(m.attempt);
      },
      { group: 'g', ordering: 'none', retry: { maxAttempts: 3, initialIntervalMs: 300, multiplier: 1, maxIntervalMs: 300 } },
    );
    await bus.publisher.publish(topic, { id: 'r-1', value: 1, headers: { 'x-sb-attempt': '3' } });
    await done.waitFor(1, 10_000);
    expect(calls.map((c) => c.attempt)).toEqual([1, 2, 3]);
    expect(calls[1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(300 - 15);
    expect(bus.health().subscriptions[0]?.buffered ?? 0).toBe(0);
  });

  it('ordering "key": one member keeps per-key order with concurrent handlers, a failing key holding only itself', async () => {
    const topic = uniqueName('sb-nats.order');
    const bus = await openBus();
    const seen = new Map<string, number[]>();
    let failedOnce = false;
    await bus.subscriber.subscribe(
      topic,
      async (m: Message) => {
        const { key, seq } = m.value as { key: string; seq: number };
        if (key === 'k-0' && seq === 3 && !failedOnce) {
          failedOnce = true;
          throw new Error('database down');
        }
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
        seen.set(key, [...(seen.get(key) ?? []), seq]);
      },
      { group: 'g', concurrency: 8, ordering: 'key', retry: { maxAttempts: 3, initialIntervalMs: 200, multiplier: 1, maxIntervalMs: 200 } },
    );
    const messages = [];
    for (let seq = 0; seq < 20; seq++) for (let k = 0; k < 10; k++) messages.push({ key: `k-${k}`, value: { key: `k-${k}`, seq } });
    await bus.publisher.publish(topic, messages);
    await waitUntil(() => [...seen.values()].reduce((n, s) => n + s.length, 0) >= 200, 15_000, '200 handled');
    const inOrder = Array.from({ length: 20 }, (_, i) => i);
    for (let k = 0; k < 10; k++) expect(seen.get(`k-${k}`)).toEqual(inOrder);
    expect(bus.counts.count('retry-attempt')).toBe(1);
  });

  it('a trailing "#" pattern matches its bare prefix and any depth (the filter widens to ">", the client keeps what the core pattern matches)', async () => {
    const base = uniqueName('sb-nats-hash');
    expect(filterOf('sbtest', 'orders.#', true)).toBe('sbtest.>');
    expect(filterOf('sbtest', 'orders.*.x.#', true)).toBe('sbtest.orders.*.>');
    expect(filterOf('sbtest', 'orders.#.x', true)).toBe('sbtest.orders.>');
    expect(filterOf('sbtest', '#', true)).toBe('sbtest.>');
    expect(filterOf('sbtest', 'orders.*.created', true)).toBe('sbtest.orders.*.created');
    const bus = await openBus();
    const received = new Recorder<string>();
    await bus.subscriber.subscribe(`${base}.#`, (m) => received.add(m.id), { group: 'g', pattern: true });
    for (const [id, topic] of [
      ['bare', base],
      ['one', `${base}.eu`],
      ['deep', `${base}.eu.west.created`],
      ['other', `${base}-other.eu`],
    ] as const)
      await bus.publisher.publish(topic, { id, value: id });
    await received.waitFor(3, 5000);
    await bus.publisher.publish(`${base}.sentinel`, { id: 'sentinel', value: 1 });
    await received.waitFor(4, 5000);
    expect(received.items).toEqual(['bare', 'one', 'deep', 'sentinel']);
  });

  it('dead-letters a message whose consumers kept crashing (server delivery count above maxAttempts) without calling the handler', async () => {
    const topic = uniqueName('sb-nats.crashloop');
    const { js, jsm } = await admin();
    const filter = filterOf('sbtest', topic, false);
    const durable = durableName('g', filter);
    await (await testTransport()).close(); // makes sure the test stream exists
    await jsm.consumers.add('SB_TEST', { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: filter, ack_wait: nanos(500), max_deliver: -1 });
    const bus = await openBus();
    await bus.publisher.publish(topic, { id: 'crash-loop', value: 1 });
    // Three members fetched it and died before acknowledging: the server counts three deliveries.
    const consumer = await js.consumers.get('SB_TEST', durable);
    for (let delivered = 0; delivered < 3; ) {
      const batch = await consumer.fetch({ max_messages: 1, expires: 2000 });
      for await (const m of batch) delivered = m.info.deliveryCount;
    }
    const letters = new Recorder<Message>();
    await bus.subscriber.subscribe(`${topic}-dlq`, (m) => letters.add(m), { group: 'dlq-reader', startFrom: 'earliest', deadLetter: false });
    const calls = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => calls.add(m.id), { group: 'g', retry: { maxAttempts: 3 } });
    const [letter] = await letters.waitFor(1, 10_000);
    expect(letter!.id).toBe('crash-loop');
    expect(letter!.headers[DeadLetterHeaders.reason]).toBe('retries-exhausted');
    expect(letter!.headers[DeadLetterHeaders.attempts]).toBe('4');
    expect(calls.count).toBe(0);
  });

  it('health(): lag is what the group has not settled (consumer info: not delivered + not acknowledged), 0 once all is handled', async () => {
    const topic = uniqueName('sb-nats.lag');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const bus = await openBus({ prefetch: 4, lagIntervalMs: 100 });
    cleanups.push(async () => release()); // before the bus closes: a failed wait does not leave the handler blocked
    const handled = new Recorder<string>();
    await bus.subscriber.subscribe(
      topic,
      async (m) => {
        await gate;
        handled.add(m.id);
      },
      { group: 'g', concurrency: 1 },
    );
    await bus.publisher.publish(
      topic,
      Array.from({ length: 30 }, (_, i) => ({ id: `l-${i}`, value: i })),
    );
    await waitUntil(() => bus.health().subscriptions[0]?.lag === 30, 5000, 'lag 30 while the handler is held').catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(bus.health().subscriptions)}`);
    });
    release();
    await handled.waitFor(30, 10_000);
    await waitUntil(() => bus.health().subscriptions[0]?.lag === 0, 5000, 'lag 0 once all is handled');
  });

  it('acknowledges a backlog in a few socket writes, not one per message, and every ack reaches the server (lag 0)', async () => {
    const topic = uniqueName('sb-nats.acks');
    const publisher = await openBus();
    await publisher.publisher.publish(
      topic,
      Array.from({ length: 500 }, (_, i) => ({ id: `a-${i}`, key: `k-${i % 5}`, value: i })),
    );
    // Socket writes to the server from this process while the backlog is read and acknowledged
    // (the publisher above is done; the reader's fetches, acks and lag requests are what is left).
    const port = Number(new URL(NATS_URL).port || 4222);
    let writes = 0;
    const write = Socket.prototype.write;
    Socket.prototype.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
      if (this.remotePort === port) writes++;
      return write.apply(this, args);
    } as Socket['write'];
    cleanups.push(async () => void (Socket.prototype.write = write));
    const reader = await openBus();
    const handled = new Recorder<string>();
    await reader.subscriber.subscribe(topic, (m) => handled.add(m.id), { group: 'g', startFrom: 'earliest', concurrency: 1 });
    await handled.waitFor(500, 20_000);
    await waitUntil(() => reader.health().subscriptions[0]?.lag === 0, 10_000, 'lag 0: every ack reached the server');
    Socket.prototype.write = write;
    // One write per ack was 500 and more; the acks of one event-loop turn now share a write.
    expect(writes).toBeLessThan(125);
    expect(new Set(handled.items).size).toBe(500);
  });

  it('carries headers NATS cannot (line breaks, edge spaces, ":" in a name) and keys of any text unchanged', async () => {
    const topic = uniqueName('sb-nats.headers');
    const bus = await openBus();
    const received = new Recorder<Message>();
    await bus.subscriber.subscribe(topic, (m) => received.add(m), { group: 'g' });
    const headers = { plain: 'v', multi: 'line 1\nline 2\r\n', ' padded': ' x ', 'a:b': 'colon', unicode: 'héllo ✓' };
    await bus.publisher.publish(topic, { id: 'h-1', key: ' key\nwith break ', headers, value: 1 });
    const [m] = await received.waitFor(1, 5000);
    expect(m!.key).toBe(' key\nwith break ');
    expect(m!.headers).toMatchObject(headers);
  });
});

describe('nats jetstream crashes and outages', () => {
  it('a member killed mid-run (SIGKILL): its unacknowledged messages come again after ackWaitMs to the survivor; nothing lost, duplicates at most what it held', async () => {
    const topic = uniqueName('sb-nats.kill');
    const group = 'crash';
    const bus = await openBus({ ackWaitMs: 2000 });
    const total = 300;
    await bus.publisher.publish(
      topic,
      Array.from({ length: total }, (_, i) => ({ id: `c-${i}`, value: i })),
    );
    const script = fileURLToPath(new URL('./fixtures/member-until-killed.mjs', import.meta.url));
    const child = spawn(process.execPath, [script, topic, group, NATS_URL], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    cleanups.push(async () => void (child.exitCode === null && child.kill('SIGKILL')));
    const beforeKill = recordLines(child.stdout, ['READY']);
    await beforeKill.waitFor(60, 30_000);
    child.kill('SIGKILL');
    await exited;
    const survivor = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => survivor.add(m.id), { group, concurrency: 4, ordering: 'none' });
    await waitUntil(() => new Set([...beforeKill.items, ...survivor.items]).size >= total, 30_000, 'every message handled by someone');
    const seen = new Set([...beforeKill.items, ...survivor.items]);
    const duplicates = beforeKill.items.filter((id) => survivor.items.includes(id)).length;
    console.log(
      `[measure] nats SIGKILL of a member (prefetch 8): handled before kill ${beforeKill.count}, by the survivor ${survivor.count}, distinct ${seen.size}/${total}, duplicates ${duplicates}`,
    );
    expect(Array.from({ length: total }, (_, i) => `c-${i}`).filter((id) => !seen.has(id))).toEqual([]);
    expect(duplicates).toBeLessThanOrEqual(8);
    expect(new Set(survivor.items).size).toBe(survivor.count);
  }, 90_000);

  it('server restart mid-run (own server, file storage): acknowledged publishes fail fast while it is down, reading resumes, nothing is lost', async () => {
    const server = await startOwnNats();
    cleanups.push(() => server.dispose());
    const topic = uniqueName('sb-nats.outage');
    const bus = await openBus({ servers: server.url, ackWaitMs: 2000 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const handled = new Recorder<string>();
    const entered = new Recorder<string>();
    await bus.subscriber.subscribe(
      topic,
      async (m) => {
        entered.add(m.id);
        if (m.id === 'e-0') await gate;
        handled.add(m.id);
      },
      { group: 'g' },
    );
    await bus.publisher.publish(
      topic,
      Array.from({ length: 20 }, (_, i) => ({ id: `e-${i}`, value: i })),
    );
    await entered.waitFor(1, 5000);
    await server.stop();
    await bus.counts.waitFor('subscription-interrupted', 1);
    const startedAt = Date.now();
    await expect(bus.publisher.publish(topic, { id: 'during', value: 'refused' })).rejects.toThrowError(/not connected/);
    const failFastMs = Date.now() - startedAt;
    release();
    await server.start();
    await bus.counts.waitFor('subscription-resumed', 1);
    await bus.publisher.publish(topic, { id: 'after', value: 'after' });
    const expected = [...Array.from({ length: 20 }, (_, i) => `e-${i}`), 'after'];
    await waitUntil(() => expected.every((id) => handled.items.includes(id)), 30_000, 'every message handled');
    const duplicates = handled.count - new Set(handled.items).size;
    console.log(
      `[measure] nats server restart: acknowledged publish while down rejected in ${failFastMs} ms; handled ${handled.count}, distinct ${new Set(handled.items).size}/21, duplicates ${duplicates}`,
    );
    expect(failFastMs).toBeLessThan(1000);
    expect(handled.items).not.toContain('during');
  }, 90_000);

  it('connection killed (proxy cut, server up): the client reconnects, the subscription reports the gap and later messages flow', async () => {
    const proxy = await startProxy(new URL(NATS_URL));
    cleanups.push(() => proxy.close());
    const topic = uniqueName('sb-nats.cut');
    const bus = await openBus({ servers: proxy.url });
    const received = new Recorder<string>();
    await bus.subscriber.subscribe(topic, (m) => received.add(m.value as string), { group: 'g' });
    await bus.publisher.publish(topic, { value: 'before' });
    await received.waitFor(1, 5000);
    expect(proxy.cut()).toBeGreaterThanOrEqual(2);
    await bus.counts.waitFor('subscription-interrupted', 1);
    await bus.counts.waitFor('subscription-resumed', 1);
    await waitUntil(() => bus.health().connections.every((c) => c.state === 'up'), 10_000, 'the connection up again');
    await bus.publisher.publish(topic, { value: 'after' });
    await received.waitFor(2, 10_000);
    expect(received.items).toEqual(['before', 'after']);
  }, 60_000);

  it('fails fast with a clear error, password redacted, when the server does not answer', async () => {
    const attempt = createNatsTransport({ servers: 'nats://user:s3cret@127.0.0.1:1', connectTimeoutMs: 500 });
    await expect(attempt).rejects.toThrowError(/cannot connect to NATS at nats:\/\/user:\*+@127\.0\.0\.1:1/);
    await expect(attempt).rejects.not.toThrowError(/s3cret/);
  });
});

describe('nats config validation', () => {
  it('refuses a missing stream with createStream false, and a stream that does not capture the prefix, naming the field', async () => {
    const missing = await createNatsTransport({ servers: NATS_URL, stream: 'SB_DOES_NOT_EXIST', createStream: false }).catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as Error).message).toMatch(/transport\.stream: stream "SB_DOES_NOT_EXIST" does not exist/);
    await (await testTransport()).close();
    const other = await createNatsTransport({ servers: NATS_URL, stream: 'SB_TEST', subjectPrefix: 'elsewhere' }).catch((error: unknown) => error);
    expect(other).toBeInstanceOf(ConfigError);
    expect((other as Error).message).toMatch(/transport\.subjectPrefix: stream "SB_TEST" captures \["sbtest\.>"\]/);
  });

  it('retention "interest": a created stream deletes a message once every group acknowledged it', async () => {
    const { jsm } = await admin();
    const options = { stream: 'SB_TEST_INTEREST', subjectPrefix: 'sbinterest', retention: 'interest' as const };
    cleanups.push(async () => void (await jsm.streams.delete('SB_TEST_INTEREST').catch(() => undefined))); // after the bus closed
    const bus = await openBus(options);
    expect((await jsm.streams.info('SB_TEST_INTEREST')).config.retention).toBe('interest');
    const topic = uniqueName('sb-nats.interest');
    const [a, b] = [new Recorder<string>(), new Recorder<string>()];
    await bus.subscriber.subscribe(topic, (m) => a.add(m.id), { group: 'a' });
    await bus.subscriber.subscribe(topic, (m) => b.add(m.id), { group: 'b' });
    await bus.publisher.publish(topic, [{ value: 1 }, { value: 2 }, { value: 3 }]);
    await a.waitFor(3, 5000);
    await b.waitFor(3, 5000);
    let stored = -1;
    const deadline = Date.now() + 10_000;
    while (stored !== 0 && Date.now() < deadline) {
      stored = (await jsm.streams.info('SB_TEST_INTEREST')).state.messages;
      if (stored !== 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(stored).toBe(0);
  });

  it('names a bad option, and connects from config alone (transport.kind is the only change)', async () => {
    await expect(createSwitchboardContainer({ env: {}, object: { transport: { kind: 'nats', servers: NATS_URL, ackWaitMs: 5 } } })).rejects.toThrowError(/transport\.ackWaitMs/);
    const { bus } = await createSwitchboardContainer({ env: {}, object: { transport: { kind: 'nats', servers: NATS_URL, stream: 'SB_TEST', subjectPrefix: 'sbtest' } } });
    cleanups.push(() => bus.close());
    expect(bus.transport.kind).toBe('nats');
  });
});
