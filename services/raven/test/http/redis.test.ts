// Redis mode of the real bin: §8 cases 37 (outage → 503, recovery without restart) and 38 (cluster workers).
// Case 37 pauses a private redis-server (a pause of the shared test server would stall every other suite).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { testRedisUrl } from '@quintet/kernel/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, PDF, startRaven, upload } from './harness.js';

const sharedRedis = await testRedisUrl();
const haveRedisServer = spawnSync('redis-server', ['--version']).status === 0;

describe.skipIf(!haveRedisServer)('Redis outage (case 37)', () => {
  let server: ChildProcess;
  let url = '';
  beforeAll(async () => {
    const port = await freePort();
    server = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    url = `redis://127.0.0.1:${port}/0`;
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        await client.connect();
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await client.quit();
  });
  afterAll(() => {
    server.kill('SIGTERM');
  });

  it('answers 503 with Retry-After within 3 s while Redis is paused, then recovers', async () => {
    const raven = await startRaven({ REDIS_URL: url, REDIS_COMMAND_TIMEOUT_MS: '500' });
    const admin = new Redis(url);
    try {
      const created = await upload(raven.url, [{ name: 'file', filename: 'doc.pdf', data: PDF }]);
      expect(created.status).toBe(201);
      const key = ((await created.json()) as { key: string }).key;

      await admin.call('CLIENT', 'PAUSE', '6000', 'ALL');
      const pausedAt = Date.now();
      const started = Date.now();
      const status = await fetch(`${raven.url}/status/${key}`);
      expect(status.status).toBe(503);
      expect(status.headers.get('retry-after')).toBe('5');
      expect(await status.json()).toEqual({ detail: 'Service temporarily unavailable' });
      const refused = await upload(raven.url, [{ name: 'file', filename: 'doc.pdf', data: PDF }]);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('5');
      expect(Date.now() - started).toBeLessThan(3000);
      const health = await fetch(`${raven.url}/health/`);
      expect(health.status).toBe(503);

      await new Promise((r) => setTimeout(r, Math.max(0, 6500 - (Date.now() - pausedAt))));
      let recovered = 0;
      for (let attempt = 0; attempt < 40 && recovered !== 200; attempt++) {
        recovered = (await fetch(`${raven.url}/status/${key}`)).status;
        if (recovered !== 200) await new Promise((r) => setTimeout(r, 250));
      }
      expect(recovered).toBe(200);
      const again = await upload(raven.url, [{ name: 'file', filename: 'doc.pdf', data: PDF }]);
      expect(again.status).toBe(201);
    } finally {
      admin.disconnect();
      expect(await raven.stop()).toBe(0);
    }
  }, 30_000);
});

describe.skipIf(sharedRedis === null)('cluster workers on one Redis (case 38)', () => {
  it('gives exactly uses × 200 for simultaneous downloads, and one heartbeat per worker', async () => {
    const prefix = `raven-http-test-${randomBytes(4).toString('hex')}:`;
    // The 16 refused downloads must not block the client's IP mid-race (that is another test's subject): under
    // load, a block recorded early would refuse a request before it reached the use counter.
    const raven = await startRaven(
      { REDIS_URL: sharedRedis as string, REDIS_KEY_PREFIX: prefix, DOWNLOAD_FAIL_LIMIT: '1000' },
      ['--workers', '2'],
    );
    const admin = new Redis(sharedRedis as string);
    try {
      const created = await upload(raven.url, [
        { name: 'file', filename: 'doc.pdf', data: PDF },
        { name: 'uses', value: '4' },
      ]);
      expect(created.status).toBe(201);
      const key = ((await created.json()) as { key: string }).key;
      const statuses = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const response = await fetch(`${raven.url}/download/${key}`, { headers: { connection: 'close' } });
          await response.arrayBuffer();
          return response.status;
        }),
      );
      expect(statuses.filter((status) => status === 200)).toHaveLength(4);
      expect(statuses.filter((status) => status === 410)).toHaveLength(16);

      let heartbeats: string[] = [];
      for (let attempt = 0; attempt < 40 && heartbeats.length < 2; attempt++) {
        heartbeats = await admin.keys(`${prefix}health:heartbeat:*`);
        if (heartbeats.length < 2) await new Promise((r) => setTimeout(r, 100));
      }
      expect(heartbeats).toHaveLength(2);
      for (const heartbeat of heartbeats) expect(await admin.ttl(heartbeat)).toBeGreaterThan(0);
    } finally {
      expect(await raven.stop()).toBe(0);
      const leftovers = await admin.keys(`${prefix}*`);
      if (leftovers.length > 0) await admin.del(...leftovers);
      admin.disconnect();
    }
  }, 30_000);
});
