import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  describeRule,
  type FixedWindowLimiter,
  MemoryFirstRequestLimiter,
  MemoryFixedWindowLimiter,
  parseRateRule,
  RedisFirstRequestLimiter,
  RedisFixedWindowLimiter,
} from '../src/rate-limit.js';
import { connectRedis, type Redis, waitForRedis } from '../src/redis.js';
import { testRedisUrl } from '../src/testing.js';

const url = await testRedisUrl();

describe('parseRateRule / describeRule', () => {
  it('accepts N/unit and N per unit, singular or plural', () => {
    expect(parseRateRule('30/hour')).toEqual({ limit: 30, unit: 'hour', windowSeconds: 3600 });
    expect(parseRateRule('30 per hour')).toEqual({ limit: 30, unit: 'hour', windowSeconds: 3600 });
    expect(parseRateRule(' 5 per 1 Minute ')).toEqual({ limit: 5, unit: 'minute', windowSeconds: 60 });
    expect(parseRateRule('10/seconds')).toEqual({ limit: 10, unit: 'second', windowSeconds: 1 });
    expect(parseRateRule('100 per days')).toEqual({ limit: 100, unit: 'day', windowSeconds: 86_400 });
  });

  it('rejects garbage', () => {
    for (const bad of [
      '',
      'thirty/hour',
      '30',
      '30/fortnight',
      '30 hour',
      '-1/hour',
      '0/hour',
      '30/2 hours',
    ]) {
      expect(() => parseRateRule(bad), bad).toThrow(/invalid rate limit/);
    }
  });

  it('describes a rule the way clients see it', () => {
    expect(describeRule(parseRateRule('30/hours'))).toBe('30 per 1 hour');
    expect(describeRule(parseRateRule('1 per second'))).toBe('1 per 1 second');
  });
});

interface LimiterHarness {
  limiter: FixedWindowLimiter;
  /** TTL of the counter key in seconds, or null when the backend has no keys to inspect. */
  ttlSeconds?: (bucket: string, client: string, windowStart: number) => Promise<number>;
}

