// Generates the config reference from the zod schemas (run after `tsc -b`):
//   docs/switchboard.schema.json  JSON Schema of a config file (editor completion: "$schema" or yaml-language-server)
//   docs/options.md               every field: type, default, bounds, and the doc comment from the source
// `node scripts/config-reference.mjs --check` exits 1 when the committed files are out of date (a test runs it).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { busConfigSchema, retryPolicySchema } from '@switchboard/core';
import { kafkaOptionsSchema } from '@switchboard/kafka';
import { rabbitOptionsSchema } from '@switchboard/rabbitmq';
import { redisOptionsSchema } from '@switchboard/redis-pubsub';
import { redisStreamsOptionsSchema } from '@switchboard/redis-streams';
import { natsOptionsSchema } from '@switchboard/nats';
import { postgresQueueOptionsSchema } from '@switchboard/postgres';
import { mqttOptionsSchema } from '@switchboard/mqtt';

const root = new URL('..', import.meta.url);
const file = (path) => fileURLToPath(new URL(path, root));

/** Doc comments of `field: z...` lines in a source file, by field name (the first one wins). */
function fieldComments(path) {
  const source = readFileSync(file(path), 'utf8');
  const comments = new Map();
  for (const match of source.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*(?:readonly\s+)?([A-Za-z]+)\??:/g)) {
    const text = match[1]
      .split('\n')
      .map((line) => line.replace(/^\s*\*\s?/, '').trim())
      .filter(Boolean)
      .join(' ');
    if (!comments.has(match[2])) comments.set(match[2], text);
  }
  return comments;
}

const transports = [
  { kind: 'memory', schema: z.object({}).strict(), comments: new Map() },
  { kind: 'kafka', schema: kafkaOptionsSchema, comments: fieldComments('packages/kafka/src/options.ts') },
  { kind: 'rabbitmq', schema: rabbitOptionsSchema, comments: fieldComments('packages/rabbitmq/src/options.ts') },
  { kind: 'redis', schema: redisOptionsSchema, comments: fieldComments('packages/redis-pubsub/src/options.ts') },
  { kind: 'redis-streams', schema: redisStreamsOptionsSchema, comments: fieldComments('packages/redis-streams/src/options.ts') },
  { kind: 'nats', schema: natsOptionsSchema, comments: fieldComments('packages/nats/src/options.ts') },
  { kind: 'postgres', schema: postgresQueueOptionsSchema, comments: fieldComments('packages/postgres/src/queue/options.ts') },
  { kind: 'mqtt', schema: mqttOptionsSchema, comments: fieldComments('packages/mqtt/src/options.ts') },
];
const coreComments = new Map([...fieldComments('packages/core/src/ports/retry.ts'), ...fieldComments('packages/core/src/ports/ports.ts'), ...fieldComments('packages/core/src/bus/bus.ts')]);

const toJson = (schema) => z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });

// The whole file: core fields, with `transport` one of the first-party kinds (other kinds are allowed:
// a registered third-party adapter validates its own options).
const bus = toJson(busConfigSchema);
bus.properties.transport = {
  description: 'The transport: `kind` picks a registered adapter; the other fields are its options.',
  anyOf: [
    ...transports.map(({ kind, schema }) => {
      const options = toJson(schema);
      return { ...options, properties: { kind: { const: kind }, ...options.properties }, required: ['kind', ...(options.required ?? [])] };
    }),
    { type: 'object', properties: { kind: { type: 'string', not: { enum: transports.map((t) => t.kind) } } }, required: ['kind'], additionalProperties: true },
  ],
};
const jsonSchema = { $schema: 'https://json-schema.org/draft/2020-12/schema', title: 'Switchboard config', ...bus };
delete jsonSchema.$schema;
const schemaText = `${JSON.stringify({ $schema: 'https://json-schema.org/draft/2020-12/schema', ...jsonSchema }, null, 2)}\n`;

function describe(property) {
  const parts = [];
  const type =
    property.type ??
    (property.anyOf
      ? property.anyOf.map((a) => a.type ?? (a.const !== undefined ? JSON.stringify(a.const) : a.enum ? a.enum.map((v) => JSON.stringify(v)).join(' \\| ') : 'object')).join(' \\| ')
      : property.enum
        ? property.enum.map((v) => JSON.stringify(v)).join(' \\| ')
        : property.const !== undefined
          ? JSON.stringify(property.const)
          : 'object');
  const bounds = [];
  if (property.minimum !== undefined) bounds.push(`≥ ${property.minimum}`);
  if (property.maximum !== undefined) bounds.push(`≤ ${property.maximum}`);
  if (property.minLength !== undefined) bounds.push(`length ≥ ${property.minLength}`);
  if (property.pattern !== undefined) bounds.push(`pattern \`${property.pattern}\``);
  if (property.enum) parts.push(property.enum.map((v) => JSON.stringify(v)).join(' \\| '));
  else parts.push(String(type));
  return { type: parts.join(''), bounds: bounds.join(', '), def: property.default !== undefined ? `\`${JSON.stringify(property.default)}\`` : '' };
}

function table(title, schema, comments, prefix) {
  const json = toJson(schema);
  const rows = Object.entries(json.properties ?? {}).map(([name, property]) => {
    const { type, bounds, def } = describe(property);
    const comment = (comments.get(name) ?? '').replace(/\|/g, '\\|');
    return `| \`${prefix}${name}\` | ${type} | ${def} | ${bounds} | ${comment} |`;
  });
  return [`### ${title}`, '', '| field | type | default | bounds | meaning |', '|---|---|---|---|---|', ...rows, ''].join('\n');
}

const policy = busConfigSchema.shape.defaults.unwrap();
const markdown = [
  '# Switchboard options reference',
  '',
  'Generated from the zod schemas by `node scripts/config-reference.mjs` (do not edit by hand). A config file',
  'may name `docs/switchboard.schema.json` for editor completion. Environment variables',
  '`SWITCHBOARD__A__B_C` set the field `a.bC`.',
  '',
  table('publish', busConfigSchema.shape.publish.unwrap(), coreComments, 'publish.'),
  table('defaults (and each of subscriptions.&lt;name&gt;)', policy, coreComments, 'defaults.'),
  table('retry (defaults.retry, subscriptions.&lt;name&gt;.retry)', retryPolicySchema, coreComments, 'retry.'),
  ...transports.filter((t) => t.kind !== 'memory').map(({ kind, schema, comments }) => table(`transport (kind: ${kind})`, schema, comments, 'transport.')),
].join('\n');

const outputs = [
  [file('docs/switchboard.schema.json'), schemaText],
  [file('docs/options.md'), `${markdown}\n`],
];
if (process.argv.includes('--check')) {
  const stale = outputs.filter(([path, text]) => {
    try {
      return readFileSync(path, 'utf8') !== text;
    } catch {
      return true;
    }
  });
  if (stale.length > 0) {
    console.error(`out of date: ${stale.map(([path]) => path).join(', ')}; run node scripts/config-reference.mjs`);
    process.exit(1);
  }
  console.log('config reference up to date');
} else {
  for (const [path, text] of outputs) writeFileSync(path, text);
  console.log(`wrote ${outputs.map(([path]) => path).join(', ')}`);
}
