import type { ConnectionHealth } from '../ports/health.js';

/**
 * One connection's state and since when, for adapters: `up()` / `down()` record changes only, so
 * `since` is when the state began, not the latest event.
 */
export class ConnectionState {
  private current: { state: 'up' | 'down'; since: number };

  constructor(
    readonly name: string,
    readonly endpoint?: string,
    state: 'up' | 'down' = 'up',
  ) {
    this.current = { state, since: Date.now() };
  }

  up(at = Date.now()): void {
    if (this.current.state !== 'up') this.current = { state: 'up', since: at };
  }

  down(at = Date.now()): void {
    if (this.current.state !== 'down') this.current = { state: 'down', since: at };
  }

  get state(): 'up' | 'down' {
    return this.current.state;
  }

  snapshot(): ConnectionHealth {
    return { name: this.name, state: this.current.state, since: this.current.since, ...(this.endpoint !== undefined ? { endpoint: this.endpoint } : {}) };
  }
}
