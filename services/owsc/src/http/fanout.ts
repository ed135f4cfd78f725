// Fan-out between instances (spec §3.7): every accepted stream message and every alert event is published as
// `{"origin": <instance id>, "payload": …}` on `OW_SC_REDIS_CHANNEL` / `<channel>:alerts`. Each instance
// ignores its own envelopes and hands the others to the stream hub. Without Redis, cluster workers of one
// instance reach each other through the primary process, which relays the same envelopes.
import cluster from 'node:cluster';
import type { Logger } from '@quintet/kernel/log';
import type { PubSub } from '@quintet/kernel/pubsub';
import type { OwscMetrics } from './metrics.js';
import type { AlertStreamEvent, FanoutPublisher, StreamMessage } from './websocket.js';

/** The envelope on both channels. */
export interface FanoutEnvelope {
  origin: string;
  payload: Record<string, unknown>;
}

export interface FanoutOptions {
  /** Redis pub/sub, the cluster relay, or null for a lone process */
  pubsub: PubSub | null;
  /** true when `pubsub` is Redis (reported by `/readyz`, `/api/status` and `owsc_redis_up`) */
  redis: boolean;
  channel: string;
  instanceId: string;
  metrics: OwscMetrics;
  logger: Logger;
  onEffluent(payload: StreamMessage): void;
  onAlertEvent(event: AlertStreamEvent): void;
}

export interface Fanout extends FanoutPublisher {
  /** `disabled` without Redis, else whether the subscriber is connected */
  redisStatus(): 'disabled' | 'up' | 'down';
  close(): Promise<void>;
}

/** The alert channel of an effluent channel. */
export function alertsChannel(channel: string): string {
  return `${channel}:alerts`;
}

/** The envelope's payload when `text` is a valid envelope from another instance; null for our own; throws when invalid. */
export function foreignPayload(text: string, instanceId: string): Record<string, unknown> | null {
  const envelope: unknown = JSON.parse(text);
  if (envelope === null || typeof envelope !== 'object' || Array.isArray(envelope))
    throw new Error('not an object');
  const { origin, payload } = envelope as Partial<FanoutEnvelope>;
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload))
    throw new Error('no object payload');
  return origin === instanceId ? null : payload;
}

const ALERT_EVENT_TYPES = new Set(['alert', 'incident']);

/** Subscribes both channels and returns the publisher side. */
export async function startFanout(options: FanoutOptions): Promise<Fanout> {
  const { pubsub, channel, instanceId, metrics, logger } = options;
  if (pubsub === null) {
    metrics.redisUp.set(0);
    return {
      publishEffluent: () => {},
      publishAlertEvent: () => {},
      redisStatus: () => 'disabled',
      close: async () => {},
    };
  }
  const effluentChannel = channel;
  const alertChannel = alertsChannel(channel);

  const receive = (text: string, deliver: (payload: Record<string, unknown>) => void) => {
    let payload: Record<string, unknown> | null;
    try {
      payload = foreignPayload(text, instanceId);
    } catch {
      metrics.wsErrors.inc();
      return;
    }
    if (payload === null) return;
    metrics.fanoutReceived.inc();
    deliver(payload);
  };
  await pubsub.subscribe(effluentChannel, (text) => receive(text, options.onEffluent));
  await pubsub.subscribe(alertChannel, (text) =>
    receive(text, (payload) => {
      if (!ALERT_EVENT_TYPES.has(payload.type as string)) {
        metrics.wsErrors.inc();
        return;
      }
      options.onAlertEvent(payload as unknown as AlertStreamEvent);
    }),
  );

  if (options.redis) {
    metrics.redisUp.set(pubsub.connected ? 1 : 0);
    pubsub.onStatus((up) => metrics.redisUp.set(up ? 1 : 0));
  }

  let lastFailureLog = 0;
  const publish = (target: string, payload: unknown) => {
    const envelope = JSON.stringify({ origin: instanceId, payload });
    pubsub.publish(target, envelope).then(
      () => metrics.fanoutPublished.inc(),
      (error: unknown) => {
        // Local delivery already happened; an outage is reported by /readyz, so the log stays quiet.
        const now = Date.now();
        if (now - lastFailureLog < 5000) return;
        lastFailureLog = now;
        logger.warn({ err: error, channel: target }, 'fan-out publish failed');
      },
    );
  };

  return {
    publishEffluent: (payload) => publish(effluentChannel, payload),
    publishAlertEvent: (event) => publish(alertChannel, event),
    redisStatus: () => (options.redis ? (pubsub.connected ? 'up' : 'down') : 'disabled'),
    close: () => pubsub.close(),
  };
}

// ---- cluster relay (OW_SC_WORKERS > 1 without Redis) ----

const RELAY_MESSAGE = 'owsc:fanout';

interface RelayMessage {
  type: typeof RELAY_MESSAGE;
  channel: string;
  message: string;
}

function isRelayMessage(value: unknown): value is RelayMessage {
  return (
    value !== null &&
    typeof value === 'object' &&
    (value as RelayMessage).type === RELAY_MESSAGE &&
    typeof (value as RelayMessage).channel === 'string' &&
    typeof (value as RelayMessage).message === 'string'
  );
}

/** In the cluster primary: forwards every worker's fan-out message to all the other workers. */
export function serveClusterRelay(): void {
  cluster.on('message', (sender, message: unknown) => {
    if (!isRelayMessage(message)) return;
    for (const worker of Object.values(cluster.workers ?? {})) {
      if (worker && worker !== sender && worker.isConnected()) worker.send(message, undefined, () => {});
    }
  });
}

/** A worker's pub/sub through the primary's relay (always connected while the IPC channel is). */
export class ClusterRelayPubSub implements PubSub {
  readonly #handlers = new Map<string, Set<(message: string) => void>>();
  readonly #onMessage = (message: unknown) => {
    if (!isRelayMessage(message)) return;
    for (const handler of this.#handlers.get(message.channel) ?? []) handler(message.message);
  };
  #closed = false;

  constructor() {
    process.on('message', this.#onMessage);
  }

  get connected(): boolean {
    return !this.#closed && process.connected === true;
  }

  async publish(channel: string, message: string): Promise<void> {
    if (this.#closed || !process.send) throw new Error('cluster relay is closed');
    const relay: RelayMessage = { type: RELAY_MESSAGE, channel, message };
    await new Promise<void>((resolve, reject) => {
      process.send?.(relay, undefined, undefined, (error) => (error ? reject(error) : resolve()));
    });
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<void> {
    let handlers = this.#handlers.get(channel);
    if (!handlers) {
      handlers = new Set();
      this.#handlers.set(channel, handlers);
    }
    handlers.add(handler);
  }

  onStatus(): () => void {
    return () => {};
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#handlers.clear();
    process.off('message', this.#onMessage);
  }
}
