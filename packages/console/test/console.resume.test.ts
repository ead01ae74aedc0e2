/**
 * A replay interrupted halfway (the console's process SIGKILLed) loses nothing: the job's letters are
 * in PostgreSQL, and the next `switchboard console` resumes it. RabbitMQ: replayed letters are
 * consumed from the DLQ queue, so the queue ends empty.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { failureFingerprint, walkTransportDeadLetters } from '@switchboard/core';
import { eventually, uniqueName, waitUntil } from '@switchboard/core/testing';
import { CLI_PATH } from '@switchboard/cli/testing';
import { PostgresConsoleStore } from '@switchboard/postgres';
import { createRabbitTransport } from '@switchboard/rabbitmq';
import { failingSubscription, notFound, TOKEN } from './helpers.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const LETTERS = 30;

/** Starts `switchboard console` and resolves with its URL once it listens. */
function startConsole(configFile: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [CLI_PATH, 'console', '--bus', configFile, '--port', '0', '--scan-interval-ms', '0'], {
    env: { ...process.env, DATABASE_URL, SWITCHBOARD_CONSOLE_TOKEN: TOKEN },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`switchboard console did not start in 60 s:\n${output}`)), 60_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const url = /switchboard console: (http:\/\/[\d.:]+)/.exec(output)?.[1];
      if (url) {
        clearTimeout(timer);
        resolve({ child, url });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`switchboard console exited with ${code}:\n${output}`));
    });
  });
}

describe('DLQ console: a replay interrupted by SIGKILL resumes and loses nothing (RabbitMQ, PostgreSQL store)', () => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await pool.end();
  });

  it(`replays ${LETTERS} letters at 5/s, is killed after 8, and the restarted console finishes the job`, async () => {
    const transport = await createRabbitTransport({ url: RABBITMQ_URL });
    const topic = uniqueName('console-resume');
    const { bus, handled, state } = await failingSubscription(transport, topic);
    const numbers = Array.from({ length: LETTERS * 2 }, (_, i) => i + 1)
      .filter((n) => n % 3 !== 0)
      .slice(0, LETTERS); // all fail with "not found": one fingerprint
    for (const n of numbers) await bus.publisher.publish(topic, { id: `resume-${n}`, value: { n } });
    const dlq = `${topic}-dlq`;
    const browse = () => walkTransportDeadLetters(transport, dlq, { filter: {}, ids: [], limit: 1000, idleMs: 1500, mode: 'browse' });
    await eventually(async () => ((await browse()).length === LETTERS ? true : undefined), 30_000, `${LETTERS} dead letters`);
    state.failing = false;

    const dir = await mkdtemp(join(tmpdir(), 'sb-console-'));
    const configFile = join(dir, 'rabbit.json');
    await writeFile(configFile, JSON.stringify({ transport: { kind: 'rabbitmq', url: RABBITMQ_URL }, subscriptions: { orders: { topic, group: 'billing' } } }));
    const first = await startConsole(configFile);
    children.push(first.child);
    const fingerprint = failureFingerprint({ reason: 'non-retryable', errorName: 'NonRetryableError', errorMessage: notFound(1).message });
    const started = await fetch(`${first.url}/actions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ action: 'replay', fingerprint, rate: '5' }).toString(),
      redirect: 'manual',
    });
    expect(started.status).toBe(303);
    const jobId = /\/jobs\/(\d+)$/.exec(started.headers.get('location')!)![1]!;

    const store = new PostgresConsoleStore(pool);
    await eventually(async () => ((await store.job(jobId))!.applied >= 8 ? true : undefined), 30_000, 'eight letters replayed');
    first.child.kill('SIGKILL');
    await new Promise((resolve) => first.child.once('exit', resolve));
    const interrupted = (await store.job(jobId))!;
    expect(interrupted.state).toBe('running');
    expect(interrupted.applied).toBeGreaterThanOrEqual(8);
    expect(interrupted.applied).toBeLessThan(LETTERS);

    const second = await startConsole(configFile);
    children.push(second.child);
    await eventually(async () => ((await store.job(jobId))!.state === 'done' ? true : undefined), 60_000, 'the resumed job done');
    const finished = (await store.job(jobId))!;
    expect(finished).toMatchObject({ applied: LETTERS, removed: LETTERS, total: LETTERS });

    // Every letter handled by the group that failed it (at least once: one replay may repeat across the kill).
    const ids = numbers.map((n) => `resume-${n}`);
    await waitUntil(() => ids.every((id) => handled.items.includes(id)), 30_000, 'every replayed letter handled');
    expect(handled.items.length - LETTERS).toBeLessThanOrEqual(1);
    // One audit row per letter, the DLQ queue empty.
    const audit = await store.audit({ jobId, limit: 1000 });
    expect(audit.filter((e) => e.action === 'replay').length).toBe(LETTERS);
    expect(audit.map((e) => e.action)).toContain('job-done');
    expect(await browse()).toEqual([]);

    second.child.kill('SIGTERM');
    await new Promise((resolve) => second.child.once('exit', resolve));
    await bus.close();
  });
});
