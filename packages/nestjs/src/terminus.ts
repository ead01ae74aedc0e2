import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import type { Bus } from '@switchboard/core';
import { SWITCHBOARD_BUS } from './index.js';

/**
 * A `@nestjs/terminus` health indicator: up while every subscription is live, down (with each
 * subscription's state) when one is interrupted or the bus is closed. Add it to a module's providers
 * next to `TerminusModule`, then `health.check([() => switchboard.isHealthy()])`.
 */
@Injectable()
export class SwitchboardHealthIndicator {
  constructor(
    @Inject(HealthIndicatorService) private readonly indicators: HealthIndicatorService,
    @Inject(SWITCHBOARD_BUS) private readonly bus: Bus,
  ) {}

  isHealthy<const Key extends string = 'switchboard'>(key: Key = 'switchboard' as Key) {
    const indicator = this.indicators.check(key);
    const health = this.bus.health();
    const data = { transport: health.transport, bus: health.status, subscriptions: health.subscriptions.map((s) => ({ ...s })) };
    return health.status === 'up' ? indicator.up(data) : indicator.down(data);
  }
}
