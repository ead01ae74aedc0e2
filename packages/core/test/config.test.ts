import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CapabilityError, ConfigError, configFromEnv, createBusFromConfig, loadBusConfig, namedSubscription, parseBusConfig, resolveTransportConfig } from '@switchboard/core';

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

  it('takes a plain config object as well as a loaded one: validated, bad fields named (it threw a TypeError on a missing section)', async () => {
    const bus = await createBusFromConfig({ transport: { kind: 'memory' } });
    const received: unknown[] = [];
    await bus.subscriber.subscribe('plain', (m) => void received.push(m.value));
    await bus.publisher.publish('plain', { value: 1 });
    await bus.close();
    expect(received).toEqual([1]);
    const bad = createBusFromConfig({ transport: { kind: 'memory' }, publish: { guarantee: 'sometimes' } } as never);
    await expect(bad).rejects.toThrowError(ConfigError);
    await expect(bad).rejects.toThrowError(/publish\.guarantee/);
    expect(() => resolveTransportConfig({ transport: { kind: 'memory' }, defaults: { concurrency: 0 } })).toThrowError(/defaults\.concurrency/);
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

  it('refuses a transactional subscription where the transport has no transactions, and the orderings and retry modes a transaction cannot have', async () => {
    const { createBus, createMemoryTransport } = await import('@switchboard/core');
    const memory = createBus({ transport: createMemoryTransport() });
    await expect(memory.subscriber.subscribe('orders', () => undefined, { transactional: true })).rejects.toThrowError(/transactional: transport "memory" has no transactions/);
    const transport = createMemoryTransport();
    const transactional = createBus({ transport: Object.assign(Object.create(transport) as typeof transport, { capabilities: { ...transport.capabilities, transactions: true } }) });
    await expect(transactional.subscriber.subscribe('orders', () => undefined, { transactional: true, ordering: 'key' })).rejects.toThrowError(
      /ordering: a transactional subscription handles one message at a time per partition/,
    );
    await expect(transactional.subscriber.subscribe('orders', () => undefined, { transactional: true, retryMode: 'in-process' })).rejects.toThrowError(
      /retryMode: a transactional subscription retries through the transport/,
    );
    await memory.close();
    await transactional.close();
  });

  it('rejects unknown transport options under transport.', async () => {
    await expect(loadBusConfig({ env: {}, object: { transport: { kind: 'memory', brokers: ['x'] } } }).then((config) => createBusFromConfig(config))).rejects.toThrowError(
      /transport: unknown field\(s\) "brokers"/,
    );
  });
});

