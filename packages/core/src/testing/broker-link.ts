import { createServer, connect, type Server, type Socket } from 'node:net';

const DEFAULT_PORTS: Record<string, number> = { amqp: 5672, amqps: 5671, redis: 6379, rediss: 6379, nats: 4222, mqtt: 1883, mqtts: 8883, postgres: 5432, postgresql: 5432 };

/**
 * How a {@link BrokerLink} fails: `refuse` (new connections refused, open ones reset: a broker that
 * stopped), `drop` (connections accepted, then closed at once: a proxy or load balancer whose broker
 * is gone), `silent` (open connections stay open and carry nothing; new ones still reach the broker,
 * as a client that reconnects would find it again after a partition).
 */
export type LinkFailure = 'refuse' | 'drop' | 'silent';

/**
 * A TCP relay on loopback between a client and a real broker, that a test can cut: the client under
 * test connects to {@link port} and reaches the broker at `target`. Bytes pass through unchanged
 * until {@link cut}.
 */
export class BrokerLink {
  private readonly pairs = new Set<[Socket, Socket]>();
  private failure: LinkFailure | undefined;

  private constructor(
    private readonly server: Server,
    /** The loopback port the client under test connects to. */
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {
    server.on('connection', (client) => this.relay(client));
  }

  /** Opens a relay to `target` on a free loopback port. */
  static async open(target: { host: string; port: number }): Promise<BrokerLink> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    return new BrokerLink(server, (server.address() as { port: number }).port, target);
  }

  /** The host and port a broker URL (amqp, redis, nats, mqtt, postgres) points at, with the protocol's default port. */
  static addressOf(url: string): { host: string; port: number } {
    const parsed = new URL(url);
    const port = Number(parsed.port) || DEFAULT_PORTS[parsed.protocol.replace(/:$/, '')];
    if (!port) throw new Error(`BrokerLink: no port in ${parsed.protocol} URL and no default for the protocol`);
    return { host: parsed.hostname, port };
  }

  /** `url` with its host and port replaced by this relay's (credentials, path and query kept). */
  urlThrough(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  /** Fails the link from now on (see {@link LinkFailure}). */
  cut(failure: LinkFailure): void {
    this.failure = failure;
    if (failure === 'refuse') this.server.close();
    for (const [client, broker] of this.pairs) {
      if (failure === 'silent') {
        client.unpipe(broker);
        broker.unpipe(client);
        client.pause();
        broker.pause();
      } else {
        client.destroy();
        broker.destroy();
      }
    }
  }

  /** Closes the relay and every connection through it. */
  async close(): Promise<void> {
    for (const [client, broker] of this.pairs) {
      client.destroy();
      broker.destroy();
    }
    if (this.server.listening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private relay(client: Socket): void {
    if (this.failure === 'drop' || this.failure === 'refuse') {
      client.destroy();
      return;
    }
    const broker = connect(this.target.port, this.target.host);
    const pair: [Socket, Socket] = [client, broker];
    this.pairs.add(pair);
    const end = () => {
      client.destroy();
      broker.destroy();
      this.pairs.delete(pair);
    };
    for (const socket of pair) socket.on('error', end).on('close', end);
    client.pipe(broker);
    broker.pipe(client);
  }
}
