/** How results are shown: tables for people, JSON / NDJSON for programs (bodies decoded), progress on stderr. */
import cliProgress from 'cli-progress';
import type { ParkedMessage } from '@switchboard/core';
import type { TransportDeadLetter } from './dlq-source.js';
import type { GlobalOptions } from './options.js';

export const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A message body as JSON output shows it: the decoded JSON value when the bytes are JSON, the text
 * when they are UTF-8, base64 otherwise; `encoding` says which. Never `{"type":"Buffer","data":[…]}`.
 */
export function bodyForJson(bytes: Uint8Array): { encoding: 'json'; value: unknown } | { encoding: 'utf8' | 'base64'; value: string } {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return { encoding: 'base64', value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') };
  }
  try {
    return { encoding: 'json', value: JSON.parse(text) as unknown };
  } catch {
    return { encoding: 'utf8', value: text };
  }
}

/** JSON.stringify replacer: bytes are read before their toJSON() turns them into number arrays. */
export function bytesAsBodies(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  return raw instanceof Uint8Array ? bodyForJson(raw) : value;
}

/** `--json`: one document; `--ndjson` (lists): one compact JSON value per line; else the text form. */
export function print(global: GlobalOptions, data: unknown, text: () => string): void {
  if (global.ndjson && Array.isArray(data)) {
    for (const item of data) process.stdout.write(`${JSON.stringify(item, bytesAsBodies)}\n`);
    return;
  }
  if (global.json || global.ndjson) process.stdout.write(`${JSON.stringify(data, bytesAsBodies, 2)}\n`);
  else process.stdout.write(`${text()}\n`);
}

/** Left-aligned columns, two spaces apart; `empty` when there are no rows. */
export function table(header: readonly string[], rows: readonly string[][], empty: string): string {
  if (rows.length === 0) return empty;
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  return all.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')).join('\n');
}

export function parkedTable(messages: readonly ParkedMessage[]): string {
  return table(
    ['id', 'message id', 'topic', 'error', 'reason', 'attempts', 'parked at', 'replayed'],
    messages.map((m) => [
      m.id,
      m.messageId,
      m.originalTopic,
      `${m.errorName}: ${m.errorMessage}`.slice(0, 60),
      m.reason,
      String(m.attempts),
      new Date(m.parkedAt).toISOString(),
      m.replayedAt ? `${m.replayCount}x` : '-',
    ]),
    'no parked messages match',
  );
}

export function letterTable(letters: readonly TransportDeadLetter[]): string {
  return table(
    ['message id', 'original topic', 'error', 'reason', 'attempts', 'last failure'],
    letters.map((l) => [l.id, l.originalTopic, `${l.errorName}: ${l.errorMessage}`.slice(0, 60), l.reason, String(l.attempts), new Date(l.lastFailureAt).toISOString()]),
    'no dead letters match',
  );
}

export function progressBar(global: GlobalOptions, total: number): { update(done: number): void; stop(): void } {
  if (global.json || global.ndjson || total < 2) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { format: 'replaying [{bar}] {value}/{total} {eta_formatted} left', stream: process.stderr, noTTYOutput: true, notTTYSchedule: 2000 },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return { update: (done) => bar.update(done), stop: () => bar.stop() };
}
