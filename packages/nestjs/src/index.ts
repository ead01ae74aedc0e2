/**
 * @switchboard/nestjs — Switchboard in a NestJS application.
 *
 * - `SwitchboardModule.forRoot({ bus })` / `forRootAsync({ useFactory, inject, imports })`: a global
 *   module that provides the bus, its `Publisher` (`@InjectPublisher()`) and `Subscriber`.
 * - `@Subscribe(topicOrContract, options)` on provider methods: discovered at application bootstrap
 *   and subscribed (the method is the handler: resolve = success, throw = retry / dead-letter).
 * - On application shutdown (`app.close()`, or a signal with `enableShutdownHooks()`), every
 *   subscription drains within `shutdownDeadlineMs`, then the bus closes.
 * - `@switchboard/nestjs/terminus`: a health indicator for `@nestjs/terminus`.
 */
import { Inject, Injectable, Module, type DynamicModule, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DiscoveryModule, DiscoveryService, MetadataScanner } from '@nestjs/core';
import { shutdownBus, type Bus, type Message, type ShutdownReport, type SubscribeOptions, type Subscription, type TopicContract } from '@switchboard/core';

export const SWITCHBOARD_OPTIONS = Symbol.for('switchboard.nestjs.options');
export const SWITCHBOARD_BUS = Symbol.for('switchboard.nestjs.bus');
export const SWITCHBOARD_PUBLISHER = Symbol.for('switchboard.nestjs.publisher');
export const SWITCHBOARD_SUBSCRIBER = Symbol.for('switchboard.nestjs.subscriber');

/** Injects the application's `Publisher` port. */
export const InjectPublisher = (): ParameterDecorator & PropertyDecorator => Inject(SWITCHBOARD_PUBLISHER);
/** Injects the `Subscriber` port. */
export const InjectSubscriber = (): ParameterDecorator & PropertyDecorator => Inject(SWITCHBOARD_SUBSCRIBER);
/** Injects the whole bus (health, transport). */
export const InjectBus = (): ParameterDecorator & PropertyDecorator => Inject(SWITCHBOARD_BUS);

export interface SwitchboardModuleOptions {
  /** The bus, built by the application (`createBus`, `createBusFromConfig`): the module owns it from now on and closes it. */
  readonly bus: Bus;
  /** How long subscriptions may drain when the application shuts down before they are closed (default 10 s). */
  readonly shutdownDeadlineMs?: number;
}

export interface SwitchboardModuleAsyncOptions {
  readonly imports?: DynamicModule['imports'];
  readonly inject?: (string | symbol | (abstract new (...args: never[]) => unknown))[];
  readonly useFactory: (...args: never[]) => SwitchboardModuleOptions | Promise<SwitchboardModuleOptions>;
}

const SUBSCRIBE = Symbol.for('switchboard.nestjs.subscribe');

interface SubscribeMetadata {
  readonly target: string | TopicContract<unknown, unknown>;
  readonly options: SubscribeOptions<unknown>;
}

/**
 * Makes a provider method a handler of `topic` (or of a `defineTopic` contract, typed and validated
 * by its schema). Subscribed when the application bootstraps; options as for `Subscriber.subscribe`.
 */
// biome-ignore lint/suspicious/noExplicitAny: any contract, whatever its payload type
export function Subscribe(target: string | TopicContract<any, any>, options: SubscribeOptions<unknown> = {}): MethodDecorator {
  return (_prototype, _key, descriptor) => {
    Reflect.defineMetadata(SUBSCRIBE, { target, options } satisfies SubscribeMetadata, descriptor.value as object);
    return descriptor;
  };
}

/** Finds `@Subscribe` methods at bootstrap and subscribes them; drains and closes the bus at shutdown. */
@Injectable()
export class SwitchboardLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly subscriptions: Subscription[] = [];
  /** What the last shutdown did (undefined until then). */
  lastShutdown: ShutdownReport | undefined;

  constructor(
    @Inject(DiscoveryService) private readonly discovery: DiscoveryService,
    @Inject(MetadataScanner) private readonly scanner: MetadataScanner,
    @Inject(SWITCHBOARD_OPTIONS) private readonly options: SwitchboardModuleOptions,
  ) {}

  /** The subscriptions made for `@Subscribe` methods. */
  get subscribed(): readonly Subscription[] {
    return this.subscriptions;
  }

  async onApplicationBootstrap(): Promise<void> {
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      if (!instance || typeof instance !== 'object' || !wrapper.isDependencyTreeStatic()) continue;
      const prototype = Object.getPrototypeOf(instance) as Record<string, unknown>;
      for (const name of this.scanner.getAllMethodNames(prototype)) {
        const method = prototype[name];
        if (typeof method !== 'function') continue;
        const metadata = Reflect.getMetadata(SUBSCRIBE, method) as SubscribeMetadata | undefined;
        if (!metadata) continue;
        const handler = (message: Message<unknown>) => (method as (m: Message<unknown>) => unknown).call(instance, message) as Promise<void> | void;
        const subscriber = this.options.bus.subscriber;
        const subscription =
          typeof metadata.target === 'string' ? await subscriber.subscribe(metadata.target, handler, metadata.options) : await subscriber.subscribe(metadata.target, handler, metadata.options);
        this.subscriptions.push(subscription);
      }
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.lastShutdown = await shutdownBus(this.options.bus, this.options.shutdownDeadlineMs !== undefined ? { deadlineMs: this.options.shutdownDeadlineMs } : {});
  }
}

const derivedProviders = [
  { provide: SWITCHBOARD_BUS, useFactory: (o: SwitchboardModuleOptions) => o.bus, inject: [SWITCHBOARD_OPTIONS] },
  { provide: SWITCHBOARD_PUBLISHER, useFactory: (o: SwitchboardModuleOptions) => o.bus.publisher, inject: [SWITCHBOARD_OPTIONS] },
  { provide: SWITCHBOARD_SUBSCRIBER, useFactory: (o: SwitchboardModuleOptions) => o.bus.subscriber, inject: [SWITCHBOARD_OPTIONS] },
  SwitchboardLifecycle,
];
const exported = [SWITCHBOARD_BUS, SWITCHBOARD_PUBLISHER, SWITCHBOARD_SUBSCRIBER, SwitchboardLifecycle];

/** The global Switchboard module (see the package comment). */
@Module({})
// biome-ignore lint/complexity/noStaticOnlyClass: a NestJS dynamic module is a class with static factories
export class SwitchboardModule {
  static forRoot(options: SwitchboardModuleOptions): DynamicModule {
    return {
      module: SwitchboardModule,
      global: true,
      imports: [DiscoveryModule],
      providers: [{ provide: SWITCHBOARD_OPTIONS, useValue: options }, ...derivedProviders],
      exports: exported,
    };
  }

  static forRootAsync(options: SwitchboardModuleAsyncOptions): DynamicModule {
    return {
      module: SwitchboardModule,
      global: true,
      imports: [...(options.imports ?? []), DiscoveryModule],
      providers: [{ provide: SWITCHBOARD_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] }, ...derivedProviders],
      exports: exported,
    };
  }
}
