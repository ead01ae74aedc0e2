import { describe, expect, it } from 'vitest';
import { RecentById } from '@switchboard/core/transport';

describe('pipeline state by message id (RecentById)', () => {
  it('keeps at most its limit, dropping the oldest first: retries that go to another member do not leak', () => {
    const recent = new RecentById<number>(100);
    for (let i = 0; i < 20_000; i++) recent.set(`m-${i}`, i); // 20,000 retried messages that never come back here
    expect(recent.size).toBe(100);
    expect(recent.get('m-0')).toBeUndefined();
    expect(recent.get('m-19999')).toBe(19_999);
  });

  it('counts a re-set entry as the newest, and forgets a deleted one', () => {
    const recent = new RecentById<string>(2);
    recent.set('a', '1');
    recent.set('b', '2');
    recent.set('a', '3'); // a is now the newest
    recent.set('c', '4'); // drops b
    expect([recent.get('a'), recent.get('b'), recent.get('c')]).toEqual(['3', undefined, '4']);
    recent.delete('a');
    expect(recent.size).toBe(1);
  });
});
