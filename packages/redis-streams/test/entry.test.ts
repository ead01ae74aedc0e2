import { describe, expect, it } from 'vitest';
import { decodeEntry, entryFields, entryTime } from '@switchboard/redis-streams';

const buffers = (...fields: string[]) => fields.map((f) => Buffer.from(f));

describe('redis streams entry codec (no broker: the wire format alone)', () => {
  it('round-trips a message through its entry fields, body bytes untouched', () => {
    const body = Buffer.from([0, 255, 10, 13, 0x80]);
    const fields = entryFields({ id: 'm-1', key: 'k', headers: { a: 'b' }, timestamp: 1700000000000, body });
    const decoded = decodeEntry(
      '1700000000001-0',
      fields.map((f) => (typeof f === 'string' ? Buffer.from(f) : f)),
    );
    expect(decoded.rejected).toEqual([]);
    expect(decoded.message).toMatchObject({ id: 'm-1', key: 'k', headers: { a: 'b' }, timestamp: 1700000000000 });
    expect(Buffer.from(decoded.message.body).equals(body)).toBe(true);
  });

  it('trusts no field: an oversized id, headers that are not an object of strings, a negative timestamp each give way to a safe value and are named', () => {
    const { message, rejected } = decodeEntry('1700000000000-3', buffers('id', 'x'.repeat(2000), 'headers', '["not","an","object"]', 'timestamp', '-1', 'body', 'b'));
    expect(message.id).toBe('1700000000000-3');
    expect(message.headers).toEqual({});
    expect(message.timestamp).toBe(1700000000000);
    expect(rejected.map((r) => r.header)).toEqual(['id', 'headers', 'timestamp']);
    expect(rejected[0]!.value.length).toBeLessThanOrEqual(201);
  });

  it('keeps the string values of a partly valid header object; __proto__ stays a plain key', () => {
    const { message } = decodeEntry('1-0', buffers('headers', '{"a":"1","n":2,"__proto__":"x","o":{}}', 'body', ''));
    expect(Object.getPrototypeOf(message.headers)).toBe(Object.prototype);
    expect(Object.keys(message.headers).sort()).toEqual(['__proto__', 'a']);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it('an entry with no body field (another producer) is delivered as the JSON object of its fields; an odd field count drops the dangling name', () => {
    const { message } = decodeEntry('5-0', buffers('temp', '21', 'unit', 'C', 'dangling'));
    expect(JSON.parse(Buffer.from(message.body).toString())).toEqual({ temp: '21', unit: 'C' });
    expect(message.id).toBe('5-0');
    expect(message.timestamp).toBe(5);
  });

  it('reads the time of an entry id', () => {
    expect(entryTime('1700000000000-12')).toBe(1700000000000);
  });
});
