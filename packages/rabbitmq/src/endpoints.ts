import type { Options } from 'amqplib';
import { redactUrl } from '@switchboard/core/transport';

/**
 * The broker addresses of one transport. With one URL, amqplib gets that string. With several (the
 * nodes of a cluster), amqplib gets a connection object whose fields follow the current endpoint, and
 * {@link advance} moves to the next one: the transport advances when a connection attempt fails or an
 * established connection is lost, so every reconnect tries the next node, round-robin.
 */
export class Endpoints {
  private index = 0;
  private readonly parsed: readonly Options.Connect[];

  /** `heartbeatSeconds`: asked for on every URL that does not ask for a heartbeat itself. */
  constructor(
    readonly urls: readonly string[],
    private readonly heartbeatSeconds: number,
  ) {
    this.parsed = urls.map((url) => ({ heartbeat: heartbeatSeconds, ...toConnectOptions(url) }));
  }

  get count(): number {
    return this.urls.length;
  }

  /** What amqplib connects to (read at every connection attempt). */
  target(): string | Options.Connect {
    if (this.urls.length === 1) return withHeartbeat(this.urls[0]!, this.heartbeatSeconds);
    const current = () => this.parsed[this.index]!;
    return {
      get protocol() {
        return current().protocol;
      },
      get hostname() {
        return current().hostname;
      },
      get port() {
        return current().port;
      },
      get username() {
        return current().username;
      },
      get password() {
        return current().password;
      },
      get vhost() {
        return current().vhost;
      },
      get heartbeat() {
        return current().heartbeat;
      },
      get frameMax() {
        return current().frameMax;
      },
      get locale() {
        return current().locale;
      },
    } as Options.Connect;
  }

  advance(): void {
    this.index = (this.index + 1) % this.parsed.length;
  }

  /** host:port of the endpoint connected to (or tried next), for health reports; never credentials. */
  current(): string {
    const endpoint = this.parsed[this.index]!;
    return `${endpoint.hostname}:${endpoint.port ?? (endpoint.protocol === 'amqps' ? 5671 : 5672)}`;
  }

  /** The URLs with passwords masked, for error messages. */
  describe(): string {
    return this.urls.map(redactUrl).join(', ');
  }
}

/** The amqplib connection object of an amqp(s):// URL (the same fields amqplib reads from a URL string). */
function toConnectOptions(url: string): Options.Connect {
  const parts = new URL(url);
  const number = (name: string) => {
    const value = parts.searchParams.get(name);
    return value === null ? undefined : Number(value);
  };
  const options: Options.Connect = {
    protocol: parts.protocol.replace(/:$/, ''),
    hostname: parts.hostname.replace(/^\[|\]$/g, ''),
    ...(parts.port ? { port: Number(parts.port) } : {}),
    // amqplib defaults both to guest only when both are absent, as for a URL string.
    ...(parts.username || parts.password ? { username: decodeURIComponent(parts.username), password: decodeURIComponent(parts.password) } : {}),
    // amqplib unescapes the vhost itself.
    vhost: parts.pathname.length > 1 ? parts.pathname.slice(1) : '/',
  };
  const heartbeat = number('heartbeat');
  const frameMax = number('frameMax');
  const locale = parts.searchParams.get('locale');
  return { ...options, ...(heartbeat !== undefined ? { heartbeat } : {}), ...(frameMax !== undefined ? { frameMax } : {}), ...(locale !== null ? { locale } : {}) };
}

/** `url` asking for `seconds` of heartbeat, unless it asks for a heartbeat itself (its `heartbeat` parameter wins). */
function withHeartbeat(url: string, seconds: number): string {
  if (new URL(url).searchParams.has('heartbeat')) return url;
  const [base, fragment] = url.split('#', 2);
  return `${base}${base!.includes('?') ? '&' : '?'}heartbeat=${seconds}${fragment !== undefined ? `#${fragment}` : ''}`;
}
