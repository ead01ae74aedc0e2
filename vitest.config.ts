import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string) => fileURLToPath(new URL(path, import.meta.url));

// Tests run against the sources (no stale dist); `pnpm test` still builds first so types are checked.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@switchboard\/core\/testing$/, replacement: src('./packages/core/src/testing/index.ts') },
      { find: /^@switchboard\/core\/postgres$/, replacement: src('./packages/core/src/stores/postgres.ts') },
      { find: /^@switchboard\/core\/prometheus$/, replacement: src('./packages/core/src/observability/prometheus.ts') },
      { find: /^@switchboard\/core$/, replacement: src('./packages/core/src/index.ts') },
      { find: /^@switchboard\/kafka$/, replacement: src('./packages/kafka/src/index.ts') },
      { find: /^@switchboard\/rabbitmq$/, replacement: src('./packages/rabbitmq/src/index.ts') },
      { find: /^@switchboard\/redis-pubsub$/, replacement: src('./packages/redis-pubsub/src/index.ts') },
    ],
  },
  test: {
    projects: [
      { extends: true, test: { name: 'core', include: ['packages/core/test/**/*.test.ts'] } },
      // Kafka files run one at a time: the outage test stops and restarts the shared broker.
      { extends: true, test: { name: 'kafka', include: ['packages/kafka/test/**/*.test.ts'], setupFiles: ['packages/kafka/test/setup.ts'], testTimeout: 120_000, hookTimeout: 180_000, fileParallelism: false } },
      // RabbitMQ files run one at a time too: the fallback outage test stops and restarts the broker.
      { extends: true, test: { name: 'rabbitmq', include: ['packages/rabbitmq/test/**/*.test.ts'], testTimeout: 120_000, hookTimeout: 180_000, fileParallelism: false } },
      { extends: true, test: { name: 'redis', include: ['packages/redis-pubsub/test/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 } },
    ],
  },
});
