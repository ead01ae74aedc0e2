import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli } from '@switchboard/cli/testing';

const require = createRequire(import.meta.url);
const specs = require('@asyncapi/specs') as { schemas: Record<string, object> };
const Ajv = require('ajv') as new (options: object) => { compile(schema: object): ((data: unknown) => boolean) & { errors?: unknown[] | null } };
// meta: false: the AsyncAPI schema embeds the draft-07 meta-schema itself.
const check = new Ajv({ allErrors: true, strict: false, validateFormats: false, meta: false }).compile(specs.schemas['3.0.0']!);
const contracts = fileURLToPath(new URL('../../../examples/dist/contracts.js', import.meta.url));

describe('switchboard asyncapi', () => {
  it("writes the example shop's AsyncAPI 3.0 document (valid), the server from the config without its credentials", async () => {
    const { code, stdout, stderr } = await runCli(['asyncapi', '--module', contracts], {
      SWITCHBOARD__TRANSPORT__KIND: 'rabbitmq',
      SWITCHBOARD__TRANSPORT__URL: 'amqp://shop:hunter2@rabbit.internal:5672',
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).not.toContain('hunter2');
    const document = JSON.parse(stdout) as { servers: unknown; channels: Record<string, { address: string }>; operations: Record<string, { action: string }> };
    expect(check(document), JSON.stringify(check.errors?.slice(0, 3))).toBe(true);
    expect(document.servers).toEqual({ broker: { host: 'rabbit.internal:5672', protocol: 'amqp' } });
    expect(Object.values(document.channels).map((c) => c.address)).toEqual(['orders.placed', 'orders.placed-dlq']);
    expect(Object.entries(document.operations).map(([name, o]) => `${name}:${o.action}`)).toEqual(['send.orders.placed:send', 'receive.orders.placed.notifier:receive', 'send.orders.placed-dlq:send']);
  });

  it('refuses a module without a description, naming what to export (exit 2)', async () => {
    const { code, stderr } = await runCli(['asyncapi', '--module', fileURLToPath(new URL('../../../examples/dist/app/events.js', import.meta.url))], {});
    expect(code).toBe(2);
    expect(stderr).toMatch(/export `asyncapi`/);
  });
});
