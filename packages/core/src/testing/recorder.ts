import { randomUUID } from 'node:crypto';
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';

/**
 * Test helpers that wait on events, never on sleeps: a recorder resolves its waiters the moment the
 * awaited count is reached and rejects with what it saw when the bound runs out.
 */
export class Recorder<T> {
  readonly items: T[] = [];
  private waiters: { n: number; resolve: () => void }[] = [];

  add(item: T): void {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => {
      if (this.items.length < w.n) return true;
      w.resolve();
      return false;
    });
  }

  get count(): number {
    return this.items.length;
  }

  /** Resolves when at least `n` items were recorded; rejects after `timeoutMs` naming what arrived. */
  waitFor(n: number, timeoutMs: number, what = 'items'): Promise<T[]> {
    if (this.items.length >= n) return Promise.resolve(this.items);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${n} ${what}; got ${this.items.length}`));
      }, timeoutMs);
      const waiter = {
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve(this.items);
        },
      };
      this.waiters.push(waiter);
    });
  }
}

/** Records each non-empty line of `stream` (e.g. a child process's stdout) as it arrives, except the lines `skip` names. */
export function recordLines(stream: NodeJS.ReadableStream, skip: readonly string[] = []): Recorder<string> {
  const lines = new Recorder<string>();
  let buffered = '';
  stream.on('data', (chunk: Buffer | string) => {
    buffered += chunk.toString();
    const complete = buffered.split('\n');
    buffered = complete.pop()!;
    for (const line of complete) if (line && !skip.includes(line)) lines.add(line);
  });
  return lines;
}

/** Polls `predicate` on each event-loop turn (no fixed sleeps) until true; rejects after `timeoutMs`. */
export async function waitUntil(predicate: () => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A unique, broker-safe name: letters, digits, dots and dashes. */
export function uniqueName(prefix: string): string {
  return `${prefix}.${randomUUID().slice(0, 8)}`;
}

/** A promise you open from outside. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Polls an async `probe` until it returns a value (not undefined); rejects after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what = 'a value'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A free TCP port on loopback, chosen by the OS (for a server a test starts of its own). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A loopback TCP proxy a test puts between a client and its server (see {@link startTcpProxy}). */
export interface TcpProxy {
  /** The proxy's own loopback port: point the client at 127.0.0.1 and this port. */
  readonly port: number;
  /** Destroys every connection through the proxy (a connection kill: the server stays up, the client must reconnect); returns how many sockets it cut. */
  cut(): number;
  /** Stops the proxy and cuts what goes through it. */
  close(): Promise<void>;
}

/** Starts a {@link TcpProxy} to `host:port` on a free loopback port. */
export async function startTcpProxy(host: string, port: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection({ host, port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut: () => {
      const count = sockets.size;
      for (const s of sockets) s.destroy();
      return count;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A broker process a test runs for itself (see {@link startOwnServer}). */
export interface OwnServer {
  /** Starts it again on the same port and data; resolves once it answers. */
  start(): Promise<void>;
  /** Stops it (its data stays); resolves once the process exited. */
  stop(): Promise<void>;
  /** Stops it and removes its directory. */
  dispose(): Promise<void>;
}

/** Whether something accepts TCP connections on loopback `port`. */
export function portAnswers(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => (socket.destroy(), resolve(true)));
    socket.on('error', () => resolve(false));
  });
}

/**
 * Runs `command args` as a server of the test's own, so an outage test stops a server no other
 * test uses: started at once, and by `start()` again, each time waiting (10 s at most) until
 * `ready()` (default: the port accepts connections); stopped by `stopWith()` (default SIGTERM),
 * waiting for the exit; `dispose()` also removes `dir`.
 */
export async function startOwnServer(options: {
  readonly command: string;
  readonly args: readonly string[];
  readonly port: number;
  readonly dir: string;
  readonly ready?: () => Promise<boolean>;
  readonly stopWith?: (server: ChildProcess) => Promise<void>;
}): Promise<OwnServer> {
  const ready = options.ready ?? (() => portAnswers(options.port));
  let server: ChildProcess | undefined;
  const start = async () => {
    server = spawn(options.command, [...options.args], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (!(await ready())) {
      if (Date.now() > deadline) throw new Error(`own ${options.command} on port ${options.port} did not answer within 10 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const stop = async () => {
    const running = server;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    if (options.stopWith) await options.stopWith(running);
    else running.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    start,
    stop,
    dispose: async () => {
      await stop();
      rmSync(options.dir, { recursive: true, force: true });
    },
  };
}
