import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createBus, createMemoryTransport, healthHandler, shutdownBus } from '@switchboard/core';
import { Recorder, gate, recordLines } from '@switchboard/core/testing';

describe('lifecycle: shutdown within a deadline, health', () => {
  it('drains what finishes in time; a subscription still busy at the deadline is closed and its unstarted messages handed back', async () => {
    const broker = createMemoryTransport().broker;
    const bus = createBus({ transport: createMemoryTransport(broker) });
    const quick = new Recorder<string>();
    const stuck = gate();
    await bus.subscriber.subscribe('quick', async (m) => void quick.add(m.id), { group: 'g' });
    const slowStarted = new Recorder<string>();
    await bus.subscriber.subscribe(
      'slow',
      async (m) => {
        slowStarted.add(m.id);
        await stuck.promise; // runs past the deadline
      },
      { group: 'g' },
    );
    await bus.publisher.publish('quick', [
      { id: 'q1', value: 1 },
      { id: 'q2', value: 2 },
    ]);
    await bus.publisher.publish('slow', [
      { id: 's1', value: 1 },
      { id: 's2', value: 2 },
    ]);
    await slowStarted.waitFor(1, 5000);
    const shutdown = shutdownBus(bus, { deadlineMs: 300 });
    // The close waits for the running handler; let it finish once the deadline has passed.
    setTimeout(stuck.open, 600);
    const report = await shutdown;
    expect(report).toMatchObject({ drained: 1, handedBack: 1, messagesHandedBack: 1, uncounted: [], errors: [] });
    expect(report.durationMs).toBeGreaterThanOrEqual(300);
    expect(quick.items.sort()).toEqual(['q1', 'q2']);
    expect(slowStarted.items).toEqual(['s1']);
    // s2 was handed back to the group: another member gets it.
    const other = createBus({ transport: createMemoryTransport(broker) });
    const after = new Recorder<string>();
    await other.subscriber.subscribe('slow', async (m) => void after.add(m.id), { group: 'g' });
    expect(await after.waitFor(1, 5000)).toEqual(['s2']);
    expect(bus.health().status).toBe('closed');
    await other.close();
  });

  it('serves liveness and readiness over HTTP (loopback)', async () => {
    const bus = createBus({ transport: createMemoryTransport() });
    await bus.subscriber.subscribe('orders', () => {});
    const server = createServer(healthHandler(bus));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const ready = await fetch(`${base}/health/ready`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'up', transport: 'memory', subscriptions: [{ topic: 'orders', group: 'default', state: 'live' }], connections: [] });
      expect((await fetch(`${base}/health/live`)).status).toBe(200);
      expect((await fetch(`${base}/other`)).status).toBe(404);
      await bus.close();
      expect((await fetch(`${base}/health/ready`)).status).toBe(503);
    } finally {
      server.close();
    }
  });

  it('closeOnSignals: SIGTERM drains within the deadline, reports, and exits 0', async () => {
    const script = fileURLToPath(new URL('./fixtures/shutdown-on-signal.mjs', import.meta.url));
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = recordLines(child.stdout);
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await lines.waitFor(1, 10_000, 'READY');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const report = JSON.parse(lines.items[1]!) as { signal: string; drained: number; handedBack: number; durationMs: number };
    expect(report).toMatchObject({ signal: 'SIGTERM', drained: 1, handedBack: 1, errors: [] });
    expect(report.durationMs).toBeGreaterThanOrEqual(300);
  }, 30_000);
});