describe('config from hostile sources', () => {
  const refused = async (sources: Parameters<typeof loadBusConfig>[0], pattern: RegExp) => {
    const attempt = loadBusConfig(sources);
    await expect(attempt).rejects.toThrowError(ConfigError);
    await expect(attempt).rejects.toThrowError(pattern);
  };
  const file = async (name: string, text: string) => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-config-'));
    await writeFile(join(dir, name), text);
    return join(dir, name);
  };

  it('never writes into Object.prototype from an environment variable, and names the variable', async () => {
    await refused({ env: { SWITCHBOARD__CONSTRUCTOR__PROTOTYPE__POLLUTED: 'yes' } }, /"constructor" is not a config field \(set by SWITCHBOARD__CONSTRUCTOR__PROTOTYPE__POLLUTED\)/);
    await refused({ env: { SWITCHBOARD____PROTO____POLLUTED: 'yes' } }, /not a config field \(set by SWITCHBOARD____PROTO____POLLUTED\)/);
    await refused({ env: { SWITCHBOARD__DEFAULTS__PROTOTYPE: 'yes' } }, /"prototype" is not a config field/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.hasOwn(Object.prototype, 'polluted')).toBe(false);
  });

  it('walks own properties only: an inherited member name is an unknown field, not a write into it', async () => {
    await refused({ env: { SWITCHBOARD__TO_STRING__X: 'yes' } }, /unknown field\(s\) "toString" \(set by SWITCHBOARD__TO_STRING__X\)/);
    expect((Object.prototype.toString as unknown as Record<string, unknown>).x).toBeUndefined();
    await refused({ env: { SWITCHBOARD__DEFAULTS__HAS_OWN_PROPERTY: '1' } }, /defaults: unknown field\(s\) "hasOwnProperty"/);
  });

  it('names both variables when one sets a value where the other needs an object, in either order', async () => {
    for (const env of [
      { SWITCHBOARD__DEFAULTS: '5', SWITCHBOARD__DEFAULTS__CONCURRENCY: '3' },
      { SWITCHBOARD__DEFAULTS__CONCURRENCY: '3', SWITCHBOARD__DEFAULTS: '5' },
    ]) {
      await refused({ env }, /defaults: SWITCHBOARD__DEFAULTS sets a value where SWITCHBOARD__DEFAULTS__CONCURRENCY needs an object/);
    }
  });

  it('refuses a file whose top level is a list or a scalar instead of running on memory', async () => {
    await refused({ env: {}, file: await file('list.json', '[{"transport":{"kind":"kafka"}}]') }, /list\.json: must hold an object of config fields at the top, not a list/);
    await refused({ env: {}, file: await file('scalar.yaml', 'kafka\n') }, /scalar\.yaml: must hold an object of config fields at the top, not a string/);
    await refused({ env: {}, file: await file('number.json', '5') }, /not a number/);
  });

  it('names the file when it is missing, a directory, or unparsable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-config-'));
    await refused({ env: {}, file: join(dir, 'absent.json') }, /config file .*absent\.json: no such file/);
    await refused({ env: {}, file: dir }, /is a directory, not a file/);
    await refused({ env: {}, file: await file('broken.json', '{"transport":') }, /broken\.json: cannot parse/);
    await refused({ env: { SWITCHBOARD_CONFIG: join(dir, 'nope.yaml') } }, /nope\.yaml: no such file/);
  });

  it('refuses a __proto__ (or constructor) key in a file as an unknown field, in JSON and YAML', async () => {
    await refused({ env: {}, file: await file('proto.json', '{"transport":{"kind":"memory"},"__proto__":{"polluted":"yes"}}') }, /unknown field\(s\) "__proto__"/);
    await refused({ env: {}, file: await file('proto.yaml', 'transport:\n  kind: memory\ndefaults:\n  __proto__:\n    concurrency: 9\n') }, /defaults: unknown field\(s\) "__proto__"/);
    await refused({ env: {}, file: await file('ctor.json', '{"defaults":{"constructor":{"prototype":{"x":1}}}}') }, /defaults: unknown field\(s\) "constructor"/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('says that steps belong in code when the config object holds a function', async () => {
    await refused(
      { env: {}, object: { transport: { kind: 'memory' }, defaults: { use: [(_m: unknown, next: () => unknown) => next()] } } },
      /defaults\.use\.0: the config object: a function is not config data; steps.*belong in code/,
    );
    await refused({ env: {}, object: [] }, /the config object must be an object of config fields, not a list/);
    const cyclic: Record<string, unknown> = { transport: { kind: 'memory' } };
    cyclic.defaults = cyclic;
    await refused({ env: {}, object: cyclic }, /defaults: the config object: a cycle/);
  });
});

describe('errors with stable codes', () => {
  it('names each error as itself and gives it a code to match on', async () => {
    const {
      CapabilityError: Capability,
      ConfigError: Config,
      NonRetryableError,
      DecodeError,
      PublishError,
      MessageTooLargeError,
      ClosedError,
      ConnectError,
      ErrorCodes,
    } = await import('@switchboard/core');
    const errors = [
      [new Config([]), 'ConfigError', ErrorCodes.configInvalid],
      [new Capability([]), 'CapabilityError', ErrorCodes.capability],
      [new NonRetryableError('x'), 'NonRetryableError', ErrorCodes.nonRetryable],
      [new DecodeError('x'), 'DecodeError', ErrorCodes.decode],
      [new PublishError('x', 't'), 'PublishError', ErrorCodes.publish],
      [new MessageTooLargeError('x', 't'), 'MessageTooLargeError', ErrorCodes.messageTooLarge],
      [new ClosedError('x'), 'ClosedError', ErrorCodes.closed],
      [new ConnectError('x', 'h:1'), 'ConnectError', ErrorCodes.connect],
    ] as const;
    for (const [error, name, code] of errors) expect({ name: error.name, code: error.code }).toEqual({ name, code });
    expect(new Capability([])).toBeInstanceOf(Config);
    await expect(loadBusConfig({ env: { SWITCHBOARD__X: '1' } })).rejects.toMatchObject({ code: 'SB_CONFIG_INVALID' });
  });
});
