// Fixed-window rate limits: one counter per (bucket, client, window). Two window rules: aligned to epoch
// multiples of their length (every instance agrees on where a window starts and ends), or starting at a key's
// first request.
import type { Redis } from 'ioredis';
import { isRedisUnavailable, RedisScript } from './redis.js';

export type RateUnit = 'second' | 'minute' | 'hour' | 'day';

export interface RateRule {
  /** Requests allowed per window. */
  limit: number;
  unit: RateUnit;
  /** Window length in seconds (1 unit). */
  windowSeconds: number;
}

export interface RateDecision {
  allowed: boolean;
  limit: number;
  /** Requests still allowed in this window (0 once over the limit). */
  remaining: number;
  /** End of the current window, epoch seconds. */
  resetEpochSeconds: number;
  /** Seconds until the window ends (at least 1). */
  retryAfterSeconds: number;
}

/** Counts one request of `client` in `bucket` and says whether it is within `rule`. */
export interface FixedWindowLimiter {
  hit(bucket: string, client: string, rule: RateRule, nowMs?: number): Promise<RateDecision>;
}

const UNIT_SECONDS: Record<RateUnit, number> = { second: 1, minute: 60, hour: 3600, day: 86_400 };

/** Parses `N/unit` or `N per unit` (also `N per 1 unit`; unit second, minute, hour or day, plural allowed). */
export function parseRateRule(text: string): RateRule {
  const match = /^\s*(\d{1,9})\s*(?:\/|\s+per\s+)\s*(?:1\s+)?(second|minute|hour|day)s?\s*$/i.exec(text);
  const count = match?.[1];
  const unitText = match?.[2];
  if (count === undefined || unitText === undefined) {
    throw new Error(
      `invalid rate limit "${text}": expected N/unit or N per unit (second, minute, hour, day)`,
    );
  }
  const limit = Number(count);
  if (limit < 1) throw new Error(`invalid rate limit "${text}": the count must be at least 1`);
  const unit = unitText.toLowerCase() as RateUnit;
  return { limit, unit, windowSeconds: UNIT_SECONDS[unit] };
}

/** The rule as shown to clients: `30 per 1 hour`. */
export function describeRule(rule: RateRule): string {
  return `${rule.limit} per 1 ${rule.unit}`;
}

function windowOf(rule: RateRule, nowMs: number): { start: number; end: number } {
  const start = Math.floor(nowMs / 1000 / rule.windowSeconds) * rule.windowSeconds;
  return { start, end: start + rule.windowSeconds };
}

function decide(rule: RateRule, count: number, end: number, nowMs: number): RateDecision {
  return {
    allowed: count <= rule.limit,
    limit: rule.limit,
    remaining: Math.max(0, rule.limit - count),
    resetEpochSeconds: end,
    retryAfterSeconds: Math.max(1, Math.ceil(end - nowMs / 1000)),
  };
}

/** In-process counters; windows that have ended are dropped on a later hit. */
export class MemoryFixedWindowLimiter implements FixedWindowLimiter {
  readonly #counters = new Map<string, { count: number; endMs: number }>();
  #nextPurgeMs = 0;

  async hit(bucket: string, client: string, rule: RateRule, nowMs = Date.now()): Promise<RateDecision> {
    this.#purge(nowMs);
    const { start, end } = windowOf(rule, nowMs);
    const key = `${bucket}\u0000${client}\u0000${start}`;
    let entry = this.#counters.get(key);
    if (entry === undefined) {
      entry = { count: 0, endMs: end * 1000 };
      this.#counters.set(key, entry);
    }
    entry.count += 1;
    return decide(rule, entry.count, end, nowMs);
  }

  /** Number of live counters (for tests and metrics). */
  get size(): number {
    return this.#counters.size;
  }

  #purge(nowMs: number): void {
    if (nowMs < this.#nextPurgeMs) return;
    this.#nextPurgeMs = nowMs + 1000;
    for (const [key, entry] of this.#counters) if (entry.endMs <= nowMs) this.#counters.delete(key);
  }
}

// INCR and the expiry in one step, so a counter can never be left without a TTL.
const HIT = new RedisScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return n
`);

/** Counters in Redis at `<prefix>rl:<bucket>:<client>:<window start epoch s>`, TTL = window length. */
export class RedisFixedWindowLimiter implements FixedWindowLimiter {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  async hit(bucket: string, client: string, rule: RateRule, nowMs = Date.now()): Promise<RateDecision> {
    const { start, end } = windowOf(rule, nowMs);
    const key = `${this.#prefix}rl:${bucket}:${client}:${start}`;
    const count = Number(await HIT.run(this.#redis, [key], [rule.windowSeconds]));
    return decide(rule, count, end, nowMs);
  }
}

/**
 * Fixed windows that start at a key's first request (a client's burst is measured from its own first request), in memory. Windows that have ended are
 * purged at most once a second.
 */
export class MemoryFirstRequestLimiter implements FixedWindowLimiter {
  readonly #windows = new Map<string, { count: number; endMs: number }>();
  #nextPurgeMs = 0;

  async hit(bucket: string, client: string, rule: RateRule, nowMs = Date.now()): Promise<RateDecision> {
    return this.hitNow(`${bucket}\u0000${client}`, rule, nowMs);
  }

  /** The synchronous form of `hit` for a ready-made key. */
  hitNow(key: string, rule: RateRule, nowMs = Date.now()): RateDecision {
    if (nowMs >= this.#nextPurgeMs) this.#purge(nowMs);
    let window = this.#windows.get(key);
    if (window === undefined || window.endMs <= nowMs) {
      window = { count: 0, endMs: nowMs + rule.windowSeconds * 1000 };
      this.#windows.set(key, window);
    }
    window.count += 1;
    return decide(rule, window.count, window.endMs / 1000, nowMs);
  }

  #purge(nowMs: number): void {
    this.#nextPurgeMs = nowMs + 1000;
    for (const [key, window] of this.#windows) if (window.endMs <= nowMs) this.#windows.delete(key);
  }
}

// The window's expiry is set by the request that creates the key, so it starts at that first request.
const HIT_FIRST_REQUEST_WINDOW = new RedisScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {n, redis.call('PTTL', KEYS[1])}
`);

/**
 * Counters shared by every instance in Redis (`<prefix>rl:<bucket>:<client>`), falling back to the in-memory
 * limiter while Redis is unreachable.
 */
export class RedisFirstRequestLimiter implements FixedWindowLimiter {
  readonly #fallback = new MemoryFirstRequestLimiter();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async hit(bucket: string, client: string, rule: RateRule, nowMs = Date.now()): Promise<RateDecision> {
    if (this.redis.status !== 'ready') return this.#fallback.hit(bucket, client, rule, nowMs);
    try {
      const reply = (await HIT_FIRST_REQUEST_WINDOW.run(
        this.redis,
        [`${this.prefix}rl:${bucket}:${client}`],
        [rule.windowSeconds * 1000],
      )) as [number, number];
      const [count, ttlMs] = reply;
      return decide(rule, Number(count), (nowMs + Math.max(0, Number(ttlMs))) / 1000, nowMs);
    } catch (error) {
      if (!isRedisUnavailable(error)) throw error;
      return this.#fallback.hit(bucket, client, rule, nowMs);
    }
  }
}
