import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
// Inside the examples workspace package, so the snippets resolve @switchboard/* as an application would (built .d.ts).
const dir = `${root}examples/.readme-check`;

/** What the README's snippets take for granted: the imports and a few values an application has. */
const PREAMBLE = `import 'reflect-metadata';
import { inject, injectable } from 'inversify';
import type { Pool } from 'pg';
import type { Redis } from 'ioredis';
import { FallbackRelay, MemoryFallbackStore, consumeDeadLetters, createBus, createBusFromConfig, loadBusConfig, type Handler, type Message, type OutgoingMessage, type PublishReceipt, type Publisher, type SubscribeOptions, type Subscriber, type Subscription, type TopicContract, type Transport } from '@switchboard/core';
import { kafkaTransport } from '@switchboard/kafka';
import { rabbitmqTransport } from '@switchboard/rabbitmq';
import { RedisFallbackStore, redisPubSubTransport } from '@switchboard/redis-pubsub';
import { redisStreamsTransport } from '@switchboard/redis-streams';
import { PostgresFallbackStore, PostgresParkingLot } from '@switchboard/postgres';
import { PrometheusObserver, startMetricsServer } from '@switchboard/prometheus';
import { withFallback } from '@switchboard/resilience';
import { SWITCHBOARD, createSwitchboardContainer } from '@switchboard/inversify';
import { Injectable } from '@nestjs/common';
import { InjectPublisher, Subscribe } from '@switchboard/nestjs';
import { z } from 'zod';
declare const pool: Pool;
declare const redis: Redis;
declare const kafka: Transport;
declare const subscriber: Subscriber;
declare const publisher: Publisher;
declare const handler: Handler<unknown>;
declare const OrderPlaced: TopicContract<{ orderId: string; email: string; total: number }>;
`;

describe('README', () => {
  it('every TypeScript block compiles (strict, against the built packages)', async () => {
    // The README and the reference pages it links: every TypeScript block compiles.
    const pages = ['README.md', 'docs/architecture.md', 'docs/failover.md', 'docs/operations.md', 'docs/configuration.md', 'docs/benchmarks.md'];
    const readme = (await Promise.all(pages.map((page) => readFile(`${root}${page}`, 'utf8')))).join('\n');
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBeGreaterThan(3);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    for (const [i, block] of blocks.entries()) {
      // Names the block declares or imports itself (the ports are shown as interfaces) are not taken from the preamble.
      const own = new Set([
        ...[...block.matchAll(/(?:interface|class|type|const|function)\s+([A-Za-z_]\w*)/g)].map((m) => m[1]!),
        ...[...block.matchAll(/^import \{([^}]*)\} from/gm)].flatMap((m) => m[1]!.split(',').map((n) => n.trim().replace(/^type /, ''))),
      ]);
      const preamble = PREAMBLE.split('\n')
        .map((line) =>
          line.replace(
            /\{([^}]*)\}/,
            (_, names: string) =>
              `{ ${names
                .split(',')
                .map((n) => n.trim())
                .filter((n) => n && !own.has(n.replace(/^type /, '')))
                .join(', ')} }`,
          ),
        )
        .filter((line) => !/\{\s*\}/.test(line))
        .filter((line) => !own.has(/^declare const (\w+)/.exec(line)?.[1] ?? ''))
        .join('\n');
      await writeFile(`${dir}/block-${i + 1}.ts`, `${preamble}\n${block}\nexport {};\n`);
    }
    await writeFile(
      `${dir}/tsconfig.json`,
      JSON.stringify({
        extends: '../../tsconfig.base.json',
        compilerOptions: {
          noEmit: true,
          composite: false,
          declaration: false,
          declarationMap: false,
          skipLibCheck: false,
          experimentalDecorators: true,
          emitDecoratorMetadata: true,
          noUnusedLocals: false,
        },
        include: ['*.ts'],
      }),
    );
    const tsc = fileURLToPath(new URL('../../../node_modules/typescript/bin/tsc', import.meta.url));
    const result = await promisify(execFile)(process.execPath, [tsc, '-p', dir], { cwd: dir }).then(
      () => ({ ok: true, output: '' }),
      (error: { stdout?: string }) => ({ ok: false, output: error.stdout ?? String(error) }),
    );
    expect(result.output).toBe('');
    expect(result.ok).toBe(true);
    await rm(dir, { recursive: true, force: true });
  }, 120_000);
});
