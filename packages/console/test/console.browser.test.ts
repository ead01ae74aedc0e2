/**
 * The DLQ console end to end, in a real Chromium, on real dead letters in Kafka, RabbitMQ and Redis:
 * sign in, find the fingerprint group, replay it, see the messages handled and the audit rows written.
 */
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bus, failureFingerprint, type Transport } from '@switchboard/core';
import { eventually, type Recorder, uniqueName, waitUntil } from '@switchboard/core/testing';
import { createKafkaTransport } from '@switchboard/kafka';
import { PostgresConsoleStore, PostgresParkingLot } from '@switchboard/postgres';
import { dropTestTables, uniqueTableName } from '@switchboard/postgres/testing';
import { createRabbitTransport } from '@switchboard/rabbitmq';
import { createRedisPubSubTransport } from '@switchboard/redis-pubsub';
import { DeadLetterConsole, serveConsole } from '@switchboard/console';
import { ARTEFACTS, failingSubscription, launchBrowser, noBrowser, notFound, signIn, TOKEN, textNow } from './helpers.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const PER_TRANSPORT = 6; // n = 1..6: n = 3, 6 fail with a TypeError, the other four are "not found"

interface Side {
  name: string;
  transport: Transport;
  bus: Bus;
  handled: Recorder<string>;
  values: Map<string, unknown>;
  state: { failing: boolean };
  topic: string;
}

