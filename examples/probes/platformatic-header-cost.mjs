// What one record header costs inside @platformatic/kafka's record writer (no broker needed).
// Encodes 100 batches of 1000 records with createRecordsBatch, three ways: bare, with a timestamp,
// with a timestamp and one 36-byte id header (what Switchboard's default envelope adds), and prints
// µs per record for each, 3 counted rounds after a warm-up round.
// Run: node examples/probes/platformatic-header-cost.mjs   (Node >= 22.22, after pnpm install)
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../packages/kafka/package.json', import.meta.url));
const { createRecordsBatch } = await import(require.resolve('@platformatic/kafka'));

const name = Buffer.from('x-sb-id');
const value = Buffer.from(JSON.stringify({ orderId: 'o-1', productId: 'p', quantity: 1, filler: 'x'.repeat(200) }));
const batch = (mode) =>
  Array.from({ length: 1000 }, (_, i) => {
    const message = { topic: 't', partition: 0, key: Buffer.from(`product-${i % 50}`), value };
    if (mode !== 'bare') message.timestamp = BigInt(Date.now());
    if (mode === 'timestamp + id header') message.headers = new Map([[name, Buffer.from(randomUUID())]]);
    return message;
  });
const modes = ['bare', 'timestamp', 'timestamp + id header'];
for (let round = 0; round < 4; round++) {
  const line = [];
  for (const mode of modes) {
    const batches = Array.from({ length: 100 }, () => batch(mode)); // built before the clock starts
    const started = process.hrtime.bigint();
    for (const messages of batches) createRecordsBatch(messages, {});
    line.push(`${mode} ${(Number(process.hrtime.bigint() - started) / 1000 / 100_000).toFixed(2)} µs/record`);
  }
  if (round > 0) console.log(line.join('   '));
}
