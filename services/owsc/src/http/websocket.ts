// The live stream (spec §3.7): `/ws/effluent` relays analyser messages to every other client, buffers them and
// feeds the live rule engine; `/ws/alerts` pushes live alerts and incident changes. Both routes require the API
// token (header or `?token=`), refuse foreign origins, cap connections, ping idle peers and close slow ones.

import type { Socket } from 'node:net';
import websocketPlugin from '@fastify/websocket';
import type { Logger } from '@quintet/kernel/log';
import { constantTimeEqual } from '@quintet/kernel/security';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { OwscConfig } from '../config.js';
import { type LiveEvents, type LiveMonitor, readingFromMessage } from '../domain/live.js';
import { RingBuffer } from '../domain/ring-buffer.js';
import type { Incident } from '../domain/store.js';
import type { StoredAlert } from '../domain/types.js';
import { apiAuthorized, originAllowed, sendDetail } from './conventions.js';
import type { OwscMetrics } from './metrics.js';

/** A message on `/ws/alerts`. */
export type AlertStreamEvent =
  | { type: 'alert'; alert: StoredAlert }
  | { type: 'incident'; event: 'opened' | 'acknowledged' | 'closed'; incident: Incident };

/** An accepted `/ws/effluent` message (a JSON object, stamped with `timestamp`). */
export type StreamMessage = Record<string, unknown>;

/** Where accepted messages and alert events go beyond this process (Redis or the cluster primary). */
export interface FanoutPublisher {
  publishEffluent(payload: StreamMessage): void;
  publishAlertEvent(event: AlertStreamEvent): void;
}

export const PING_INTERVAL_MS = 30_000;
/** a peer that has not answered this many pings in a row is dropped */
const MISSED_PONGS_LIMIT = 2;
/** send buffer above which a consumer is too slow (spec §7.2) */
export const SLOW_CONSUMER_BYTES = 1024 * 1024;

export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY = 1008;
export const CLOSE_TRY_AGAIN = 1013;

const ERROR_TOO_LARGE = JSON.stringify({ type: 'error', detail: 'message too large' });
const ERROR_INVALID = JSON.stringify({ type: 'error', detail: 'invalid message: expected a JSON object' });
const ERROR_RATE = JSON.stringify({ type: 'error', detail: 'rate limit exceeded' });

type Route = '/ws/effluent' | '/ws/alerts';

/** One open socket and its per-connection state. */
interface Connection {
  socket: WebSocket;
  route: Route;
  requestId: string;
  windowEndMs: number;
  windowCount: number;
  rateErrorSent: boolean;
  missedPongs: number;
}

export interface StreamHubOptions {
  config: OwscConfig;
  metrics: OwscMetrics;
  logger: Logger;
  live: LiveMonitor;
  /** overrides the 30 s ping interval (tests) */
  pingIntervalMs?: number;
}

/**
 * The process's WebSocket clients, the ring buffer and the message pipeline. Accepted messages and alert
 * events are delivered locally at once and handed to the fan-out publisher for the other instances.
 */
export class StreamHub {
  readonly buffer: RingBuffer<StreamMessage>;
  readonly #config: OwscConfig;
  readonly #metrics: OwscMetrics;
  readonly #logger: Logger;
  readonly #live: LiveMonitor;
  readonly #effluent = new Set<Connection>();
  readonly #alerts = new Set<Connection>();
  readonly #pingTimer: NodeJS.Timeout;
  #fanout: FanoutPublisher | null = null;
  #closing = false;
  /** Sockets corked during this turn of the event loop (see #deliver). */
  readonly #corked = new Set<Socket>();

  constructor(options: StreamHubOptions) {
    this.#config = options.config;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#live = options.live;
    this.buffer = new RingBuffer<StreamMessage>(options.config.streamBuffer);
    this.#pingTimer = setInterval(() => this.#pingAll(), options.pingIntervalMs ?? PING_INTERVAL_MS);
    this.#pingTimer.unref();
  }

  /** Open sockets on both routes. */
  get activeConnections(): number {
    return this.#effluent.size + this.#alerts.size;
  }

  /** Sends accepted messages and alert events to the other instances from now on. */
  connectFanout(fanout: FanoutPublisher): void {
    this.#fanout = fanout;
  }

  /** A payload accepted by another instance: buffered and delivered to every local `/ws/effluent` client. */
  receiveRemote(payload: StreamMessage): void {
    this.#store(payload);
    this.#broadcast(this.#effluent, JSON.stringify(payload), null);
    const reading = readingFromMessage(payload);
    if (reading !== null) this.#live.observeRemote(reading);
  }

  /** Pushes an alert event to every `/ws/alerts` client of every instance. */
  publishAlertEvent(event: AlertStreamEvent): void {
    this.deliverAlertEvent(event);
    this.#fanout?.publishAlertEvent(event);
  }

  /** Pushes an alert event to this process's `/ws/alerts` clients only (events from other instances). */
  deliverAlertEvent(event: AlertStreamEvent): void {
    this.#broadcast(this.#alerts, JSON.stringify(event), null);
  }

