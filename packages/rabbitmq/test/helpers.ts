import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createRabbitTransport, type RabbitOptionsInput, type RabbitTransport } from '@switchboard/rabbitmq';

export const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** Test transports: queues they declare expire 10 minutes after last use, so test runs leave nothing behind. */
export function testTransport(options: RabbitOptionsInput = {}): Promise<RabbitTransport> {
  return createRabbitTransport({ url: RABBITMQ_URL, queueExpiresMs: 600_000, ...options } as never);
}

/** Runs rabbitmqctl (root on our machines). */
export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('rabbitmqctl', args, { timeout: 60_000 });
  return stdout;
}