describe.skipIf(noBrowser)(`DLQ console in Chromium on Kafka, RabbitMQ and Redis${noBrowser ? ` (skipped: ${noBrowser})` : ''}`, () => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
  const prefix = uniqueTableName('sb_console');
  const sides: Side[] = [];
  let browser: Browser;
  let console_: DeadLetterConsole;
  let served: Awaited<ReturnType<typeof serveConsole>>;

  beforeAll(async () => {
    const transports: Array<[string, () => Promise<Transport>]> = [
      ['kafka', () => createKafkaTransport({ brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',') })],
      ['rabbitmq', () => createRabbitTransport({ url: process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672' })],
      ['redis', () => createRedisPubSubTransport({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' })],
    ];
    for (const [name, create] of transports) {
      const transport = await create();
      const topic = uniqueName(`console-${name}`);
      sides.push({ name, transport, topic, ...(await failingSubscription(transport, topic)) });
    }
    for (const side of sides) {
      for (let n = 1; n <= PER_TRANSPORT; n++) await side.bus.publisher.publish(side.topic, { id: `${side.name}-${n}`, key: `k${n}`, value: { n } });
    }
    const store = await PostgresConsoleStore.open(pool, prefix);
    const parkingLot = await PostgresParkingLot.open(pool, uniqueTableName('sb_console_parked'));
    console_ = new DeadLetterConsole({
      sources: sides.map((s) => ({ name: s.name, transport: s.transport, publisher: s.bus.publisher, deadLetterTopics: [`${s.topic}-dlq`] })),
      tokens: { alice: TOKEN },
      store,
      parkingLot,
      scanIntervalMs: 0,
    });
    // Every message dead-lettered on every transport before the console is opened.
    await eventually(
      async () => {
        await console_.rescan();
        const depths = console_.inventory.queueViews().filter((q) => q.source !== 'parking');
        return depths.length === 3 && depths.every((q) => q.depth === PER_TRANSPORT) ? depths : undefined;
      },
      90_000,
      `${PER_TRANSPORT} dead letters in each of the three DLQs`,
    );
    for (const side of sides) side.state.failing = false; // the bug is fixed: replays succeed
    await console_.start();
    served = await serveConsole(console_);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await served?.close();
    await console_?.close();
    for (const side of sides) await side.bus.close();
    await pool.query(`DROP TABLE IF EXISTS ${prefix}_audit, ${prefix}_items, ${prefix}_jobs`);
    await dropTestTables(pool);
    await pool.end();
  });

  it('finds the fingerprint group across the three brokers, replays it to the failing group, and audits each letter', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await signIn(page, served.url, TOKEN);
    const fingerprint = failureFingerprint({ reason: 'non-retryable', errorName: 'NonRetryableError', errorMessage: notFound(1).message });
    const row = page.locator(`tr[data-fingerprint="${fingerprint}"]`);
    expect(await textNow(page, `tr[data-fingerprint="${fingerprint}"] td.num`)).toBe('12'); // 4 letters × 3 brokers
    expect(await page.locator('[data-testid=depth]').allTextContents()).toEqual([String(PER_TRANSPORT), '0', String(PER_TRANSPORT), String(PER_TRANSPORT)]); // kafka, parking lot, rabbitmq, redis
    await page.screenshot({ path: join(ARTEFACTS, 'overview.png'), fullPage: true });

    await row.locator('a').click();
    expect(await textNow(page, 'h1')).toBe(`Fingerprint ${fingerprint}`);
    await page.screenshot({ path: join(ARTEFACTS, 'group.png'), fullPage: true });
    await Promise.all([page.waitForURL(/\/jobs\/\d+$/), page.click('[data-testid=replay-group]')]);
    const jobId = page.url().split('/').at(-1)!;
    // The job page reloads itself every second while the job runs.
    await expect.poll(() => textNow(page, '[data-testid=job-state]'), { timeout: 90_000, interval: 250 }).toBe('done');
    expect(await textNow(page, '[data-testid=progress]')).toBe('12 / 12');
    await page.screenshot({ path: join(ARTEFACTS, 'job.png'), fullPage: true });

    // Handled through the bus, on each broker, by the group that failed them.
    for (const side of sides) {
      const replayed = [1, 2, 4, 5].map((n) => `${side.name}-${n}`);
      await waitUntil(() => replayed.every((id) => side.handled.items.includes(id)), 60_000, `${side.name}: the replayed letters handled`);
      expect(side.handled.items.filter((id) => !replayed.includes(id))).toEqual([]); // the TypeError ones stay dead
    }
    // One audit row per letter, by the signed-in operator, plus the job's own rows.
    const { rows } = await pool.query<{ action: string; actor: string; n: string }>(
      `SELECT action, actor, count(*) AS n FROM ${prefix}_audit WHERE job_id = $1 GROUP BY action, actor ORDER BY action`,
      [jobId],
    );
    expect(rows).toEqual([
      { action: 'job-created', actor: 'alice', n: '1' },
      { action: 'job-done', actor: 'alice', n: '1' },
      { action: 'replay', actor: 'alice', n: '12' },
    ]);

    // What is left: the TypeError letters, two per broker (Kafka's replayed records stay in the log, hidden as handled).
    await console_.rescan();
    expect(
      console_.inventory
        .queueViews()
        .filter((q) => q.source !== 'parking')
        .map((q) => [q.source, q.depth]),
    ).toEqual([
      ['kafka', 2],
      ['rabbitmq', 2],
      ['redis', 2],
    ]);
    await page.goto(`${served.url}/`);
    expect(await page.locator(`tr[data-fingerprint="${fingerprint}"]`).count()).toBe(0);
    await page.screenshot({ path: join(ARTEFACTS, 'overview-after.png'), fullPage: true });
    if (process.env.SWITCHBOARD_CONSOLE_README_SHOT) await copyFile(join(ARTEFACTS, 'overview.png'), process.env.SWITCHBOARD_CONSOLE_README_SHOT);
    expect(dialogs).toEqual([]);
    await page.close();
  });

  it('parks one letter, discards one with a reason, edits one and replays it, each audited', async () => {
    const page = await browser.newPage();
    await signIn(page, served.url, TOKEN);
    const typeErrors = console_.inventory.allLetters().filter((l) => l.errorName === 'TypeError' && l.source !== 'parking');
    expect(typeErrors).toHaveLength(6);
    const [toPark, toDiscard] = [typeErrors.find((l) => l.source === 'rabbitmq')!, typeErrors.find((l) => l.source === 'kafka')!];

    await page.goto(`${served.url}/letters/${toPark.letterKey}`);
    expect(await textNow(page, '[data-testid=payload]')).toContain('"n": 3');
    await Promise.all([page.waitForURL(/\/jobs\/\d+$/), page.click('button[value=park]')]);
    await expect.poll(() => textNow(page, '[data-testid=job-state]'), { timeout: 60_000, interval: 250 }).toBe('done');

    await page.goto(`${served.url}/letters/${toDiscard.letterKey}`);
    await page.fill('fieldset.actions input[name=reason]', 'street data fixed upstream, order cancelled');
    await Promise.all([page.waitForURL(/\/jobs\/\d+$/), page.click('button[value=discard]')]);
    await expect.poll(() => textNow(page, '[data-testid=job-state]'), { timeout: 60_000, interval: 250 }).toBe('done');

    // Edit and replay: the operator fixes the payload; the handler gets the edited one.
    const toEdit = typeErrors.find((l) => l.source === 'redis')!;
    await page.goto(`${served.url}/letters/${toEdit.letterKey}`);
    await page.fill('textarea[name=payload]', JSON.stringify({ n: 300, fixed: true }));
    await Promise.all([page.waitForURL(/\/jobs\/\d+$/), page.click('button:has-text("Replay with this payload")')]);
    await expect.poll(() => textNow(page, '[data-testid=job-state]'), { timeout: 60_000, interval: 250 }).toBe('done');
    const redis = sides.find((side) => side.name === 'redis')!;
    await waitUntil(() => redis.handled.items.includes(toEdit.id), 30_000, 'the edited letter handled');
    expect(redis.values.get(toEdit.id)).toEqual({ n: 300, fixed: true });

    await console_.rescan();
    const parked = console_.inventory.allLetters().filter((l) => l.source === 'parking');
    expect(parked.map((l) => l.id)).toEqual([toPark.id]);
    expect(console_.inventory.letter(toDiscard.letterKey)).toBeUndefined();
    const { rows } = await pool.query<{ action: string; detail: string }>(`SELECT action, detail FROM ${prefix}_audit WHERE action IN ('park', 'discard') ORDER BY seq`);
    expect(rows.map((r) => r.action)).toEqual(['park', 'discard']);
    expect(rows[1]!.detail).toBe('discarded: street data fixed upstream, order cancelled');
    const edited = await pool.query<{ detail: string }>(`SELECT detail FROM ${prefix}_audit WHERE message_id = $1 AND action = 'replay'`, [toEdit.id]);
    expect(edited.rows.map((r) => r.detail)).toEqual([expect.stringMatching(/^replayed to console-redis\.\w+ \(payload edited, sha256 [0-9a-f]{16}\)$/)]);
    await page.close();
  });
});
