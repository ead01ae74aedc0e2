import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startTcpProxy, type TcpProxy } from '@switchboard/core/testing';
import { createNatsTransport, type NatsOptionsInput } from '@switchboard/nats';

export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** A transport on the test server: its own stream and prefix per test file, short waits so tests see redeliveries in seconds. */
export function testTransport(options: NatsOptionsInput = {}) {
  return createNatsTransport({ servers: NATS_URL, stream: 'SB_TEST', subjectPrefix: 'sbtest', fetchExpiresMs: 1000, maxAgeMs: 3_600_000, ...options });
}

const answers = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => (socket.destroy(), resolve(true)));
    socket.on('error', () => resolve(false));
  });

/**
 * A nats-server of the test's own (loopback, a free port, JetStream in its own directory), so an
 * outage test stops a server no other test uses. `stop()` is SIGTERM (JetStream data stays on disk),
 * `start()` brings it back on the same port and data; `dispose()` stops it and removes its data.
 */
export interface OwnNats {
  readonly url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  dispose(): Promise<void>;
}

export async function startOwnNats(): Promise<OwnNats> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-nats-'));
  let server: ChildProcess | undefined;
  const start = async () => {
    server = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (!(await answers(port))) {
      if (Date.now() > deadline) throw new Error(`own nats-server on port ${port} did not answer within 10 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const stop = async () => {
    const running = server;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    start,
    stop,
    dispose: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A loopback TCP proxy to the server (see `startTcpProxy`), with the URL to give the client. */
export async function startProxy(target: URL): Promise<TcpProxy & { url: string }> {
  const proxy = await startTcpProxy(target.hostname, Number(target.port));
  return Object.assign(proxy, { url: `nats://127.0.0.1:${proxy.port}` });
}
