import { describe, expect, it } from 'vitest';
import { KeyedScheduler, OrderedLanes, hashKey, orderKeyOf } from '@switchboard/core/transport';

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('KeyedScheduler (kit/lanes)', () => {
  it('runs items of one key one after another, in push order, and different keys side by side up to the concurrency', async () => {
    const log: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const scheduler = new KeyedScheduler<{ key: string; n: number }>(
      3,
      async (item) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await tick(2);
        log.push(`${item.key}:${item.n}`);
        running--;
      },
      (error) => {
        throw error;
      },
    );
    for (let n = 0; n < 10; n++) for (const key of ['a', 'b', 'c', 'd']) scheduler.push(key, { key, n });
    await scheduler.whenIdle(true);
    for (const key of ['a', 'b', 'c', 'd']) expect(log.filter((e) => e.startsWith(`${key}:`))).toEqual(Array.from({ length: 10 }, (_, n) => `${key}:${n}`));
    expect(maxRunning).toBe(3);
  });

  it('a runner that returns a delay holds only its key, puts the item back at the head and runs it again after the delay', async () => {
    const log: string[] = [];
    let held = false;
    const scheduler = new KeyedScheduler<string>(
      2,
      (item) => {
        if (item === 'a1' && !held) {
          held = true;
          return 50; // retry a1 in 50 ms; a2 must wait, b flows
        }
        log.push(item);
        return undefined;
      },
      (error) => {
        throw error;
      },
    );
    for (const item of ['a1', 'a2', 'b1', 'b2']) scheduler.push(item[0], item);
    await scheduler.whenIdle(true);
    expect(log.filter((i) => i.startsWith('a'))).toEqual(['a1', 'a2']);
    expect(log.indexOf('b2')).toBeLessThan(log.indexOf('a1'));
  });

  it('a lane (numeric key) that empties after every item is reused: order and delayed retries still hold', async () => {
    const log: string[] = [];
    let retried = false;
    const gates = new Map<string, () => void>();
    const scheduler = new KeyedScheduler<string>(
      2,
      (item) => {
        if (item === 'x2' && !retried) {
          retried = true;
          return 20; // held for a retry: x3 waits behind it
        }
        if (item.endsWith('*')) return new Promise<void>((resolve) => gates.set(item, () => (log.push(item), resolve())));
        log.push(item);
        return undefined;
      },
      (error) => {
        throw error;
      },
    );
    scheduler.push(0, 'x1'); // runs at once; lane 0 is idle again
    scheduler.push(0, 'x2');
    scheduler.push(0, 'x3');
    scheduler.push(1, 'y1*'); // lane 1 runs asynchronously
    scheduler.push(1, 'y2');
    expect(log).toEqual(['x1']);
    expect(scheduler.pending).toBe(3); // x2 (held), x3, y2
    gates.get('y1*')!();
    await scheduler.whenIdle(true);
    expect(log).toEqual(['x1', 'y1*', 'y2', 'x2', 'x3']);
    scheduler.push(0, 'x4'); // the idle lane again
    scheduler.push(1, 'y3');
    expect(log.slice(5)).toEqual(['x4', 'y3']);
    expect(scheduler.pending).toBe(0);
    expect(scheduler.takePending()).toEqual([]);
  });

  it('hands back what has not started (takePending) and counts it', () => {
    const scheduler = new KeyedScheduler<number>(
      1,
      () => new Promise(() => undefined),
      () => undefined,
    );
    for (let i = 0; i < 5; i++) scheduler.push('k', i);
    expect(scheduler.inFlight).toBe(1);
    expect(scheduler.pending).toBe(4);
    expect(scheduler.takePending()).toEqual([1, 2, 3, 4]);
    expect(scheduler.pending).toBe(0);
  });
});

describe('OrderedLanes and order keys (kit/lanes)', () => {
  it('hashes a key the same way every time and spreads keys over lanes', () => {
    expect(hashKey('product-7')).toBe(hashKey('product-7'));
    const lanes = new Set(Array.from({ length: 200 }, (_, i) => orderKeyOf('partition', `k-${i}`, 4, i)));
    expect(lanes.size).toBe(4);
    expect(orderKeyOf('none', 'k', 4, 0)).toBeUndefined();
    expect(orderKeyOf('key', 'k', 4, 0)).toBe('k');
  });

  it('OrderedLanes keeps one key in order across lanes', async () => {
    const log: number[] = [];
    const lanes = new OrderedLanes<number>(
      'partition',
      4,
      async (n) => {
        await tick(1);
        log.push(n);
      },
      () => undefined,
    );
    for (let n = 0; n < 20; n++) lanes.push('same', n);
    await lanes.whenIdle(true);
    expect(log).toEqual(Array.from({ length: 20 }, (_, n) => n));
  });
});
