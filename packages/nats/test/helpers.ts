import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startOwnServer, startTcpProxy, type OwnServer, type TcpProxy } from '@switchboard/core/testing';
import { createNatsTransport, type NatsOptionsInput } from '@switchboard/nats';

export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** A transport on the test server: its own stream and prefix per test file, short waits so tests see redeliveries in seconds. */
export function testTransport(options: NatsOptionsInput = {}) {
  return createNatsTransport({ servers: NATS_URL, stream: 'SB_TEST', subjectPrefix: 'sbtest', fetchExpiresMs: 1000, maxAgeMs: 3_600_000, ...options });
}

/**
 * A nats-server of the test's own (loopback, a free port, JetStream in its own directory), so an
 * outage test stops a server no other test uses. `stop()` is SIGTERM (JetStream data stays on disk),
 * `start()` brings it back on the same port and data; `dispose()` stops it and removes its data.
 */
export async function startOwnNats(): Promise<OwnServer & { url: string }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-nats-'));
  const server = await startOwnServer({ command: 'nats-server', args: ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], port, dir });
  return Object.assign(server, { url: `nats://127.0.0.1:${port}` });
}

/** A loopback TCP proxy to the server (see `startTcpProxy`), with the URL to give the client. */
export async function startProxy(target: URL): Promise<TcpProxy & { url: string }> {
  const proxy = await startTcpProxy(target.hostname, Number(target.port));
  return Object.assign(proxy, { url: `nats://127.0.0.1:${proxy.port}` });
}
