// Probes, metrics and the read-only API of spec §3.5/§3.9 (§8 cases 20, 24, 38).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSocket, startTestDashboard, type TestDashboard, until } from './harness.js';

const API_TOKEN = 'operational-api-token';
const METRICS_TOKEN = 'operational-metrics-token';

describe('with /metrics protected by its own token', () => {
  let server: TestDashboard;
  beforeAll(async () => {
    server = await startTestDashboard({
      OW_SC_API_TOKEN: API_TOKEN,
      OW_SC_METRICS_PROTECT: '1',
      OW_SC_METRICS_TOKEN: METRICS_TOKEN,
      OW_SC_RL_PER_SEC: '0',
      OW_SC_STREAM_BUFFER: '5',
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('answers /health, /livez and /readyz with the documented bodies (case 20)', async () => {
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({
      status: 'healthy',
      service: 'openworld-specialty-chemicals',
      version: '0.1.0',
    });

    const before = Date.now() / 1000;
    const live = (await (await fetch(`${server.url}/livez`)).json()) as { status: string; timestamp: number };
    expect(live.status).toBe('live');
    expect(live.timestamp).toBeGreaterThanOrEqual(before - 1);
    expect(live.timestamp).toBeLessThanOrEqual(Date.now() / 1000 + 1);

    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', buffer_size: 0 });
  });

  it('requires the metrics token, not the API token, when one is set (case 24)', async () => {
    const without = await fetch(`${server.url}/metrics`);
    expect(without.status).toBe(401);
    expect(without.headers.get('www-authenticate')).toBe('Bearer');
    expect(without.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await without.json()).toEqual({ detail: 'Unauthorized' });

    const withApiToken = await fetch(`${server.url}/metrics`, {
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    expect(withApiToken.status).toBe(401);

    const withMetricsToken = await fetch(`${server.url}/metrics`, {
      headers: { authorization: `bearer ${METRICS_TOKEN}` },
    });
    expect(withMetricsToken.status).toBe(200);
  });

  it('exports the contract series with 0.0.4 text, plain bucket bounds and no default labels (case 38)', async () => {
    const client = await openSocket(`${server.wsUrl}/ws/effluent`, {
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    client.send({ species: 'Zn', concentration: 1 });
    client.send('not json');
    expect(await client.next()).toEqual({ type: 'error', detail: 'invalid message: expected a JSON object' });
    client.close();
    await client.closed;

    const response = await fetch(`${server.url}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    const text = await response.text();
    for (const series of [
      'stream_buffer_len',
      'ws_active_connections',
      'ws_connections_total',
      'ws_messages_received_total',
      'ws_messages_broadcast_total',
      'ws_errors_total',
      'http_rate_limited_total',
      'owsc_csv_rows_total',
      'owsc_fanout_published_total',
      'owsc_fanout_received_total',
      'owsc_redis_up',
    ]) {
      expect(text, series).toMatch(new RegExp(`^${series} \\d+(\\.\\d+)?$`, 'm'));
    }
    expect(text).toMatch(/^ws_messages_received_total 2$/m);
    expect(text).toMatch(/^ws_errors_total 1$/m);
    expect(text).toMatch(/^ws_messages_dropped_total\{reason="invalid"\} 1$/m);
    expect(text).toMatch(/^stream_buffer_len 1$/m);
    expect(text).toMatch(/^ws_connections_total 1$/m);
    for (const bound of ['64', '128', '256', '512', '1024', '2048', '4096', '8192', '\\+Inf']) {
      expect(text).toMatch(new RegExp(`^ws_message_size_bytes_bucket\\{le="${bound}"\\} 1$`, 'm'));
    }
    expect(text).not.toMatch(/le="8192\.0"/);
    expect(text).not.toMatch(/_created/);
    expect(text).toMatch(/^# TYPE ws_message_size_bytes histogram$/m);
    expect(text).toMatch(/^# TYPE http_request_duration_seconds histogram$/m);
    expect(text).toMatch(/^http_requests_total\{method="GET",route="\/health",status="200"\} \d+$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).not.toContain(API_TOKEN);
  });

  it('reports status, streams and the permit under /api (spec §3.5)', async () => {
    const auth = { authorization: `Bearer ${API_TOKEN}` };
    const status = (await (await fetch(`${server.url}/api/status`, { headers: auth })).json()) as Record<
      string,
      unknown
    >;
    expect(status).toMatchObject({
      status: 'operational',
      max_buffer: 5,
      active_connections: 0,
      version: '0.1.0',
      redis: 'disabled',
      workers: 1,
    });
    expect(typeof status.uptime).toBe('number');
    expect(status.uptime as number).toBeLessThan(3600);
    expect(new Date(status.started_at as string).toISOString()).toBe(status.started_at);
    expect(status.instance_id).toMatch(/^[0-9a-f]{16}$/);
    expect(JSON.stringify(status)).not.toContain(API_TOKEN);

    expect(await (await fetch(`${server.url}/api/health`, { headers: auth })).json()).toEqual({
      status: 'ok',
    });

    // Fill the 5-item buffer past its capacity with two species.
    const client = await openSocket(`${server.wsUrl}/ws/effluent?token=${API_TOKEN}`);
    for (let index = 0; index < 7; index++) {
      client.send({ species: index % 2 === 0 ? 'SO4' : 'Cu', concentration: index, time: index });
    }
    expect(
      await until(() => server.context.streams.buffer.size === 5 && server.context.metrics !== undefined),
    ).toBe(true);
    // The last message of the seven is in the buffer once the buffer holds 5 with the newest time 6.
    expect(
      await until(async () => {
        const body = (await (await fetch(`${server.url}/api/streams`, { headers: auth })).json()) as {
          data: { time: number }[];
        };
        return body.data.at(-1)?.time === 6;
      }),
    ).toBe(true);
    client.close();

    const all = (await (await fetch(`${server.url}/api/streams`, { headers: auth })).json()) as {
      count: number;
      data: { time: number; species: string; timestamp: number }[];
    };
    expect(all.count).toBe(5);
    expect(all.data.map((item) => item.time)).toEqual([2, 3, 4, 5, 6]);
    expect(typeof all.data[0]?.timestamp).toBe('number');

    const so4 = (await (
      await fetch(`${server.url}/api/streams?species=SO4&limit=2`, { headers: auth })
    ).json()) as {
      count: number;
      data: { time: number }[];
    };
    expect(so4.count).toBe(3);
    expect(so4.data.map((item) => item.time)).toEqual([4, 6]);

    const huge = (await (await fetch(`${server.url}/api/streams?limit=1000`, { headers: auth })).json()) as {
      data: unknown[];
    };
    expect(huge.data).toHaveLength(5);

    for (const bad of ['0', '-1', '1.5', 'ten']) {
      const response = await fetch(`${server.url}/api/streams?limit=${bad}`, { headers: auth });
      expect(response.status, bad).toBe(422);
      const body = (await response.json()) as { detail: { loc: unknown[]; msg: string; type: string }[] };
      expect(body.detail[0]?.loc).toEqual(['query', 'limit']);
      expect(typeof body.detail[0]?.msg).toBe('string');
      expect(typeof body.detail[0]?.type).toBe('string');
    }

    const ready = (await (await fetch(`${server.url}/readyz`)).json()) as { buffer_size: number };
    expect(ready.buffer_size).toBe(5);

    const permit = await (await fetch(`${server.url}/api/permit`, { headers: auth })).json();
    expect(permit).toEqual({
      limits_mgL: { SO4: 250, As: 0.01, Ni: 0.1 },
      rolling_window: 3,
      actions: {
        SO4: 'Increase lime dosing; verify gypsum precipitation; reduce discharge rate.',
        As: 'Adjust pH to 7-8; add ferric coagulant; check filter performance.',
        Ni: 'Increase ion exchange cycle; ensure resin regeneration; check chelation dosing.',
      },
      daily_max_limits_mgL: {},
      monthly_average_limits_mgL: {},
      timezone: 'UTC',
      source: 'default',
    });
  });

  it('reports not_ready with the checks while shutting down (case 20)', async () => {
    server.context.state.shuttingDown = true;
    try {
      const response = await fetch(`${server.url}/readyz`);
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({
        status: 'not_ready',
        buffer_size: 5,
        checks: { db: 'up', redis: 'disabled', shutting_down: true },
      });
    } finally {
      server.context.state.shuttingDown = false;
    }
  });
});

describe('with /metrics protected and only an API token', () => {
  let server: TestDashboard;
  beforeAll(async () => {
    // This one runs on the embedded store, as a bare start-up does.
    server = await startTestDashboard(
      { OW_SC_API_TOKEN: API_TOKEN, OW_SC_METRICS_PROTECT: 'true' },
      { store: 'embedded' },
    );
  });
  afterAll(async () => {
    await server.close();
  });

  it('falls back to the API token (case 24)', async () => {
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status,
    ).toBe(401);
    const allowed = await fetch(`${server.url}/metrics`, {
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    expect(allowed.status).toBe(200);
    expect(await allowed.text()).toMatch(/^ws_active_connections 0$/m);
  });

  it('serves the dashboard page and its scripts under the CSP (spec §3.8)', async () => {
    const page = await fetch(`${server.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('x-request-id')).toMatch(/^[0-9a-f]{16}$/);
    const html = await page.text();
    expect(html).not.toMatch(/<script>[^<]/);
    const script = await fetch(`${server.url}/static/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(script.headers.get('cache-control')).toBe('public, max-age=3600');
    const head = await fetch(`${server.url}/static/style.css`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('text/css; charset=utf-8');
  });

  it('serves the page assets with their cache rules and refuses paths outside web/', async () => {
    const css = await fetch(`${server.url}/static/vendor/uPlot.min.css`);
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(css.headers.get('cache-control')).toBe('public, max-age=3600');
    for (const path of [
      '/static/../package.json',
      '/static/%2e%2e/package.json',
      '/static/nothing-here.js',
    ]) {
      const response = await fetch(`${server.url}${path}`);
      expect(response.status, path).toBe(404);
      expect(await response.json()).toEqual({ detail: 'Not Found' });
    }
  });
});
