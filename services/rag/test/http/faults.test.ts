// Dependency outages (spec §7 "Database down", "Redis down"): PostgreSQL and Redis test servers reached through a
// TCP proxy the test cuts and restores. Database down → `/ready` and `/health` 503 and API requests 503
// `Database unavailable`; Redis down → rate limits fall back to memory with one `ratelimit_degraded` warning,
// revocation checks 503, `/health` 503. Both recover without a restart. Skipped when the test server is not
// reachable (failing in CI).
import { CuttableProxy, createTestDatabase, testDatabaseUrl, testRedisUrl } from '@quintet/kernel/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, startTestServer, type TestServer, until } from './harness.js';

const databaseUrl = await testDatabaseUrl();
const redisUrl = await testRedisUrl();

describe.skipIf(databaseUrl === null)('database down', () => {
  let proxy: CuttableProxy;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let server: TestServer;

  beforeAll(async () => {
    database = await createTestDatabase('rag_faults');
    proxy = CuttableProxy.for(database.url, 5432);
    await proxy.start();
    server = await startTestServer({ DATABASE_URL: proxy.via(database.url) });
  }, 30_000);
  afterAll(async () => {
    await server?.close();
    await proxy?.cut();
    await database?.drop();
  });

  it('answers 503 on /ready, /health and the API while PostgreSQL is unreachable, and recovers without a restart', async () => {
    const user = await createUser(server, 'db-outage@example.com');
    expect((await server.request('GET', '/api/stores', { token: user.token })).status).toBe(200);

    // The in-process ingestion consumer keeps polling its queue: queries are in flight when the cut comes.
    await proxy.cut();
    const ready = await server.request('GET', '/ready');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ database: false });
    const health = await server.request('GET', '/health');
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ database: false });
    for (const [method, path] of [
      ['GET', '/api/stores'],
      ['POST', '/api/stores'],
      ['GET', '/api/chat/sessions'],
    ] as const) {
      const response = await server.request(method, path, {
        token: user.token,
        ...(method === 'POST' ? { body: { display_name: 'During the outage' } } : {}),
      });
      expect([path, response.status, response.body]).toEqual([path, 503, { detail: 'Database unavailable' }]);
    }
    expect((await server.request('GET', '/live')).status).toBe(200);

    await proxy.restore();
    expect(await until(async () => (await server.request('GET', '/ready')).status === 200, 10_000)).toBe(
      true,
    );
    expect((await server.request('GET', '/health')).body).toMatchObject({ database: true });
    const stores = await server.request('GET', '/api/stores', { token: user.token });
    expect([stores.status, stores.body]).toEqual([200, []]);
  }, 30_000);
});

describe.skipIf(redisUrl === null)('Redis down', () => {
  let proxy: CuttableProxy;
  let server: TestServer;

  beforeAll(async () => {
    proxy = CuttableProxy.for(redisUrl as string, 6379);
    await proxy.start();
    server = await startTestServer({
      REDIS_URL: proxy.via(redisUrl as string),
      INGEST_IN_PROCESS: 'false',
    });
  }, 30_000);
  afterAll(async () => {
    await server?.close();
    await proxy?.cut();
  });

  it('falls back to memory rate limits with one warning, refuses revocation checks with 503, and recovers', async () => {
    const user = await createUser(server, `redis-outage-${Date.now()}@example.com`);
    expect((await server.request('GET', '/api/stores', { token: user.token })).status).toBe(200);
    const degraded = () => server.logs.filter((line) => line.event === 'ratelimit_degraded');
    expect(degraded()).toEqual([]);

    await proxy.cut();
    expect(await until(async () => (await server.request('GET', '/health')).status === 503, 5_000)).toBe(
      true,
    );
    expect((await server.request('GET', '/health')).body).toMatchObject({ redis: false, database: true });
    expect((await server.request('GET', '/ready')).status).toBe(503);
    for (let i = 0; i < 3; i++) {
      const response = await server.request('GET', '/api/stores', { token: user.token });
      expect([response.status, response.body]).toEqual([
        503,
        { detail: 'Revocation service unavailable; please retry shortly' },
      ]);
      // The global limit still counts (in memory) and answers its headers.
      expect(response.headers.get('x-ratelimit-limit')).toBe('120');
    }
    // Requests without a token need no revocation check: the memory limiter serves them.
    const anonymous = await server.request('GET', '/api/settings');
    expect(anonymous.status).toBe(200);
    expect(Number(anonymous.headers.get('x-ratelimit-remaining'))).toBeLessThan(120);
    expect(degraded()).toHaveLength(1);
    expect(degraded()[0]).toMatchObject({ level: 'warn' });
    expect(server.logs.some((line) => line.event === 'auth_revocation_degraded')).toBe(true);

    await proxy.restore();
    expect(
      await until(
        async () => (await server.request('GET', '/api/stores', { token: user.token })).status === 200,
        10_000,
      ),
    ).toBe(true);
    expect((await server.request('GET', '/health')).status).toBe(200);
    expect(degraded()).toHaveLength(1);
  }, 30_000);
});
