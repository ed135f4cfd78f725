// Fan-out across instances through a real Redis (spec §3.7, §7.2 "Redis down"; §8 cases 33, 34). Skipped
// when the Redis test server is unreachable (and failing in CI, where testRedisUrl throws).
import { randomBytes } from 'node:crypto';
import { CuttableProxy, testRedisUrl } from '@quintet/kernel/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricValue, openSocket, startTestDashboard, type TestDashboard, until } from './harness.js';

const redisUrl = await testRedisUrl();

describe.skipIf(redisUrl === null)('two instances sharing a real Redis', () => {
  const channel = `owsc-test:${process.pid}:${randomBytes(4).toString('hex')}`;
  let a: TestDashboard;
  let b: TestDashboard;
  let proxy: CuttableProxy;
  let publisher: Redis;

  beforeAll(async () => {
    proxy = CuttableProxy.for(redisUrl as string, 6379);
    await proxy.start();
    // A talks to Redis directly; B through the proxy the outage test cuts.
    [a, b] = await Promise.all([
      startTestDashboard({ OW_SC_REDIS_URL: redisUrl as string, OW_SC_REDIS_CHANNEL: channel }),
      startTestDashboard({ OW_SC_REDIS_URL: proxy.via(redisUrl as string), OW_SC_REDIS_CHANNEL: channel }),
    ]);
    publisher = new Redis(redisUrl as string);
    await until(
      async () =>
        (await fetch(`${b.url}/readyz`)).status === 200 && (await fetch(`${a.url}/readyz`)).status === 200,
    );
  });
  afterAll(async () => {
    publisher?.disconnect();
    await Promise.all([a?.close(), b?.close()]);
    await proxy?.cut();
  });

  it('delivers a reading accepted on A once to B, which buffers it; own-origin envelopes are ignored (case 33)', async () => {
    const statusA = (await (await fetch(`${a.url}/api/status`)).json()) as {
      instance_id: string;
      redis: string;
    };
    const statusB = (await (await fetch(`${b.url}/api/status`)).json()) as {
      instance_id: string;
      redis: string;
    };
    expect(statusA.redis).toBe('up');
    expect(statusB.redis).toBe('up');
    expect(statusA.instance_id).not.toBe(statusB.instance_id);

    const onA = await openSocket(`${a.wsUrl}/ws/effluent`);
    const onB = await openSocket(`${b.wsUrl}/ws/effluent`);
    const alertsOnB = await openSocket(`${b.wsUrl}/ws/alerts`);
    onA.send({ species: 'Ni', concentration: 0.5, time: 7 });
    const received = (await onB.next(3000)) as Record<string, unknown>;
    expect(received).toMatchObject({ species: 'Ni', concentration: 0.5, time: 7 });
    expect(typeof received.timestamp).toBe('number');
    expect(await onB.silentFor(300)).toBe(true);
    expect(await onA.silentFor(0)).toBe(true);

    const streamsB = (await (await fetch(`${b.url}/api/streams`)).json()) as {
      count: number;
      data: unknown[];
    };
    expect(streamsB.count).toBe(1);
    expect(streamsB.data[0]).toEqual(received);
    expect(((await (await fetch(`${b.url}/readyz`)).json()) as { buffer_size: number }).buffer_size).toBe(1);

    // The live alert A raised reaches B's /ws/alerts clients (Ni 0.5 > 0.1).
    const pushed = [await alertsOnB.next(5000), await alertsOnB.next(5000)] as Record<string, unknown>[];
    expect(pushed.map((event) => event.type).sort()).toEqual(['alert', 'incident']);

    // An envelope carrying B's own id is ignored by B; one that is not an envelope is counted and skipped.
    const errorsBefore = metricValue(await (await fetch(`${b.url}/metrics`)).text(), 'ws_errors_total') ?? 0;
    await publisher.publish(
      channel,
      JSON.stringify({ origin: statusB.instance_id, payload: { species: 'own' } }),
    );
    await publisher.publish(channel, JSON.stringify({ origin: 'elsewhere', payload: [1, 2] }));
    await publisher.publish(channel, 'not json');
    await publisher.publish(
      channel,
      JSON.stringify({ origin: 'elsewhere', payload: { species: 'foreign' } }),
    );
    expect(((await onB.next(3000)) as { species: string }).species).toBe('foreign');
    const metricsB = await (await fetch(`${b.url}/metrics`)).text();
    expect((metricValue(metricsB, 'ws_errors_total') ?? 0) - errorsBefore).toBe(2);
    expect(metricValue(metricsB, 'owsc_fanout_received_total')).toBeGreaterThanOrEqual(2);
    expect(metricValue(metricsB, 'owsc_redis_up')).toBe(1);
    expect(
      metricValue(await (await fetch(`${a.url}/metrics`)).text(), 'owsc_fanout_published_total'),
    ).toBeGreaterThanOrEqual(1);
    for (const client of [onA, onB, alertsOnB]) client.close();
  });

  it('reports Redis down on /readyz while it is unreachable, keeps local delivery and resumes (case 34)', async () => {
    const localSender = await openSocket(`${b.wsUrl}/ws/effluent`);
    const localReceiver = await openSocket(`${b.wsUrl}/ws/effluent`);
    const onA = await openSocket(`${a.wsUrl}/ws/effluent`);

    await proxy.cut();
    expect(await until(async () => (await fetch(`${b.url}/readyz`)).status === 503, 5000)).toBe(true);
    const notReady = await (await fetch(`${b.url}/readyz`)).json();
    expect(notReady).toMatchObject({
      status: 'not_ready',
      checks: { db: 'up', redis: 'down', shutting_down: false },
    });
    const status = (await (await fetch(`${b.url}/api/status`)).json()) as { status: string; redis: string };
    expect(status).toMatchObject({ status: 'degraded', redis: 'down' });
    expect(metricValue(await (await fetch(`${b.url}/metrics`)).text(), 'owsc_redis_up')).toBe(0);
    // The API still answers: the shared rate limit falls back to memory.
    expect((await fetch(`${b.url}/api/health`)).status).toBe(200);

    localSender.send({ species: 'Cu', during: 'outage' });
    expect(await localReceiver.next(2000)).toMatchObject({ during: 'outage' });

    await proxy.restore();
    expect(await until(async () => (await fetch(`${b.url}/readyz`)).status === 200, 10_000)).toBe(true);
    localSender.send({ species: 'Cu', during: 'after' });
    expect(await localReceiver.next(2000)).toMatchObject({ during: 'after' });
    // Messages published during the outage are not replayed; the one after it arrives once.
    const fromB = (await onA.next(3000)) as { during: string };
    expect(fromB.during).toBe('after');
    expect(await onA.silentFor(300)).toBe(true);
    for (const client of [localSender, localReceiver, onA]) client.close();
  });
});
