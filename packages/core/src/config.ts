import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { DELIVERY_GUARANTEES } from './capabilities.js';
import { ConfigError } from './errors.js';
import { retryPolicyFieldsSchema } from './retry.js';

/** Transport kinds Switchboard knows; each but `memory` lives in its own package. */
export const TRANSPORT_KINDS = ['memory', 'kafka', 'rabbitmq', 'redis'] as const;
export type TransportKind = (typeof TRANSPORT_KINDS)[number];

/** Subscription policy fields shared by `defaults` and each named subscription. */
const subscriptionPolicyShape = {
  concurrency: z.number().int().min(1).max(1024).optional(),
  retry: retryPolicyFieldsSchema.optional(),
  retryMode: z.enum(['transport', 'in-process']).optional(),
  deadLetter: z.union([z.string().min(1), z.literal(false)]).optional(),
  stackTraceLimit: z.number().int().min(0).max(1_000_000).optional(),
};

const isFunction = (value: unknown) => typeof value === 'function';

/**
 * Options given to `Subscriber.subscribe` directly: validated by the same rules as config, so
 * `concurrency: NaN`, `group: ''` or `retryMode: 'later'` fail at once naming the field.
 */
export const subscribeOptionsSchema = z
  .object({
    group: z.string().min(1).max(249).optional(),
    pattern: z.boolean().optional(),
    startFrom: z.enum(['latest', 'earliest']).optional(),
    ...subscriptionPolicyShape,
    codec: z
      .custom<unknown>((v) => typeof v === 'object' && v !== null && isFunction((v as { encode?: unknown }).encode) && isFunction((v as { decode?: unknown }).decode), 'must be a codec with encode() and decode()')
      .optional(),
    schema: z.custom<unknown>((v) => typeof v === 'object' && v !== null && isFunction((v as { safeParse?: unknown }).safeParse), 'must be a zod schema (with safeParse)').optional(),
    classify: z.custom<unknown>(isFunction, 'must be a function').optional(),
    onFinalFailure: z.custom<unknown>(isFunction, 'must be a function').optional(),
  })
  .strict();

export const subscriptionConfigSchema = z
  .object({
    topic: z.string().min(1),
    group: z.string().min(1).optional(),
    pattern: z.boolean().optional(),
    startFrom: z.enum(['latest', 'earliest']).optional(),
    ...subscriptionPolicyShape,
  })
  .strict();

/**
 * The whole bus in one schema. `transport` carries `kind` plus that transport's own options, which the
 * adapter's schema validates (errors are reported under `transport.`).
 */
export const busConfigSchema = z
  .object({
    transport: z.object({ kind: z.enum(TRANSPORT_KINDS) }).catchall(z.unknown()),
    publish: z
      .object({ guarantee: z.enum(DELIVERY_GUARANTEES as [string, ...string[]]).optional(), noReceivers: z.enum(['ignore', 'warn', 'reject']).optional() })
      .strict()
      .default({}),
    defaults: z.object(subscriptionPolicyShape).strict().default({}),
    subscriptions: z.record(z.string(), subscriptionConfigSchema).default({}),
  })
  .strict();

export type BusConfig = z.output<typeof busConfigSchema>;
export type BusConfigInput = z.input<typeof busConfigSchema>;
export type SubscriptionConfig = z.output<typeof subscriptionConfigSchema>;

/** Turns zod issues into a {@link ConfigError} naming each field path and, for enums, the allowed values. */
export function toConfigError(error: z.ZodError, pathPrefix = ''): ConfigError {
  return new ConfigError(
    error.issues.map((issue) => {
      const path = [pathPrefix, ...issue.path.map(String)].filter(Boolean).join('.');
      let message = issue.message;
      if (issue.code === 'unrecognized_keys') message = `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      return { path, message };
    }),
  );
}

/** Validates a config object. Throws {@link ConfigError} naming every bad field. */
export function parseBusConfig(input: unknown): BusConfig {
  const parsed = busConfigSchema.safeParse(input);
  if (!parsed.success) throw toConfigError(parsed.error);
  return parsed.data;
}

/**
 * Reads `SWITCHBOARD__A__B_C=value` variables into `{ a: { bC: value } }`. Values that parse as JSON
 * (numbers, booleans, arrays, objects) are taken as JSON, anything else as a string.
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env, prefix = 'SWITCHBOARD__'): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(prefix) || raw === undefined) continue;
    const path = name
      .slice(prefix.length)
      .split('__')
      .map((part) => part.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()));
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    let node = result;
    path.forEach((segment, index) => {
      if (index === path.length - 1) node[segment] = value;
      else node = (node[segment] ??= {}) as Record<string, unknown>;
    });
  }
  return result;
}

/** Reads a JSON or YAML config file (chosen by extension; YAML is a superset of JSON anyway). */
export async function configFromFile(path: string): Promise<Record<string, unknown>> {
  const text = await readFile(path, 'utf8');
  try {
    return (path.endsWith('.json') ? JSON.parse(text) : parseYaml(text)) ?? {};
  } catch (error) {
    throw new ConfigError([{ path: '', message: `cannot parse ${path}: ${(error as Error).message}` }]);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep merge of plain objects; later sources win; arrays and scalars are replaced. */
export function mergeConfig(...sources: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const source of sources) {
    if (!isPlainObject(source)) continue;
    for (const [key, value] of Object.entries(source)) {
      out[key] = isPlainObject(value) && isPlainObject(out[key]) ? mergeConfig(out[key], value) : value;
    }
  }
  return out;
}

export interface ConfigSources {
  /** Base config object. */
  readonly object?: unknown;
  /** JSON/YAML file; default: `SWITCHBOARD_CONFIG` when set. */
  readonly file?: string;
  /** Environment (default `process.env`); `SWITCHBOARD__*` variables override the rest. Pass `false` to ignore it. */
  readonly env?: NodeJS.ProcessEnv | false;
}

/**
 * Loads the bus config: file, then object, then environment (later wins), validated.
 * With nothing configured, the transport is `memory`.
 */
export async function loadBusConfig(sources: ConfigSources = {}): Promise<BusConfig> {
  const env = sources.env === false ? {} : (sources.env ?? process.env);
  const file = sources.file ?? env.SWITCHBOARD_CONFIG;
  const fromFile = file ? await configFromFile(file) : {};
  return parseBusConfig(mergeConfig({ transport: { kind: 'memory' } }, fromFile, sources.object, configFromEnv(env)));
}
