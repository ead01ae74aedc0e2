#!/usr/bin/env bash
# Installs Switchboard the way a user does: packs every public package, `npm install`s the tarballs
# into an empty project, compiles a strict TypeScript app against them (skipLibCheck: false) and runs
# it on each transport given (default: memory kafka rabbitmq; brokers must answer). Prints each
# package's install size (the package plus what it pulls in, alone in an empty project).
# `kafka:platformatic` runs Kafka on driver platformatic: first without @platformatic/kafka (an optional
# peer dependency, which npm does not install), where the error must tell what to install; then
# after `npm install @platformatic/kafka` (the version range @switchboard/kafka declares).
#
#   scripts/pack-install.sh [memory] [kafka] [kafka:platformatic] [rabbitmq] [redis] [redis-streams] [nats] [postgres] [mqtt]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
transports=("$@"); [ ${#transports[@]} -eq 0 ] && transports=(memory kafka rabbitmq)
work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
PNPM=${PNPM:-"npx -y pnpm@10.34.9"}
export npm_config_loglevel=error npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

cd "$root"
mkdir -p "$work/tarballs"
for p in packages/*/; do
  [ "$(node -p "Boolean(require('./$p/package.json').private)")" = true ] && continue
  (cd "$p" && $PNPM pack --pack-destination "$work/tarballs" >/dev/null)
done
tarball() { ls "$work"/tarballs/switchboard-"$1"-*.tgz; }
echo "pack-install: packed $(ls "$work/tarballs" | tr '\n' ' ')"

# Install size of each package alone (with core beside it for the adapters' peer dependency).
printf '%-28s %10s %8s\n' package 'on disk' packages
for tgz in "$work"/tarballs/*.tgz; do
  name=$(basename "$tgz" .tgz)
  dir="$work/size-$name"; mkdir -p "$dir"; (cd "$dir" && npm init -y >/dev/null)
  # Its @switchboard/* dependencies and peers come from the local tarballs too (nothing is published).
  pkg=${name#switchboard-}; pkg=${pkg%-*}
  extra=()
  for dep in $(node -p "const p=require('$root/packages/$pkg/package.json'); Object.keys({...p.dependencies, ...p.peerDependencies}).filter(d => d.startsWith('@switchboard/') && !(p.peerDependenciesMeta?.[d]?.optional)).map(d => d.slice(13)).join(' ')"); do extra+=("$(tarball "$dep")"); done
  (cd "$dir" && npm install --no-save --omit=dev --no-package-lock "$tgz" "${extra[@]}" >/dev/null)
  printf '%-28s %10s %8s\n' "$name" "$(du -sh "$dir/node_modules" | cut -f1)" "$(find "$dir/node_modules" -name package.json -path '*/node_modules/*/package.json' -not -path '*/node_modules/*/node_modules/*/node_modules/*' | wc -l)"
done

# A strict application that imports nothing but the ports and the adapters' factories.
app="$work/app"; mkdir -p "$app/src"; cd "$app"
npm init -y >/dev/null
npm pkg set type=module >/dev/null
npm install --no-package-lock "$work"/tarballs/*.tgz typescript@5.9.3 @types/node@20 >/dev/null
cat > tsconfig.json <<'JSON'
{ "compilerOptions": { "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext", "strict": true, "exactOptionalPropertyTypes": true, "noUncheckedIndexedAccess": true, "skipLibCheck": false, "outDir": "dist", "rootDir": "src" }, "include": ["src"] }
JSON
cat > src/app.ts <<'TS'
import { CapabilityError, NonRetryableError, createBusFromConfig, createRequester, loadBusConfig, serveRequests, type Bus, type Message, type Publisher, type Subscriber } from '@switchboard/core';
import { kafkaTransport } from '@switchboard/kafka';
import { rabbitmqTransport } from '@switchboard/rabbitmq';
import { redisPubSubTransport } from '@switchboard/redis-pubsub';
import { redisStreamsTransport } from '@switchboard/redis-streams';
import { natsTransport } from '@switchboard/nats';
import { postgresTransport } from '@switchboard/postgres';
import { mqttTransport } from '@switchboard/mqtt';
// The leaf packages compile against the same core (types checked, skipLibCheck false).
import type { PostgresFallbackStore, PostgresOutbox } from '@switchboard/postgres';
import type { MySqlOutbox } from '@switchboard/mysql';
import type { PrometheusObserver } from '@switchboard/prometheus';
import type { FallbackTransport } from '@switchboard/resilience';
import type { SWITCHBOARD } from '@switchboard/inversify';
import type { SwitchboardModule } from '@switchboard/nestjs';
export type LeafTypes = [PostgresFallbackStore, PostgresOutbox, MySqlOutbox, PrometheusObserver, FallbackTransport, typeof SWITCHBOARD, SwitchboardModule];

interface Order { readonly id: number; readonly poison: boolean }

/** Application code: ports only. */
async function run(publisher: Publisher, subscriber: Subscriber, topic: string): Promise<{ handled: number; deadLettered: boolean }> {
  const handled = new Set<number>();
  let deadLettered = false;
  await subscriber.subscribe<Order>(topic, (m: Message<Order>) => {
    if (m.value.poison) throw new NonRetryableError('poison order');
    handled.add(m.value.id);
  }, { group: 'app', onFinalFailure: () => void (deadLettered = true) });
  // Operators read the DLQ (MQTT keeps nothing for a topic nobody subscribes to: a dead letter waits for a reader).
  await subscriber.subscribe(`${topic}-dlq`, () => undefined, { group: 'dlq-reader' });
  await publisher.publish(topic, [1, 2, 3, 4, 5].map((id) => ({ key: `k${id}`, value: { id, poison: id === 5 } })));
  for (const deadline = Date.now() + 30_000; (handled.size < 4 || !deadLettered) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
  return { handled: handled.size, deadLettered };
}

/** The patterns as an installed app uses them: request/reply, a batch handler, the lean envelope (the bus's config). */
async function patterns(bus: Bus, topic: string): Promise<{ reply: number; batched: number }> {
  await serveRequests<{ n: number }>(bus, `${topic}.rpc`, (m) => ({ doubled: m.value.n * 2 }), { group: 'rpc' });
  const requester = await createRequester(bus);
  const reply = await requester.request<{ doubled: number }>(`${topic}.rpc`, { n: 21 }, { timeoutMs: 20_000 });
  await requester.close();
  let batched = 0;
  try {
    await bus.subscriber.subscribeBatch<{ n: number }>(`${topic}.batch`, (messages) => void (batched += messages.length), { group: 'batch', batch: { maxSize: 10, maxWaitMs: 50 } });
  } catch (error) {
    // MQTT refuses batch handlers (its members take one message at a time), naming the option.
    if (bus.transport.kind === 'mqtt' && error instanceof CapabilityError && /batch/.test(error.message)) return { reply: reply.value.doubled, batched: -1 };
    throw error;
  }
  await bus.publisher.publish(`${topic}.batch`, Array.from({ length: 10 }, (_, n) => ({ value: { n } })));
  for (const deadline = Date.now() + 30_000; batched < 10 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
  return { reply: reply.value.doubled, batched };
}

// `kind` or `kind:driver` (kafka:platformatic).
const [kind = 'memory', driver] = (process.argv[2] ?? 'memory').split(':');
const transport = { kind, ...(driver !== undefined ? { driver } : {}) };
const config = await loadBusConfig({ object: { transport } });
// The composition root registers the adapters it may use; `transport.kind` picks one.
const bus = await createBusFromConfig(config, { transports: [kafkaTransport, rabbitmqTransport, redisPubSubTransport, redisStreamsTransport, natsTransport, postgresTransport, mqttTransport] });
const topic = `install-check.${kind}.${Date.now()}`;
const result = await run(bus.publisher, bus.subscriber, topic);
await bus.close();
console.log(`pack-install: ${process.argv[2]}: handled ${result.handled}/4, dead-lettered ${result.deadLettered ? 1 : 0}/1`);
const leanConfig = await loadBusConfig({ object: { transport, publish: { envelope: { id: 'given', timestamp: 'broker' } } } });
const lean = await createBusFromConfig(leanConfig, { transports: [kafkaTransport, rabbitmqTransport, redisPubSubTransport, redisStreamsTransport, natsTransport, postgresTransport, mqttTransport] });
const used = await patterns(lean, `${topic}.patterns`);
await lean.close();
console.log(`pack-install: ${process.argv[2]}: request/reply ${used.reply}/42, batch handler ${used.batched < 0 ? 'refused, naming batch (as documented)' : `${used.batched}/10`} (lean envelope)`);
process.exit(result.handled === 4 && result.deadLettered && used.reply === 42 && (used.batched === 10 || used.batched === -1) ? 0 : 1);
TS
npx tsc -p tsconfig.json
echo "pack-install: strict app compiled (skipLibCheck: false)"
npx --no-install switchboard --help >/dev/null && echo "pack-install: switchboard --help answers (bin of @switchboard/cli)"
for t in "${transports[@]}"; do
  if [ "$t" = kafka:platformatic ] && [ ! -d node_modules/@platformatic/kafka ]; then
    # Without the optional peer, the driver must say what to install (and nothing else must break).
    if out=$(node dist/app.js "$t" 2>&1); then echo "pack-install: $t ran without @platformatic/kafka installed" >&2; exit 1; fi
    grep -q 'npm install @platformatic/kafka' <<<"$out" || { echo "pack-install: $t without @platformatic/kafka: unclear error:" >&2; echo "$out" | head -20 >&2; exit 1; }
    echo "pack-install: $t without @platformatic/kafka: refused, naming the package to install"
    npm install --no-package-lock "@platformatic/kafka@$(node -p "require('$root/packages/kafka/package.json').peerDependencies['@platformatic/kafka']")" >/dev/null
  fi
  node dist/app.js "$t"
done
echo "pack-install: ok"
