import { runConformanceSuite } from '@switchboard/core/testing';
import { rabbitCapabilities } from '@switchboard/rabbitmq';
import { testTransport } from './helpers.js';

for (const retryMode of ['broker', 'in-process'] as const) {
  runConformanceSuite({
    name: `rabbitmq (retryMode ${retryMode})`,
    capabilities: rabbitCapabilities({ retryMode }),
    createTransport: () => testTransport({ retryMode }),
    waitMs: 15_000,
  });
}
