// POST /api/advise (spec §3.5, §3.6; §5 item 12; acceptance 27), with the catalogue and with a local fake
// OpenAI-compatible server.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDashboard, type TestDashboard } from './harness.js';

type Json = Record<string, unknown>;

function advise(base: string, body: unknown, contentType = 'application/json'): Promise<Response> {
  return fetch(`${base}/api/advise`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('advice from the catalogue', () => {
  let owsc: TestDashboard;
  beforeAll(async () => {
    owsc = await startTestDashboard({ OW_SC_RL_PER_SEC: '0', OW_SC_MAX_JSON_BYTES: '2000000' });
  });
  afterAll(async () => {
    await owsc.close();
  });

  it('answers the examples of spec §3.5 (case 27)', async () => {
    const response = await advise(owsc.url, {
      alerts: [
        { species: 'SO4', level: 'critical' },
        { species: 'Co' },
        {},
        { species: 'As', level: 'warning' },
      ],
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const body = (await response.json()) as Json;
    const actions = [
      '[CRITICAL] SO4: Increase lime dosing; verify gypsum precipitation; reduce discharge rate',
      '[INFO] Co: Review Co treatment process and verify setpoints',
      '[INFO] : Increase treatment intensity',
      '[WARNING] As: Adjust pH to 7-8; add ferric coagulant; check filter performance',
    ];
    expect(body).toEqual({
      alert_count: 4,
      actions,
      recommendations: [
        { species: 'SO4', action: actions[0] },
        { species: 'Co', action: actions[1] },
        { species: '', action: actions[2] },
        { species: 'As', action: actions[3] },
      ],
      by_species: [
        {
          species: 'SO4',
          alert_count: 1,
          highest_level: 'critical',
          priority: 'MED',
          action: 'Increase lime dosing; verify gypsum precipitation; reduce discharge rate',
        },
        {
          species: 'As',
          alert_count: 1,
          highest_level: 'warning',
          priority: 'HIGH',
          action: 'Adjust pH to 7-8; add ferric coagulant; check filter performance',
        },
        {
          species: '',
          alert_count: 1,
          highest_level: 'info',
          priority: 'LOW',
          action: 'Increase treatment intensity',
        },
        {
          species: 'Co',
          alert_count: 1,
          highest_level: 'info',
          priority: 'LOW',
          action: 'Review Co treatment process and verify setpoints',
        },
      ],
      provider: 'catalogue',
      rationale: expect.any(String),
    });
  });

  it('orders by_species by highest level, then species, and groups alerts (case 27)', async () => {
    const response = await advise(owsc.url, {
      alerts: [
        { species: 'Ni', level: 'watch' },
        { species: 'Zn', level: 'critical' },
        { species: 'Cu', level: 'watch' },
        { species: 'Ni', level: 'critical' },
        { species: 'As' },
      ],
      site: 'Plant A',
    });
    const body = (await response.json()) as { by_species: Json[] };
    expect(body.by_species.map((entry) => [entry.species, entry.highest_level, entry.alert_count])).toEqual([
      ['Ni', 'critical', 2],
      ['Zn', 'critical', 1],
      ['Cu', 'watch', 1],
      ['As', 'info', 1],
    ]);
  });

  it('answers an empty or absent alert list with empty lists', async () => {
    for (const body of [{}, { alerts: [] }]) {
      const response = await advise(owsc.url, body);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({
        alert_count: 0,
        actions: [],
        recommendations: [],
        by_species: [],
        provider: 'catalogue',
      });
    }
  });

  it('refuses non-list alerts, non-object items, a bad site and invalid JSON with 422 (§4 item 16)', async () => {
    const cases: [unknown, unknown[]][] = [
      [{ alerts: 'SO4' }, ['body', 'alerts']],
      [{ alerts: { species: 'SO4' } }, ['body', 'alerts']],
      [{ alerts: [{ species: 'SO4' }, 3] }, ['body', 'alerts', 1]],
      [{ alerts: [], site: 5 }, ['body', 'site']],
      [[{ species: 'SO4' }], ['body']],
      ['{"alerts": [', ['body']],
    ];
    for (const [body, loc] of cases) {
      const response = await advise(owsc.url, body);
      expect(response.status, JSON.stringify(body)).toBe(422);
      const detail = ((await response.json()) as { detail: Json[] }).detail;
      expect(detail[0]?.loc).toEqual(loc);
      expect(typeof detail[0]?.msg).toBe('string');
      expect(typeof detail[0]?.type).toBe('string');
    }
  });

  it('accepts 10,000 alerts and refuses 10,001 with 413', async () => {
    const alerts = Array.from({ length: 10_000 }, () => ({ species: 'SO4', level: 'watch' }));
    const ok = await advise(owsc.url, { alerts });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as Json).alert_count).toBe(10_000);
    const tooMany = await advise(owsc.url, { alerts: [...alerts, { species: 'As' }] });
    expect(tooMany.status).toBe(413);
    expect(await tooMany.json()).toEqual({ detail: 'too many alerts: more than 10000' });
  });
});

describe('advice from a hosted provider (fake OpenAI-compatible server)', () => {
  let owsc: TestDashboard;
  let fake: Server;
  let mode: 'ok' | 'error' | 'garbage' = 'ok';
  const requests: Json[] = [];

  beforeAll(async () => {
    fake = createServer((request, response) => {
      let text = '';
      request.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
      });
      request.on('end', () => {
        const body = JSON.parse(text) as { messages: { content: string }[] };
        requests.push({ path: request.url, authorization: request.headers.authorization, body });
        if (mode === 'error') {
          response.writeHead(500).end('{"error":"boom"}');
          return;
        }
        if (mode === 'garbage') {
          response
            .writeHead(200, { 'content-type': 'application/json' })
            .end('{"choices": [{"message": {"content": "no"}}]}');
          return;
        }
        const sent = JSON.parse(body.messages.at(-1)?.content ?? '{}') as { alerts: Json[] };
        const content = JSON.stringify({
          actions: sent.alerts.map((alert) => `Hosted action for ${alert.species}`),
          rationale: 'Hosted reasoning',
        });
        response
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ choices: [{ message: { content } }] }));
      });
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const port = (fake.address() as AddressInfo).port;
    owsc = await startTestDashboard({
      OW_SC_RL_PER_SEC: '0',
      OW_SC_ADVICE_PROVIDER: 'openai',
      OPENAI_API_KEY: 'sk-test-key',
      OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1`,
    });
  });
  afterAll(async () => {
    await owsc.close();
    await new Promise((resolve) => fake.close(resolve));
  });

  it('uses the hosted actions with the [LEVEL] prefix and reports provider openai', async () => {
    mode = 'ok';
    const response = await advise(owsc.url, {
      alerts: [{ species: 'SO4', level: 'critical' }, { species: 'Ni' }],
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Json;
    expect(body).toMatchObject({
      alert_count: 2,
      actions: ['[CRITICAL] SO4: Hosted action for SO4', '[INFO] Ni: Hosted action for Ni'],
      provider: 'openai',
      rationale: 'Hosted reasoning',
    });
    expect(requests.at(-1)).toMatchObject({
      path: '/v1/chat/completions',
      authorization: 'Bearer sk-test-key',
    });
    // The same request again comes from the cache: the fake server is not asked twice.
    const count = requests.length;
    const cached = (await (
      await advise(owsc.url, { alerts: [{ species: 'SO4', level: 'critical' }, { species: 'Ni' }] })
    ).json()) as Json;
    expect(cached.provider).toBe('openai');
    expect(requests.length).toBe(count);
  });

  it('falls back to the catalogue on an invalid answer', async () => {
    mode = 'garbage';
    const body = (await (
      await advise(owsc.url, { alerts: [{ species: 'As', level: 'watch' }] })
    ).json()) as Json;
    expect(body).toMatchObject({
      provider: 'catalogue',
      actions: ['[WATCH] As: Adjust pH to 7-8; add ferric coagulant; check filter performance'],
    });
  });

  it('falls back to the catalogue after server errors (retried)', async () => {
    mode = 'error';
    const before = requests.length;
    const body = (await (await advise(owsc.url, { alerts: [{ species: 'Cu' }] })).json()) as Json;
    expect(body).toMatchObject({
      provider: 'catalogue',
      actions: [
        '[INFO] Cu: Raise pH to 9-10 for hydroxide precipitation; check sulfide or chelant dose; verify clarifier solids capture',
      ],
    });
    expect(requests.length - before).toBe(4);
    expect(owsc.rawLogs.join('')).not.toContain('sk-test-key');
  });
});