  /** Publishes what a reading raised (own readings and the store's background retry). */
  publishLiveEvents(events: LiveEvents): void {
    for (const { event, incident } of events.incidentEvents) {
      const label = this.#metrics.speciesLabel(incident.species);
      if (event === 'opened') this.#metrics.incidentsOpen.inc({ species: label });
      else this.#metrics.incidentsOpen.dec({ species: label });
      this.publishAlertEvent({ type: 'incident', event, incident });
    }
    for (const alert of events.alerts) {
      this.#metrics.alerts.inc({
        source: 'stream',
        species: this.#metrics.speciesLabel(alert.species),
        type: alert.type,
        level: alert.level,
      });
      this.publishAlertEvent({ type: 'alert', alert });
    }
  }

  /** Closes every socket with 1001 `server shutting down` and stops accepting new ones. */
  closeAll(): void {
    this.#closing = true;
    clearInterval(this.#pingTimer);
    for (const connection of [...this.#effluent, ...this.#alerts]) {
      connection.socket.close(CLOSE_GOING_AWAY, 'server shutting down');
    }
  }

  /** Takes a new authorised socket (or closes it when the process is at its connection limit). */
  open(socket: WebSocket, request: FastifyRequest, route: Route): void {
    const requestId = String(request.id);
    if (this.#closing) {
      socket.close(CLOSE_GOING_AWAY, 'server shutting down');
      return;
    }
    if (this.activeConnections >= this.#config.wsMaxConnections) {
      socket.close(CLOSE_TRY_AGAIN, 'Try again later');
      this.#logger.warn(
        { request_id: requestId, route, close_code: CLOSE_TRY_AGAIN },
        'websocket refused: too many connections',
      );
      return;
    }
    const connection: Connection = {
      socket,
      route,
      requestId,
      windowEndMs: 0,
      windowCount: 0,
      rateErrorSent: false,
      missedPongs: 0,
    };
    const clients = route === '/ws/effluent' ? this.#effluent : this.#alerts;
    clients.add(connection);
    this.#metrics.wsConnections.inc();
    this.#metrics.wsActiveConnections.set(this.activeConnections);
    this.#logger.info({ request_id: requestId, route }, 'websocket opened');

    socket.on('pong', () => {
      connection.missedPongs = 0;
    });
    socket.on('message', (data: Buffer, isBinary: boolean) => this.#onMessage(connection, data, isBinary));
    socket.on('close', (code: number) => {
      clients.delete(connection);
      this.#metrics.wsActiveConnections.set(this.activeConnections);
      this.#logger.info({ request_id: requestId, route, close_code: code }, 'websocket closed');
    });
  }

  /** The three-step pipeline (size → parse → rate) shared by both routes; accepted objects go on by route. */
  #onMessage(connection: Connection, data: Buffer, isBinary: boolean): void {
    const metrics = this.#metrics;
    metrics.wsMessagesReceived.inc();
    const size = data.length;
    if (size > this.#config.wsMaxMessageBytes) {
      this.#drop(connection, 'oversize', ERROR_TOO_LARGE);
      return;
    }
    let message: unknown;
    try {
      message = isBinary ? undefined : JSON.parse(data.toString('utf8'));
    } catch {
      message = undefined;
    }
    if (message === null || typeof message !== 'object' || Array.isArray(message)) {
      this.#drop(connection, 'invalid', ERROR_INVALID);
      return;
    }
    const perSecond = this.#config.wsMessagesPerSecond;
    if (perSecond > 0) {
      const now = Date.now();
      if (now >= connection.windowEndMs) {
        connection.windowEndMs = now + 1000;
        connection.windowCount = 0;
        connection.rateErrorSent = false;
      }
      connection.windowCount += 1;
      if (connection.windowCount > perSecond) {
        this.#drop(connection, 'rate', connection.rateErrorSent ? null : ERROR_RATE);
        connection.rateErrorSent = true;
        return;
      }
    }
    const object = message as StreamMessage;
    if (connection.route === '/ws/alerts') {
      this.#send(
        connection,
        JSON.stringify({
          type: 'alert_processed',
          timestamp: Date.now() / 1000,
          alert: object,
          status: 'received',
        }),
      );
      return;
    }
    this.#acceptOwn(connection, object, size);
  }

  #acceptOwn(sender: Connection, message: StreamMessage, size: number): void {
    if (!Object.hasOwn(message, 'timestamp')) message.timestamp = Date.now() / 1000;
    this.#store(message);
    this.#metrics.wsMessageSize.observe(size);
    this.#broadcast(this.#effluent, JSON.stringify(message), sender);
    this.#fanout?.publishEffluent(message);
    const reading = readingFromMessage(message);
    if (reading === null) return;
    this.#live.observeOwn(reading).then(
      (events) => this.publishLiveEvents(events),
      (error: unknown) =>
        this.#logger.error({ err: error, species: reading.species }, 'live evaluation failed'),
    );
  }

  #store(message: StreamMessage): void {
    this.buffer.push(message);
    this.#metrics.streamBufferLen.set(this.buffer.size);
  }

  #drop(connection: Connection, reason: 'oversize' | 'invalid' | 'rate', reply: string | null): void {
    this.#metrics.wsErrors.inc();
    this.#metrics.wsMessagesDropped.inc({ reason });
    if (reply !== null) this.#send(connection, reply, false);
  }

  #broadcast(clients: Set<Connection>, text: string, except: Connection | null): void {
    // Encoded once for every recipient (a string would be encoded again for each socket).
    const data = Buffer.from(text, 'utf8');
    let delivered = 0;
    for (const connection of clients) {
      if (connection !== except && this.#deliver(connection, data)) delivered++;
    }
    if (delivered > 0) this.#metrics.wsMessagesBroadcast.inc(delivered);
  }

  /** Sends unless the peer is gone; a peer whose send buffer is over 1 MiB is closed instead of buffered. */
  #send(connection: Connection, text: string, countAsBroadcast = true): void {
    if (this.#deliver(connection, Buffer.from(text, 'utf8')) && countAsBroadcast) {
      this.#metrics.wsMessagesBroadcast.inc();
    }
  }

  #deliver(connection: Connection, data: Buffer): boolean {
    const { socket } = connection;
    if (socket.readyState !== socket.OPEN) return false;
    if (socket.bufferedAmount > SLOW_CONSUMER_BYTES) {
      this.#logger.warn(
        { request_id: connection.requestId, route: connection.route },
        'websocket consumer too slow',
      );
      socket.close(CLOSE_POLICY, 'consumer too slow');
      return false;
    }
    this.#corkForThisTurn(socket);
    socket.send(data, { binary: false });
    return true;
  }

  /**
   * Every frame to a socket is a write system call, and a fan-out writes each message to every subscriber: at
   * 100,000 deliveries a second those calls are most of the server's CPU. A socket written to is corked until
   * the end of this turn of the event loop, so all frames it gets in one turn leave in one write. An idle
   * server handles one message per turn (nothing waits); a busy one reads several per turn and batches them.
   */
  #corkForThisTurn(socket: WebSocket): void {
    // ws keeps the TCP socket private; without it the frame is simply written at once.
    const raw = (socket as unknown as { _socket?: Socket })._socket;
    if (raw === undefined || this.#corked.has(raw)) return;
    raw.cork();
    this.#corked.add(raw);
    if (this.#corked.size === 1) {
      setImmediate(() => {
        for (const corked of this.#corked) corked.uncork();
        this.#corked.clear();
      });
    }
  }

  #pingAll(): void {
    for (const connection of [...this.#effluent, ...this.#alerts]) {
      if (connection.missedPongs >= MISSED_PONGS_LIMIT) {
        this.#logger.info(
          { request_id: connection.requestId, route: connection.route },
          'websocket peer missed pongs',
        );
        connection.socket.terminate();
        continue;
      }
      connection.missedPongs += 1;
      connection.socket.ping();
    }
  }
}

