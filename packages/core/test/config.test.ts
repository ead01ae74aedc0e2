import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CapabilityError, ConfigError, configFromEnv, createBusFromConfig, loadBusConfig, namedSubscription, parseBusConfig } from '@switchboard/core';

describe('config', () => {
  it('defaults to the in-memory transport when nothing is configured', async () => {
    const config = await loadBusConfig({ env: {} });
    expect(config.transport.kind).toBe('memory');
  });

  it('names the field path and the registered transports when the kind is unknown', async () => {
    const config = parseBusConfig({ transport: { kind: 'kafak' } });
    const attempt = createBusFromConfig(config);
    await expect(attempt).rejects.toThrowError(ConfigError);
    await expect(attempt).rejects.toThrowError(/transport\.kind: no transport "kafak" is registered \(registered: "memory"\); register the adapter's factory/);
  });

  it('names nested fields: retry policy, unknown keys, guarantee', () => {
    const attempt = () =>
      parseBusConfig({
        transport: { kind: 'memory' },
        publish: { guarantee: 'sometimes' },
        subscriptions: { sales: { topic: 'sales', retry: { maxAttempts: 0, initialIntervalMS: 5 } } },
      });
    expect(attempt).toThrowError(/publish\.guarantee/);
    expect(attempt).toThrowError(/subscriptions\.sales\.retry\.maxAttempts/);
    expect(attempt).toThrowError(/subscriptions\.sales\.retry.*unknown field\(s\) "initialIntervalMS"/);
  });

  it('reads a JSON config file that names its JSON Schema for editors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-config-'));
    const file = join(dir, 'switchboard.json');
    await writeFile(file, JSON.stringify({ $schema: './switchboard.schema.json', transport: { kind: 'memory' }, defaults: { concurrency: 2 } }));
    const config = await loadBusConfig({ file, env: {} });
    expect(config.defaults.concurrency).toBe(2);
  });

  it('keeps an environment value a string where a string is valid (a topic named 404), and names the variable in errors', async () => {
    const config = await loadBusConfig({ env: { SWITCHBOARD__SUBSCRIPTIONS__SALES__TOPIC: '404', SWITCHBOARD__DEFAULTS__CONCURRENCY: '4' } });
    expect(config.subscriptions.sales!.topic).toBe('404');
    expect(config.defaults.concurrency).toBe(4);
    await expect(loadBusConfig({ env: { SWITCHBOARD__DEFAULTS__CONCURRENCY: 'many' } })).rejects.toThrow(/defaults\.concurrency: .*\(set by SWITCHBOARD__DEFAULTS__CONCURRENCY\)/);
    await expect(loadBusConfig({ env: { SWITCHBOARD__DEFAULTS__CONCURENCY: '3' } })).rejects.toThrow(/unknown field\(s\) "concurency" \(set by SWITCHBOARD__DEFAULTS__CONCURENCY\)/);
  });

  it('reads SWITCHBOARD__ variables (nested, camelCased; numbers where the schema wants them) over the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-config-'));
    const file = join(dir, 'switchboard.yaml');
    await writeFile(file, 'transport:\n  kind: memory\ndefaults:\n  concurrency: 2\nsubscriptions:\n  sales:\n    topic: product-sales\n    group: sales\n');
    const env = { SWITCHBOARD__DEFAULTS__CONCURRENCY: '3', SWITCHBOARD__DEFAULTS__RETRY__MAX_ATTEMPTS: '5', SWITCHBOARD__DEFAULTS__DEAD_LETTER: 'false' };
    expect(configFromEnv(env)).toEqual({ defaults: { concurrency: '3', retry: { maxAttempts: '5' }, deadLetter: false } });
    const config = await loadBusConfig({ file, env });
    expect(config.defaults).toEqual({ concurrency: 3, retry: { maxAttempts: 5 }, deadLetter: false });
    expect(namedSubscription(config, 'sales')).toEqual({ topic: 'product-sales', options: { group: 'sales' } });
    expect(() => namedSubscription(config, 'mail')).toThrowError(/subscriptions\.mail: no such subscription \(configured: sales\)/);
  });

  it('refuses at startup what the transport cannot honour, with the reason', async () => {
    const attempt = loadBusConfig({ env: {}, object: { transport: { kind: 'memory' }, publish: { guarantee: 'all' }, subscriptions: { audit: { topic: 'audit', startFrom: 'earliest' } } } }).then(
      (config) => createBusFromConfig(config),
    );
    await expect(attempt).rejects.toThrowError(CapabilityError);
    await expect(attempt).rejects.toThrowError(/publish\.guarantee: "all" is not available on transport "memory".*kafka or rabbitmq/);
    await expect(attempt).rejects.toThrowError(/subscriptions\.audit\.startFrom: transport "memory" keeps no history/);
  });

  it('rejects unknown transport options under transport.', async () => {
    await expect(loadBusConfig({ env: {}, object: { transport: { kind: 'memory', brokers: ['x'] } } }).then((config) => createBusFromConfig(config))).rejects.toThrowError(
      /transport: unknown field\(s\) "brokers"/,
    );
  });
});
