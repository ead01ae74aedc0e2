import { readFile } from 'node:fs/promises';
import { z, type ZodType } from 'zod';
import { DELIVERY_GUARANTEES } from '../ports/capabilities.js';
import { ConfigError } from '../ports/errors.js';
import { configErrorFromZod } from '../kit/parse-options.js';
import { describeFailure } from '../util/failure.js';
import { subscriptionPolicyShape } from '../ports/subscribe-options.js';
import { envelopeSchema } from '../ports/envelope.js';

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
      .object({
        guarantee: z.enum(DELIVERY_GUARANTEES as [string, ...string[]]).optional(),
        noReceivers: z.enum(['ignore', 'warn', 'reject']).optional(),
        /** What travels with each message besides key, headers and payload (`{ id: 'given' }` leaves generated ids off the wire). */
        envelope: envelopeSchema.optional(),
      })
      .strict()
      .default({}),
    defaults: z.object(subscriptionPolicyShape).strict().default({}),
    subscriptions: z.record(z.string(), subscriptionConfigSchema).default({}),
  })
  .strict();

export type BusConfig = z.output<typeof busConfigSchema>;
export type BusConfigInput = z.input<typeof busConfigSchema>;
export type SubscriptionConfig = z.output<typeof subscriptionConfigSchema>;

/** Turns zod issues into a {@link ConfigError} naming each field path and the variables that set the values. */
export function toConfigError(error: z.ZodError, pathPrefix = '', origins: ReadonlyMap<string, EnvOrigin> = new Map()): ConfigError {
  return configErrorFromZod(error, pathPrefix, (path) => originsUnder(origins, path));
}

/** Validates a config object. Throws {@link ConfigError} naming every bad field. */
export function parseBusConfig(input: unknown): BusConfig {
  const parsed = busConfigSchema.safeParse(input);
  if (!parsed.success) throw toConfigError(parsed.error);
  return parsed.data;
}

/**
 * `config` validated: a config {@link loadBusConfig} returned is taken as it is (it keeps the
 * environment variables behind its values, for error messages); anything else, a plain object from
 * the application included, is validated here ({@link ConfigError} naming every bad field).
 */
export function checkedBusConfig(config: BusConfig | BusConfigInput): BusConfig {
  return envOriginsByConfig.has(config) ? (config as BusConfig) : parseBusConfig(config);
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

/** Keys that name an object's machinery, not config: refused everywhere, from every source. */
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** An own, enumerable property of `node` (never an inherited member such as `toString`). */
function ownValue(node: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(node, key) ? node[key] : undefined;
}

/**
 * Reads `SWITCHBOARD__A__B_C=value` variables into `{ a: { bC: value } }`. Values are strings (`true`
 * and `false` are booleans): a topic named `404` stays a string. Where the schema wants a number,
 * an array or an object, the config loader reads the value as JSON instead (see {@link loadBusConfig}).
 *
 * Environment variables are hostile input: only own properties are walked, a path segment that names
 * object machinery (`__proto__`, `constructor`, `prototype`) is refused, and a variable that sets a
 * value where another one needs an object (`…__DEFAULTS=5` beside `…__DEFAULTS__CONCURRENCY=3`) is a
 * {@link ConfigError} naming both variables. Nothing outside the returned object is ever written.
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env, prefix = 'SWITCHBOARD__'): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  const setBy = new Map<string, string>(); // config path -> variable, to name both sides of a clash
  const issues: { path: string; message: string }[] = [];
  // Shorter paths first, so a clash is always reported the same way whatever order the env has.
  const variables = Object.entries(env)
    .filter((entry): entry is [string, string] => entry[0].startsWith(prefix) && entry[1] !== undefined)
    .sort(([a], [b]) => a.split('__').length - b.split('__').length || (a < b ? -1 : 1));
  for (const [name, raw] of variables) {
    const path = envPath(name, prefix);
    const label = path.join('.');
    const forbidden = path.find((segment) => FORBIDDEN_KEYS.has(segment) || segment === '');
    if (forbidden !== undefined) {
      issues.push({ path: label, message: `${forbidden === '' ? 'an empty path segment' : `"${forbidden}"`} is not a config field (set by ${name})` });
      continue;
    }
    let node: Record<string, unknown> | undefined = result;
    for (let index = 0; node !== undefined && index < path.length - 1; index++) {
      const segment = path[index]!;
      const existing: unknown = ownValue(node, segment);
      if (existing === undefined) node = node[segment] = {};
      else if (isPlainObject(existing)) node = existing;
      else {
        const at = path.slice(0, index + 1).join('.');
        issues.push({ path: at, message: `${setBy.get(at)} sets a value where ${name} needs an object: set one or the other` });
        node = undefined;
      }
    }
    if (node === undefined) continue;
    const last = path[path.length - 1]!;
    if (isPlainObject(ownValue(node, last))) {
      issues.push({ path: label, message: `${name} sets a value where other variables (${label}.*) set fields: set one or the other` });
      continue;
    }
    node[last] = envValue(raw);
    setBy.set(label, name);
  }
  if (issues.length > 0) throw new ConfigError(issues);
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

/** A deep copy of plain objects and arrays (other values shared), for coercing env values without touching `input`. */
function cloneData<T>(value: T): T {
  if (Array.isArray(value)) return value.map(cloneData) as T;
  if (!isPlainObject(value)) return value;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) copy[key] = cloneData(value[key]);
  return copy as T;
}