/** The token a WebSocket handshake presents: `Authorization: Bearer …` or `?token=…`. */
function webSocketAuthorized(config: OwscConfig, request: FastifyRequest): boolean {
  if (config.apiToken === undefined) return true;
  if (request.headers.authorization !== undefined && apiAuthorized(config, request.headers.authorization))
    return true;
  const token = (request.query as Record<string, unknown> | undefined)?.token;
  return typeof token === 'string' && constantTimeEqual(token, config.apiToken);
}

/** Pushes an incident event (e.g. an acknowledgement) to every `/ws/alerts` client of every instance. */
export function broadcastAlertEvent(context: { streams: StreamHub }, event: AlertStreamEvent): void {
  context.streams.publishAlertEvent(event);
}

/** Registers `/ws/effluent` and `/ws/alerts` on the app. */
export async function registerWebSocketRoutes(
  app: FastifyInstance,
  context: { config: OwscConfig; logger: Logger; streams: StreamHub },
): Promise<void> {
  const { config, logger, streams } = context;
  await app.register(websocketPlugin, {
    // Frames above the hard cap close the socket with 1009 inside `ws` before any of it is buffered.
    options: { maxPayload: Math.max(65_536, 8 * config.wsMaxMessageBytes) },
    preClose: (done) => {
      streams.closeAll();
      done();
    },
  });
  for (const route of ['/ws/effluent', '/ws/alerts'] as const) {
    app.route({
      method: 'GET',
      url: route,
      // A plain GET (no upgrade) is not a resource of its own.
      handler: (_request, reply) => sendDetail(reply, 404, 'Not Found'),
      // Cross-site WebSocket hijacking: a browser handshake from an origin outside the list is refused.
      onRequest: (request, reply, done) => {
        const origin = request.headers.origin;
        if (origin !== undefined && !originAllowed(config, origin)) {
          sendDetail(reply, 403, 'Origin not allowed');
          return;
        }
        done();
      },
      wsHandler: (socket, request) => {
        if (!webSocketAuthorized(config, request)) {
          socket.close(CLOSE_POLICY, 'Unauthorized');
          logger.info(
            { request_id: request.id, route, close_code: CLOSE_POLICY },
            'websocket refused: unauthorized',
          );
          return;
        }
        streams.open(socket, request, route);
      },
    });
  }
}
