import { describe, it } from 'vitest';
import { rabbitmqTransport } from '@switchboard/rabbitmq';
import { runNestExample } from './nest-scenario.js';

const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

describe('the NestJS example application', () => {
  it('on RabbitMQ: boots, consumes through @Subscribe, dead-letters, reports healthy, shuts down cleanly', async () => {
    // Group queues expire a minute after the application is gone.
    await runNestExample({ transport: { kind: 'rabbitmq', url: RABBITMQ_URL, queueExpiresMs: 60_000 } }, [rabbitmqTransport]);
  }, 60_000);
});
