// Publish/subscribe between instances: in process (tests, one instance) or through Redis (many instances).
// Delivery is at most once: a message published while the subscriber connection is down is lost, never
// replayed, and publishing while Redis is unreachable rejects at once instead of queueing.
import type { Logger } from './log.js';
import { connectRedis, type Redis } from './redis.js';

/** Fire-and-forget messages on named channels, with the state of the subscriber connection. */
export interface PubSub {
  /** Sends `message` to every subscriber of `channel`; rejects quickly when the broker is unreachable. */
  publish(channel: string, message: string): Promise<void>;
  /**
   * Calls `handler` for every message on `channel` from now on. While the subscriber connection is down the
   * handler is registered at once and the channel is subscribed when the connection comes back.
   */
  subscribe(channel: string, handler: (message: string) => void): Promise<void>;
  /** true while the subscriber connection is up and its channels are subscribed (memory: always true) */
  readonly connected: boolean;
  /** Calls `listener` on each up/down transition of the subscriber connection; returns the unsubscribe function. */
  onStatus(listener: (up: boolean) => void): () => void;
  /** Drops every subscription and closes the connections; later publishes reject. */
  close(): Promise<void>;
}

type Handler = (message: string) => void;

/** Handlers per channel, with the errors they throw caught and logged (a handler never breaks delivery). */
class ChannelHandlers {
  private readonly byChannel = new Map<string, Set<Handler>>();

  constructor(private readonly logger: Logger | undefined) {}

  /** Adds `handler`; true when it is the channel's first. */
  add(channel: string, handler: Handler): boolean {
    let handlers = this.byChannel.get(channel);
    const first = handlers === undefined;
    if (!handlers) {
      handlers = new Set();
      this.byChannel.set(channel, handlers);
    }
    handlers.add(handler);
    return first;
  }

  remove(channel: string, handler: Handler): void {
    const handlers = this.byChannel.get(channel);
    handlers?.delete(handler);
    if (handlers?.size === 0) this.byChannel.delete(channel);
  }

  channels(): string[] {
    return [...this.byChannel.keys()];
  }

  clear(): void {
    this.byChannel.clear();
  }

  deliver(channel: string, message: string): void {
    for (const handler of this.byChannel.get(channel) ?? []) {
      try {
        handler(message);
      } catch (error) {
        this.logger?.error({ err: error, channel }, 'pub/sub message handler failed');
      }
    }
  }
}

/** Channel listeners of the in-process broker; MemoryPubSub instances sharing one hub see each other's messages. */
export interface MemoryPubSubHub {
  readonly members: Set<(channel: string, message: string) => void>;
}

/** In-process pub/sub; instances created with the same `MemoryPubSub.hub()` share messages. */
export class MemoryPubSub implements PubSub {
  /** A new, empty hub to share between MemoryPubSub instances. */
  static hub(): MemoryPubSubHub {
    return { members: new Set() };
  }

  readonly connected = true;
  private readonly handlers: ChannelHandlers;
  private readonly member = (channel: string, message: string) => this.handlers.deliver(channel, message);
  private closed = false;

  constructor(
    private readonly hubOfInstances: MemoryPubSubHub = MemoryPubSub.hub(),
    options: { logger?: Logger } = {},
  ) {
    this.handlers = new ChannelHandlers(options.logger);
    hubOfInstances.members.add(this.member);
  }

  /** Delivers to every subscriber in the hub (this instance's own included) on a later tick, like a broker. */
  async publish(channel: string, message: string): Promise<void> {
    if (this.closed) throw new Error('pub/sub is closed');
    const members = [...this.hubOfInstances.members];
    setImmediate(() => {
      for (const member of members) member(channel, message);
    });
  }

  /** Registers `handler` for `channel`. */
  async subscribe(channel: string, handler: Handler): Promise<void> {
    if (this.closed) throw new Error('pub/sub is closed');
    this.handlers.add(channel, handler);
  }

  /** Never called: the in-process broker is always up. */
  onStatus(_listener: (up: boolean) => void): () => void {
    return () => {};
  }

  /** Leaves the hub and drops every subscription. */
  async close(): Promise<void> {
    this.closed = true;
    this.hubOfInstances.members.delete(this.member);
    this.handlers.clear();
  }
}