/** The variables that set `path` or anything inside it (an unknown field set as `…__FIELD__X`). */
function originsUnder(origins: ReadonlyMap<string, EnvOrigin>, path: string): string[] {
  const found = originFor(origins, path);
  if (found) return [found[1].variable];
  return [...origins].filter(([originPath]) => originPath.startsWith(`${path}.`)).map(([, origin]) => origin.variable);
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
  const current = cloneData(input);
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
 * optional package `yaml` (npm install yaml); a JSON file needs nothing. The file must hold an object
 * (a list or a scalar at the top is a {@link ConfigError}, never silently ignored); an empty file is
 * `{}`. Every problem (missing file, a directory, a parse error) is a ConfigError naming the file.
 */
export async function configFromFile(path: string): Promise<Record<string, unknown>> {
  const fail = (message: string) => new ConfigError([{ path: '', message: `config file ${path}: ${message}` }]);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string } | undefined)?.code;
    throw fail(code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a file' : code === 'EACCES' ? 'permission denied' : describeFailure(error, 500).message);
  }
  let parse: (text: string) => unknown = JSON.parse;
  if (!path.endsWith('.json')) {
    try {
      parse = ((await import('yaml')) as { parse: (text: string) => unknown }).parse;
    } catch {
      throw fail('reading YAML needs the package "yaml" (npm install yaml), or use a .json file');
    }
  }
  let parsed: unknown;
  try {
    parsed = parse(text);
  } catch (error) {
    throw fail(`cannot parse: ${describeFailure(error, 500).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isPlainObject(parsed)) throw fail(`must hold an object of config fields at the top, not ${Array.isArray(parsed) ? 'a list' : `a ${typeof parsed}`}`);
  assertConfigData(parsed, `config file ${path}`);
  return parsed;
}

/**
 * Refuses what is not config data anywhere in `value`: keys naming object machinery (`__proto__`,
 * `constructor`, `prototype`, as "unknown field"), functions (steps, codecs, hooks belong in code) and
 * cycles. `source` says where the value came from in the error.
 */
export function assertConfigData(value: unknown, source: string): void {
  const issues: { path: string; message: string }[] = [];
  const seen = new Set<object>();
  const walk = (node: unknown, path: string[]) => {
    const at = path.join('.');
    if (typeof node === 'function') {
      issues.push({ path: at, message: `${source}: a function is not config data; steps, codecs, classify and hooks belong in code (bus.use(...), subscribe options)` });
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    if (seen.has(node)) {
      issues.push({ path: at, message: `${source}: a cycle (the value contains itself)` });
      return;
    }
    seen.add(node);
    for (const key of Object.keys(node)) {
      if (FORBIDDEN_KEYS.has(key)) issues.push({ path: at, message: `unknown field(s) "${key}" (${source})` });
      else walk((node as Record<string, unknown>)[key], [...path, key]);
    }
    seen.delete(node);
  };
  walk(value, []);
  if (issues.length > 0) throw new ConfigError(issues);
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
      if (FORBIDDEN_KEYS.has(key)) continue; // refused with a message by assertConfigData; never a prototype write
      const existing = ownValue(out, key);
      out[key] = isPlainObject(value) && isPlainObject(existing) ? mergeConfig(existing, value) : value;
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
  if (sources.object !== undefined) {
    if (!isPlainObject(sources.object))
      throw new ConfigError([{ path: '', message: `the config object must be an object of config fields, not ${Array.isArray(sources.object) ? 'a list' : typeof sources.object}` }]);
    assertConfigData(sources.object, 'the config object');
  }
  const origins = envOrigins(env);
  const config = parseWithEnv(busConfigSchema, mergeConfig({ transport: { kind: 'memory' } }, fromFile, sources.object, configFromEnv(env)), origins);
  envOriginsByConfig.set(config, origins);
  return config;
}
