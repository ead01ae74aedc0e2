import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Core is layered: a folder imports only from folders of a lower layer (or from itself), and no import
 * circle exists anywhere. Read from the sources' own import statements, so a change that breaks the
 * layering fails here, not in a picture someone may or may not look at.
 */
const LAYERS: Record<string, number> = {
  util: 0, // helpers that import nothing
  ports: 1, // the vocabulary: message, ports, capabilities, events, health, errors, codec, contract, retry policy
  kit: 2, // helpers on the vocabulary for the pipeline and transports (scheduler, connection state, sizes, capability checks)
  observability: 2,
  pipeline: 3,
  bus: 4,
  config: 4,
  transports: 5,
  resilience: 5,
  operations: 5,
  '.': 6, // the composition root (from-config) and the barrel
  testing: 7,
};

const src = fileURLToPath(new URL('../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []));
}

const layerOf = (file: string) => relative(src, file).split('/').slice(0, -1)[0] ?? '.';

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)\.js'/g)].map((m) => normalize(join(dirname(file), `${m[1]}.ts`)));
}

describe('core layers', () => {
  const files = sources(src);
  const graph = new Map(files.map((file) => [file, importsOf(file)]));

  it('puts every source folder in a layer', () => {
    expect(files.map(layerOf).filter((layer) => !(layer in LAYERS))).toEqual([]);
  });

  it('imports only downwards: no folder imports from a folder of its own layer or above', () => {
    const upward: string[] = [];
    for (const [file, targets] of graph) {
      for (const target of targets) {
        const [from, to] = [layerOf(file), layerOf(target)];
        if (from !== to && LAYERS[to]! >= LAYERS[from]!) upward.push(`${relative(src, file)} -> ${relative(src, target)}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('has no import circle', () => {
    const circles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        circles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(src, f)).join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const target of graph.get(file) ?? []) visit(target, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect(circles).toEqual([]);
  });
});

describe('two surfaces', () => {
  it('keeps internals out of the application API; the transport SPI has them', async () => {
    const app = await import('@switchboard/core');
    const spi = await import('@switchboard/core/transport');
    const internals = [
      'safeGet',
      'truncate',
      'composeSteps',
      'InFlight',
      'hashKey',
      'KeyedScheduler',
      'ObserverSet',
      'TransportDelivery',
      'ConnectionState',
      'withDeadline',
      'parseOptions',
      'createDeliveryProcessor',
      'buildDeadLetter',
    ];
    expect(internals.filter((name) => name in app)).toEqual([]);
    expect(internals.filter((name) => !(name in spi))).toEqual([]);
    // What an application needs is at the root.
    for (const name of [
      'createBus',
      'createBusFromConfig',
      'loadBusConfig',
      'createMemoryTransport',
      'NonRetryableError',
      'defineTopic',
      'consumeDeadLetters',
      'shutdownBus',
      'CountingObserver',
      'DeadLetterHeaders',
    ])
      expect(app).toHaveProperty(name);
  });
});
