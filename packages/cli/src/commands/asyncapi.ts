/** `switchboard asyncapi`: the AsyncAPI 3.0 document of the topics an application defines. */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { asyncApiDocument, loadBusConfig, type AsyncApiDescription } from '@switchboard/core';
import { UsageError, type GlobalOptions } from '../options.js';

/** The broker address of a transport config, for the document's server (credentials are dropped by the generator). */
function hostOf(transport: Record<string, unknown>): string | undefined {
  for (const field of ['brokers', 'servers', 'url']) {
    const value = transport[field];
    const first = Array.isArray(value) ? value[0] : typeof value === 'string' ? value.split(',')[0] : undefined;
    if (typeof first === 'string' && first !== '') return first;
  }
  if (transport.kind === 'kafka') return process.env.KAFKA_BROKERS?.split(',')[0] ?? '127.0.0.1:9092';
  return undefined;
}

/** Adds the `asyncapi` command to `program`. */
export function addAsyncApiCommand(program: Command, global: () => GlobalOptions): void {
  program
    .command('asyncapi')
    .description("write the AsyncAPI 3.0 document of an application's topic contracts (server and bindings from the bus config)")
    .requiredOption('--module <file>', 'a JS module exporting `asyncapi` (or a default export): { title, version, publishes: [contracts], subscribes: [contracts or { contract, group }] }')
    .option('--out <file>', 'write the document here instead of stdout')
    .option('--yaml', 'YAML instead of JSON')
    .exitOverride()
    .action(async (options: { module: string; out?: string; yaml?: boolean }) => {
      const imported = (await import(pathToFileURL(resolve(options.module)).href)) as { asyncapi?: AsyncApiDescription; default?: AsyncApiDescription };
      const described = imported.asyncapi ?? imported.default;
      if (!described || typeof described.title !== 'string' || typeof described.version !== 'string')
        throw new UsageError(`--module ${options.module}: export \`asyncapi\` (or a default export) with at least { title, version, publishes?, subscribes? }`);
      const config = await loadBusConfig(global().config ? { file: global().config! } : {});
      const transport = config.transport as unknown as Record<string, unknown> & { kind: string };
      const host = described.server?.host ?? hostOf(transport);
      const partitions = typeof transport.partitions === 'number' ? transport.partitions : undefined;
      const document = asyncApiDocument({
        ...described,
        ...(host !== undefined && transport.kind !== 'memory' ? { server: described.server ?? { kind: transport.kind, host } } : {}),
        ...(described.partitions === undefined && partitions !== undefined ? { partitions } : {}),
      });
      let text = `${JSON.stringify(document, null, 2)}\n`;
      if (options.yaml) {
        const { stringify } = await import('yaml');
        text = stringify(document);
      }
      if (options.out) await writeFile(options.out, text);
      else process.stdout.write(text);
    });
}