/** Options of createRedisPubSub. */
export interface RedisPubSubOptions {
  /** connection names in CLIENT LIST: `<name>:pub` and `<name>:sub` (default `pubsub`) */
  name?: string;
  logger?: Logger;
  /** a PUBLISH or SUBSCRIBE without an answer rejects after this long (default 2000 ms) */
  commandTimeoutMs?: number;
}

const RECONNECT_FIRST_MS = 100;
const RECONNECT_CAP_MS = 5000;

/** Reconnect delay of the pub/sub connections: 0.1 s, doubling, capped at 5 s. */
export function pubSubReconnectDelayMs(attempt: number): number {
  return Math.min(RECONNECT_FIRST_MS * 2 ** Math.min(Math.max(attempt - 1, 0), 16), RECONNECT_CAP_MS);
}

/** Pub/sub on Redis with a publisher and a subscriber connection that reconnect and re-subscribe by themselves. */
export function createRedisPubSub(url: string, options: RedisPubSubOptions = {}): PubSub {
  return new RedisPubSub(url, options);
}

class RedisPubSub implements PubSub {
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly handlers: ChannelHandlers;
  private readonly statusListeners = new Set<(up: boolean) => void>();
  private readonly logger: Logger | undefined;
  private up = false;
  private closed = false;

  constructor(url: string, options: RedisPubSubOptions) {
    const name = options.name ?? 'pubsub';
    const commandTimeoutMs = options.commandTimeoutMs ?? 2000;
    this.logger = options.logger;
    this.handlers = new ChannelHandlers(options.logger);
    this.publisher = connectRedis(url, { commandTimeoutMs, name: `${name}:pub` });
    this.subscriber = connectRedis(url, { commandTimeoutMs, name: `${name}:sub` });
    for (const client of [this.publisher, this.subscriber]) {
      client.options.retryStrategy = pubSubReconnectDelayMs;
    }
    // Re-subscribing is done here, not by ioredis, so that "up" is reported only once the channels are back.
    this.subscriber.options.autoResubscribe = false;
    this.subscriber.on('ready', () => {
      void this.resubscribe();
    });
    this.subscriber.on('close', () => this.setUp(false));
    this.subscriber.on('message', (channel: string, message: string) =>
      this.handlers.deliver(channel, message),
    );
    this.subscriber.on('error', (error: Error) =>
      this.logger?.debug({ err: error }, 'redis subscriber error'),
    );
    this.publisher.on('error', (error: Error) => this.logger?.debug({ err: error }, 'redis publisher error'));
  }

  get connected(): boolean {
    return this.up;
  }

  async publish(channel: string, message: string): Promise<void> {
    if (this.closed) throw new Error('pub/sub is closed');
    await this.publisher.publish(channel, message);
  }

  async subscribe(channel: string, handler: Handler): Promise<void> {
    if (this.closed) throw new Error('pub/sub is closed');
    const first = this.handlers.add(channel, handler);
    // While down, the next `ready` subscribes every registered channel.
    if (!first || this.subscriber.status !== 'ready') return;
    try {
      await this.subscriber.subscribe(channel);
    } catch (error) {
      this.handlers.remove(channel, handler);
      throw error;
    }
  }

  onStatus(listener: (up: boolean) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handlers.clear();
    this.statusListeners.clear();
    this.up = false;
    await Promise.all([quit(this.publisher), quit(this.subscriber)]);
  }

  private async resubscribe(): Promise<void> {
    const channels = this.handlers.channels();
    try {
      if (channels.length > 0) await this.subscriber.subscribe(...channels);
    } catch (error) {
      // The connection is unusable without its subscriptions: drop it and let the reconnect try again.
      this.logger?.warn({ err: error }, 'redis re-subscribe failed; reconnecting');
      this.subscriber.disconnect(true);
      return;
    }
    if (this.subscriber.status === 'ready') this.setUp(true);
  }

  private setUp(up: boolean): void {
    if (this.closed || up === this.up) return;
    this.up = up;
    this.logger?.info(
      { redis: up ? 'up' : 'down' },
      up ? 'redis pub/sub connected' : 'redis pub/sub disconnected',
    );
    for (const listener of this.statusListeners) {
      try {
        listener(up);
      } catch (error) {
        this.logger?.error({ err: error }, 'pub/sub status listener failed');
      }
    }
  }
}

/** QUIT when connected (lets Redis finish), otherwise drop the socket and stop reconnecting. */
async function quit(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      // fall through to a hard disconnect
    }
  }
  client.disconnect();
}
