/** State of one subscription. */
export interface SubscriptionHealth {
  readonly topic: string;
  readonly group?: string;
  /** `live`: receiving; `interrupted`: the transport lost its broker connection at `since` (ms epoch). */
  readonly state: 'live' | 'interrupted';
  readonly since?: number;
  /**
   * Messages of the subscription's group not yet committed, summed over the partitions this member
   * reads (Kafka: high watermark minus committed offset, as of the last fetch). Absent where the
   * transport does not know it.
   */
  readonly lag?: number;
  /** Messages received from the broker and waiting in this process for a handler (or a retry), where the transport counts them. */
  readonly buffered?: number;
}

/** State of one broker connection a transport holds (a producer, a consumer, a channel model...). */
export interface ConnectionHealth {
  /** What the connection is for, e.g. `producer`, `consumer orders (group billing)`, `publisher`. */
  readonly name: string;
  /** `up`: connected (or its last request succeeded); `down`: lost, or its last request failed, at `since`. */
  readonly state: 'up' | 'down';
  /** When it entered `state` (ms epoch). */
  readonly since: number;
  /** host:port it talks to, never credentials. */
  readonly endpoint?: string;
}

/** What a transport subscription knows about itself (see {@link TransportSubscription.status}). */
export interface SubscriptionStatus {
  readonly state: 'live' | 'interrupted';
  readonly since?: number;
  readonly lag?: number;
  readonly buffered?: number;
}

export interface BusHealth {
  /** `up`: every subscription live and every connection up; `degraded`: some are not; `closed`: the bus was closed. */
  readonly status: 'up' | 'degraded' | 'closed';
  readonly transport: string;
  readonly subscriptions: readonly SubscriptionHealth[];
  /** The transport's connections, where it reports them (the in-memory transport has none). */
  readonly connections: readonly ConnectionHealth[];
}
