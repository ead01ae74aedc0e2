import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** `@switchboard/<name>[/<subpath>]` -> its source file, so tests run against the sources (no stale dist). */
const packages: Record<string, string> = {
  '@switchboard/core/testing': './packages/core/src/testing/index.ts',
  '@switchboard/core/transport': './packages/core/src/transport.ts',
  '@switchboard/core': './packages/core/src/index.ts',
  '@switchboard/postgres/testing': './packages/postgres/src/testing.ts',
  '@switchboard/postgres': './packages/postgres/src/index.ts',
  '@switchboard/mysql': './packages/mysql/src/index.ts',
  '@switchboard/console': './packages/console/src/index.ts',
  '@switchboard/prometheus': './packages/prometheus/src/index.ts',
  '@switchboard/inversify': './packages/inversify/src/index.ts',
  '@switchboard/nestjs/terminus': './packages/nestjs/src/terminus.ts',
  '@switchboard/nestjs': './packages/nestjs/src/index.ts',
  '@switchboard/resilience/testing': './packages/resilience/src/testing/index.ts',
  '@switchboard/resilience': './packages/resilience/src/index.ts',
  '@switchboard/cli/testing': './packages/cli/src/testing/index.ts',
  '@switchboard/kafka/testing': './packages/kafka/src/testing/failover.ts',
  '@switchboard/kafka': './packages/kafka/src/index.ts',
  '@switchboard/rabbitmq': './packages/rabbitmq/src/index.ts',
  '@switchboard/redis-pubsub': './packages/redis-pubsub/src/index.ts',
  '@switchboard/redis-streams': './packages/redis-streams/src/index.ts',
  '@switchboard/nats': './packages/nats/src/index.ts',
  '@switchboard/mqtt': './packages/mqtt/src/index.ts',
};

// `pnpm test` still builds first: types are checked, and the CLI the tests run is the built one.
export default defineConfig({
  resolve: {
    alias: Object.entries(packages).map(([name, path]) => ({ find: new RegExp(`^${name.replace('/', '\\/')}$`), replacement: src(path) })),
  },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'core',
          include: ['packages/{core,postgres,mysql,prometheus,inversify,resilience,cli,nestjs}/test/**/*.test.ts', 'examples/test/**/*.test.ts'],
          exclude: ['**/*.rabbitmq.test.ts', 'packages/postgres/test/queue/**', '**/node_modules/**'],
        },
      },
      // Kafka files run one at a time: the outage test stops and restarts the shared broker.
      {
        extends: true,
        test: { name: 'kafka', include: ['packages/kafka/test/**/*.test.ts'], setupFiles: ['packages/kafka/test/setup.ts'], testTimeout: 120_000, hookTimeout: 180_000, fileParallelism: false },
      },
      // RabbitMQ files run one at a time too: the fallback outage test stops and restarts the broker.
      {
        extends: true,
        test: { name: 'rabbitmq', include: ['packages/rabbitmq/test/**/*.test.ts', 'examples/test/**/*.rabbitmq.test.ts'], testTimeout: 120_000, hookTimeout: 180_000, fileParallelism: false },
      },
      { extends: true, test: { name: 'redis', include: ['packages/redis-pubsub/test/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 } },
      { extends: true, test: { name: 'redis-streams', include: ['packages/redis-streams/test/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 } },
      { extends: true, test: { name: 'postgres', include: ['packages/postgres/test/queue/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 } },
      { extends: true, test: { name: 'nats', include: ['packages/nats/test/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 } },
      // The console's browser tests read DLQs on Kafka, RabbitMQ and Redis: they run after every other
      // project (groupOrder), so no broker-outage test stops a broker under them.
      {
        extends: true,
        test: { name: 'console', include: ['packages/console/test/**/*.test.ts'], testTimeout: 180_000, hookTimeout: 180_000, fileParallelism: false, sequence: { groupOrder: 1 } },
      },
      { extends: true, test: { name: 'mqtt', include: ['packages/mqtt/test/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 } },
    ],
  },
});