function limiterContract(name: string, make: () => LimiterHarness) {
  describe(name, () => {
    const hour = parseRateRule('3/hour');
    // A fixed instant 10 s into an hour window: 2030-01-01T00:00:10Z.
    const windowStart = Date.UTC(2030, 0, 1) / 1000;
    const t0 = windowStart * 1000 + 10_000;

    it('allows N hits per window and then refuses, with remaining, reset and retry-after', async () => {
      const { limiter } = make();
      const client = `c-${randomUUID()}`;
      const seen = [];
      for (let i = 0; i < 5; i++) seen.push(await limiter.hit('upload', client, hour, t0 + i * 1000));
      expect(seen.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
      expect(seen.map((d) => d.remaining)).toEqual([2, 1, 0, 0, 0]);
      for (const d of seen) {
        expect(d.limit).toBe(3);
        expect(d.resetEpochSeconds).toBe(windowStart + 3600);
      }
      expect(seen[0]?.retryAfterSeconds).toBe(3590);
      expect(seen[4]?.retryAfterSeconds).toBe(3586);
    });

    it('aligns windows to epoch multiples: a new window starts fresh', async () => {
      const { limiter } = make();
      const client = `c-${randomUUID()}`;
      for (let i = 0; i < 4; i++) await limiter.hit('upload', client, hour, t0);
      const lastMsOfWindow = (windowStart + 3600) * 1000 - 1;
      expect((await limiter.hit('upload', client, hour, lastMsOfWindow)).allowed).toBe(false);
      expect((await limiter.hit('upload', client, hour, lastMsOfWindow)).retryAfterSeconds).toBe(1);
      const next = await limiter.hit('upload', client, hour, lastMsOfWindow + 1);
      expect(next.allowed).toBe(true);
      expect(next.remaining).toBe(2);
      expect(next.resetEpochSeconds).toBe(windowStart + 7200);
    });

    it('keeps buckets and clients apart', async () => {
      const { limiter } = make();
      const one = parseRateRule('1/minute');
      const a = `a-${randomUUID()}`;
      const b = `b-${randomUUID()}`;
      expect((await limiter.hit('upload', a, one, t0)).allowed).toBe(true);
      expect((await limiter.hit('upload', a, one, t0)).allowed).toBe(false);
      expect((await limiter.hit('health', a, one, t0)).allowed).toBe(true);
      expect((await limiter.hit('upload', b, one, t0)).allowed).toBe(true);
    });

    it('counts concurrent hits exactly', async () => {
      const { limiter } = make();
      const client = `c-${randomUUID()}`;
      const rule = parseRateRule('10/minute');
      const all = await Promise.all(
        Array.from({ length: 40 }, () => limiter.hit('upload', client, rule, t0)),
      );
      expect(all.filter((d) => d.allowed)).toHaveLength(10);
    });

    it('gives the counter a TTL of one window length', async () => {
      const harness = make();
      if (!harness.ttlSeconds) return;
      const client = `c-${randomUUID()}`;
      await harness.limiter.hit('upload', client, hour, t0);
      const ttl = await harness.ttlSeconds('upload', client, windowStart);
      expect(ttl).toBeGreaterThan(3590);
      expect(ttl).toBeLessThanOrEqual(3600);
    });
  });
}

limiterContract('MemoryFixedWindowLimiter', () => ({ limiter: new MemoryFixedWindowLimiter() }));

describe('MemoryFixedWindowLimiter housekeeping', () => {
  it('drops counters of windows that have ended', async () => {
    const limiter = new MemoryFixedWindowLimiter();
    const rule = parseRateRule('5/second');
    for (let i = 0; i < 20; i++) await limiter.hit('b', `client-${i}`, rule, 1_000_000);
    expect(limiter.size).toBe(20);
    await limiter.hit('b', 'late', rule, 1_005_000);
    expect(limiter.size).toBe(1);
  });
});

describe.skipIf(!url)('RedisFixedWindowLimiter (Redis test server)', () => {
  const prefix = `test:rate-limit:${process.pid}:${randomUUID()}:`;
  let redis: Redis;

  beforeAll(async () => {
    redis = connectRedis(url ?? '', { commandTimeoutMs: 2000, name: 'rate-limit-test' });
    await waitForRedis(redis, 5000);
  });

  afterAll(async () => {
    if (!redis) return;
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  limiterContract('contract', () => ({
    limiter: new RedisFixedWindowLimiter(redis, prefix),
    ttlSeconds: (bucket, client, start) => redis.ttl(`${prefix}rl:${bucket}:${client}:${start}`),
  }));

  it('uses the documented key layout', async () => {
    const limiter = new RedisFixedWindowLimiter(redis, prefix);
    const nowMs = Date.UTC(2030, 0, 1, 5, 30) + 123;
    await limiter.hit('health', '203.0.113.9', parseRateRule('60/minute'), nowMs);
    const start = Math.floor(nowMs / 60_000) * 60;
    expect(await redis.get(`${prefix}rl:health:203.0.113.9:${start}`)).toBe('1');
  });
});

describe('MemoryFirstRequestLimiter', () => {
  const rule = parseRateRule('3/second');

  it('starts the window at the first request of a key, not at a clock boundary', async () => {
    const limiter = new MemoryFirstRequestLimiter();
    const t0 = Date.UTC(2030, 0, 1) + 700; // 0.7 s into a clock second
    for (let i = 0; i < 3; i++)
      expect((await limiter.hit('api', 'ip', rule, t0 + i * 100)).allowed).toBe(true);
    // 1.05 s after the first request the aligned window would have restarted; this one has 0.1 s left.
    const refused = await limiter.hit('api', 'ip', rule, t0 + 900);
    expect(refused).toMatchObject({ allowed: false, remaining: 0, retryAfterSeconds: 1 });
    expect(refused.resetEpochSeconds).toBe((t0 + 1000) / 1000);
    expect((await limiter.hit('api', 'ip', rule, t0 + 1000)).allowed).toBe(true);
  });

  it('keeps keys apart and counts a new window from its own first request', async () => {
    const limiter = new MemoryFirstRequestLimiter();
    const t0 = 5_000_000;
    for (let i = 0; i < 3; i++) await limiter.hit('api', 'a', rule, t0);
    expect((await limiter.hit('api', 'a', rule, t0)).allowed).toBe(false);
    expect((await limiter.hit('api', 'b', rule, t0)).allowed).toBe(true);
    expect((await limiter.hit('other', 'a', rule, t0)).allowed).toBe(true);
    expect((await limiter.hit('api', 'a', rule, t0 + 1500)).remaining).toBe(2);
  });
});

describe.skipIf(!url)('RedisFirstRequestLimiter (Redis test server)', () => {
  const prefix = `test:rate-limit-first:${process.pid}:${randomUUID()}:`;
  let redis: Redis;

  beforeAll(async () => {
    redis = connectRedis(url ?? '', { commandTimeoutMs: 2000, name: 'rate-limit-first-test' });
    await waitForRedis(redis, 5000);
  });

  afterAll(async () => {
    if (!redis) return;
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('shares one counter per key whose expiry is set by the first request', async () => {
    const rule = parseRateRule('3/second');
    const one = new RedisFirstRequestLimiter(redis, prefix);
    const two = new RedisFirstRequestLimiter(redis, prefix);
    const decisions = [];
    for (let i = 0; i < 4; i++) decisions.push(await (i % 2 === 0 ? one : two).hit('api', 'ip', rule));
    expect(decisions.map((decision) => decision.allowed)).toEqual([true, true, true, false]);
    const ttl = await redis.pttl(`${prefix}rl:api:ip`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1000);
    await new Promise((resolve) => setTimeout(resolve, ttl + 50));
    expect((await one.hit('api', 'ip', rule)).remaining).toBe(2);
  });

  it('falls back to in-memory counters while Redis is unreachable', async () => {
    const client = connectRedis(url ?? '', { commandTimeoutMs: 500, name: 'rate-limit-first-down' });
    await waitForRedis(client, 5000);
    const limiter = new RedisFirstRequestLimiter(client, prefix);
    client.disconnect();
    const rule = parseRateRule('1/second');
    expect((await limiter.hit('api', 'down', rule)).allowed).toBe(true);
    expect((await limiter.hit('api', 'down', rule)).allowed).toBe(false);
  });
});
