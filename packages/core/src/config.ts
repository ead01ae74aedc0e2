import { readFile } from 'node:fs/promises';
import { z, type ZodType } from 'zod';
import { DELIVERY_GUARANTEES } from './capabilities.js';
import { ConfigError } from './errors.js';
import { ORDERINGS, type Ordering } from './lanes.js';
import { describeFailure } from './failure.js';
import { retryPolicyFieldsSchema } from './retry.js';

/** Subscription policy fields shared by `defaults` and each named subscription. */
const subscriptionPolicyShape = {
  concurrency: z.number().int().min(1).max(1024).optional(),
  ordering: z.enum(ORDERINGS as [Ordering, ...Ordering[]]).optional(),
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
      .custom<unknown>(
        (v) => typeof v === 'object' && v !== null && isFunction((v as { encode?: unknown }).encode) && isFunction((v as { decode?: unknown }).decode),
        'must be a codec with encode() and decode()',
      )
      .optional(),
    schema: z.custom<unknown>((v) => typeof v === 'object' && v !== null && isFunction((v as { safeParse?: unknown }).safeParse), 'must be a zod schema (with safeParse)').optional(),
    classify: z.custom<unknown>(isFunction, 'must be a function').optional(),
    onFinalFailure: z.custom<unknown>(isFunction, 'must be a function').optional(),
    use: z.array(z.custom<unknown>(isFunction, 'must be a middleware function (message, next)')).optional(),
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
    /** Where editors find the JSON Schema of this file (docs/switchboard.schema.json); ignored by Switchboard. */
    $schema: z.string().optional(),
    /** `kind` names a registered transport factory (see `registerTransport`); the rest are that transport's options. */
    transport: z.object({ kind: z.string().min(1) }).catchall(z.unknown()),
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

/**
 * Parses options with `schema`; refused values become a {@link ConfigError} naming each field (under
 * `pathPrefix`), not a raw ZodError. For an adapter's `create…Transport(options)`.
 */
export function parseOptions<T>(schema: ZodType<T>, input: unknown, pathPrefix = ''): T {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw toConfigError(parsed.error, pathPrefix);
  return parsed.data;
}

/** Turns zod issues into a {@link ConfigError} naming each field path and, for enums, the allowed values. */
export function toConfigError(error: z.ZodError, pathPrefix = '', origins: ReadonlyMap<string, EnvOrigin> = new Map()): ConfigError {
  return new ConfigError(
    error.issues.map((issue) => {
      const path = [pathPrefix, ...issue.path.map(String)].filter(Boolean).join('.');
      let message = issue.message;
      const variables = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => originFor(origins, [path, k].filter(Boolean).join('.'))?.[1].variable) : [originFor(origins, path)?.[1].variable];
      if (issue.code === 'unrecognized_keys') message = `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      const named = variables.filter((v): v is string => v !== undefined);
      if (named.length > 0) message += ` (set by ${named.join(', ')})`;
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

/** Where a config value came from when an environment variable set it. */
export interface EnvOrigin {
  /** The variable, e.g. `SWITCHBOARD__DEFAULTS__CONCURRENCY`. */
  readonly variable: string;
  readonly raw: string;
}

/** Config path (dot-joined) -> the variable that set it, per loaded config object. */
const envOriginsByConfig = new WeakMap<object, ReadonlyMap<string, EnvOrigin>>();

/** The environment variables behind a config loaded by {@link loadBusConfig}, by config path. */
export function envOriginsOf(config: object): ReadonlyMap<string, EnvOrigin> {
  return envOriginsByConfig.get(config) ?? new Map();
}

function envPath(name: string, prefix: string): string[] {
  return name
    .slice(prefix.length)
    .split('__')
    .map((part) => part.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()));
}

/** `true` / `false` are booleans; everything else stays a string until the schema says otherwise. */
function envValue(raw: string): unknown {
  return raw === 'true' ? true : raw === 'false' ? false : raw;
}

/**
 * Reads `SWITCHBOARD__A__B_C=value` variables into `{ a: { bC: value } }`. Values are strings (`true`
 * and `false` are booleans): a topic named `404` stays a string. Where the schema wants a number,
 * an array or an object, the config loader reads the value as JSON instead (see {@link loadBusConfig}).
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env, prefix = 'SWITCHBOARD__'): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(prefix) || raw === undefined) continue;
    const path = envPath(name, prefix);
    let node = result;
    path.forEach((segment, index) => {
      if (index === path.length - 1) node[segment] = envValue(raw);
      else node = (node[segment] ??= {}) as Record<string, unknown>;
    });
  }
  return result;
}

function envOrigins(env: NodeJS.ProcessEnv, prefix = 'SWITCHBOARD__'): Map<string, EnvOrigin> {
  const origins = new Map<string, EnvOrigin>();
  for (const [name, raw] of Object.entries(env)) if (name.startsWith(prefix) && raw !== undefined) origins.set(envPath(name, prefix).join('.'), { variable: name, raw });
  return origins;
}

function originFor(origins: ReadonlyMap<string, EnvOrigin>, path: string): [string, EnvOrigin] | undefined {
  for (const [originPath, origin] of origins) if (path === originPath || path.startsWith(`${originPath}.`)) return [originPath, origin];
  return undefined;
}

function setAt(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const segment of path.slice(0, -1)) node = node[segment] as Record<string, unknown>;
  node[path[path.length - 1]!] = value;
}

/**
 * Validates `input` with `schema`. A value an environment variable set that the schema refuses as a
 * string is read as JSON (a number, an array, an object) and validated again; errors name the
 * variable behind each refused value. `pathPrefix`: where `input` sits in the whole config.
 */
export function parseWithEnv<T>(schema: ZodType<T>, input: Record<string, unknown>, origins: ReadonlyMap<string, EnvOrigin>, pathPrefix = ''): T {
  const current = structuredClone(input);
  const coerced = new Set<string>();
  for (;;) {
    const parsed = schema.safeParse(current);
    if (parsed.success) return parsed.data;
    let changed = false;
    for (const issue of parsed.error.issues) {
      const found = originFor(origins, [pathPrefix, ...issue.path.map(String)].filter(Boolean).join('.'));
      if (!found || coerced.has(found[0])) continue;
      coerced.add(found[0]);
      let json: unknown;
      try {
        json = JSON.parse(found[1].raw);
      } catch {
        continue;
      }
      if (typeof json === 'string') continue;
      const relative = found[0].split('.').slice(pathPrefix ? pathPrefix.split('.').length : 0);
      if (relative.length === 0) continue;
      setAt(current, relative, json);
      changed = true;
    }
    if (!changed) throw toConfigError(parsed.error, pathPrefix, origins);
  }
}

/**
 * Reads a config file: `.json` with the built-in parser; anything else as YAML, which needs the
 * optional package `yaml` (npm install yaml); a JSON file needs nothing.
 */
export async function configFromFile(path: string): Promise<Record<string, unknown>> {
  const text = await readFile(path, 'utf8');
  let parse: (text: string) => unknown = JSON.parse;
  if (!path.endsWith('.json')) {
    try {
      parse = ((await import('yaml')) as { parse: (text: string) => unknown }).parse;
    } catch {
      throw new ConfigError([{ path: '', message: `${path}: reading YAML needs the package "yaml" (npm install yaml), or use a .json file` }]);
    }
  }
  try {
    return (parse(text) as Record<string, unknown> | null) ?? {};
  } catch (error) {
    throw new ConfigError([{ path: '', message: `cannot parse ${path}: ${describeFailure(error, 500).message}` }]);
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
 * Loads the bus config: file, then object, then environment (later wins), validated. Errors name the
 * config path, and the variable when one set the value.
 * With nothing configured, the transport is `memory`.
 */
export async function loadBusConfig(sources: ConfigSources = {}): Promise<BusConfig> {
  const env = sources.env === false ? {} : (sources.env ?? process.env);
  const file = sources.file ?? env.SWITCHBOARD_CONFIG;
  const fromFile = file ? await configFromFile(file) : {};
  const origins = envOrigins(env);
  const config = parseWithEnv(busConfigSchema, mergeConfig({ transport: { kind: 'memory' } }, fromFile, sources.object, configFromEnv(env)), origins);
  envOriginsByConfig.set(config, origins);
  return config;
}
