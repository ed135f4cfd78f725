// Redis connections that fail fast: a dead or paused server turns into a rejected promise within the command
// timeout, never a request that hangs, and the client reconnects on its own when the server comes back.
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { validateRedisUrl } from './config.js';
import { NETWORK_UNAVAILABLE_CODES } from './errors.js';

export type { Redis } from 'ioredis';
// Kept here too: the URL check belongs with the configuration (cheap to import, no client library).
export { validateRedisUrl };

export interface ConnectRedisOptions {
  /** Every command (including scripts) rejects with "Command timed out" after this many milliseconds. */
  commandTimeoutMs: number;
  /** Shown in `CLIENT LIST`. */
  name?: string;
}

const RECONNECT_BASE_MS = 50;
const RECONNECT_CAP_MS = 2000;

/** Reconnect delay: exponential from 50 ms, capped at 2 s, with a little jitter so instances do not stampede. */
export function reconnectDelayMs(attempt: number): number {
  const exponential = RECONNECT_BASE_MS * 2 ** Math.min(Math.max(attempt - 1, 0), 10);
  return Math.min(exponential, RECONNECT_CAP_MS) + Math.floor(Math.random() * 50);
}

/**
 * A client that fails fast and reconnects by itself (capped backoff). It starts connecting at once; call
 * `waitForRedis` before the first command, because commands issued while disconnected are rejected
 * immediately instead of being queued.
 */
export function connectRedis(url: string, options: ConnectRedisOptions): Redis {
  validateRedisUrl(url);
  const client = new Redis(url, {
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: Math.max(options.commandTimeoutMs, 1000),
    // No offline queue: while disconnected a command fails at once (the caller answers 503) instead of
    // waiting, and nothing the caller already reported as failed is replayed after the reconnect.
    enableOfflineQueue: false,
    // For the same reason, commands in flight when the connection drops are not re-sent on reconnect.
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 1,
    retryStrategy: reconnectDelayMs,
    ...(options.name === undefined ? {} : { connectionName: options.name }),
  });
  // Connection errors surface as rejected commands and through `waitForRedis`; without a listener ioredis
  // would print every reconnect failure. Callers add their own listener to log them.
  client.on('error', () => {});
  return client;
}

/** Retries PING until it succeeds or `timeoutMs` has passed, then throws an error with the last cause. */
export async function waitForRedis(client: Redis, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      await client.ping();
      return;
    } catch (error) {
      lastError = error;
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await new Promise((resolve) => setTimeout(resolve, Math.min(100, left)));
  }
  const reason = lastError instanceof Error ? lastError.message : String(lastError);
  throw new Error(`Redis not reachable within ${timeoutMs} ms: ${reason}`, { cause: lastError });
}

const UNAVAILABLE_MESSAGES = [
  'Command timed out',
  "Stream isn't writeable",
  'Connection is closed',
  'Reached the max retries per request limit',
  'connect ETIMEDOUT',
  'LOADING',
  'MASTERDOWN',
  'TRYAGAIN',
];

/** True for errors that mean "Redis is not reachable right now" (timeouts, connection loss, server loading). */
export function isRedisUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    if (current.name === 'MaxRetriesPerRequestError') return true;
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_UNAVAILABLE_CODES.has(code)) return true;
    if (UNAVAILABLE_MESSAGES.some((text) => current instanceof Error && current.message.startsWith(text))) {
      return true;
    }
    current = current.cause;
  }
  return false;
}

/** A Lua script run by EVALSHA, falling back to EVAL once when the server does not have it cached. */
export class RedisScript {
  readonly source: string;
  readonly sha1: string;

  constructor(source: string) {
    this.source = source;
    this.sha1 = createHash('sha1').update(source).digest('hex');
  }

  /** Runs the script with the given keys and arguments and returns its raw reply. */
  async run(client: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha1, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return await client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}
