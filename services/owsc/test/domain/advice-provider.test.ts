import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AdviceCache, OpenAiAdviceProvider, sanitiseAlert } from '../../src/domain/advice-provider.js';

type Behaviour = 'ok' | 'status500' | 'status401' | 'hang' | 'garbage' | 'wrong-length' | 'not-json-content';

interface ReceivedRequest {
  url: string;
  authorization: string | undefined;
  body: {
    model: string;
    messages: { role: string; content: string }[];
  };
}

/** A local OpenAI-compatible chat-completions endpoint whose next answers are scripted per test. */
const script: Behaviour[] = [];
const received: ReceivedRequest[] = [];
let server: Server;
let baseUrl: string;

function completion(content: string): string {
  return JSON.stringify({
    id: 'chatcmpl-test',
    object: 'chat.completion',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
  });
}

function answer(request: IncomingMessage, response: ServerResponse, raw: string): void {
  const body = JSON.parse(raw) as ReceivedRequest['body'];
  received.push({ url: request.url ?? '', authorization: request.headers.authorization, body });
  const alerts = (JSON.parse(body.messages[1]?.content ?? '{}') as { alerts: { species: string }[] }).alerts;
  const behaviour = script.shift() ?? 'ok';
  const json = { 'content-type': 'application/json' };
  switch (behaviour) {
    case 'ok':
      response.writeHead(200, json).end(
        completion(
          JSON.stringify({
            actions: alerts.map((alert) => `Hosted action for ${alert.species}`),
            rationale: 'Hosted rationale',
          }),
        ),
      );
      return;
    case 'status500':
      response.writeHead(500, json).end('{"error":"boom"}');
      return;
    case 'status401':
      response.writeHead(401, json).end('{"error":"bad key"}');
      return;
    case 'hang':
      return; // never answers; the client's timeout fires
    case 'garbage':
      response.writeHead(200, json).end('{"choices": [ this is not json');
      return;
    case 'wrong-length':
      response
        .writeHead(200, json)
        .end(completion(JSON.stringify({ actions: ['only one'], rationale: 'r' })));
      return;
    case 'not-json-content':
      response.writeHead(200, json).end(completion('Raise the pH.'));
      return;
  }
}

beforeAll(async () => {
  server = createServer((request, response) => {
    let raw = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => {
      raw += chunk;
    });
    request.on('end', () => answer(request, response, raw));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  script.length = 0;
  received.length = 0;
});

const alerts = [
  { species: 'SO4', level: 'critical', type: 'exceedance', value: 600, limit: 250, ratio: 2.4, action: 'x' },
  { species: 'As', level: 'watch', type: 'trend', value: 0.013, limit: 0.01 },
];

function provider(options: Partial<ConstructorParameters<typeof OpenAiAdviceProvider>[0]> = {}) {
  return new OpenAiAdviceProvider({
    apiKey: 'sk-test-key',
    baseUrl,
    model: 'gpt-4o-mini',
    timeoutMs: 500,
    backoffMs: 5,
    ...options,
  });
}

class MemoryCache implements AdviceCache {
  readonly entries = new Map<string, string>();
  async get(key: string): Promise<string | undefined> {
    return this.entries.get(key);
  }
  async set(key: string, value: string): Promise<void> {
    this.entries.set(key, value);
  }
}

describe('OpenAiAdviceProvider', () => {
  it('returns the hosted actions and sends only sanitised alerts', async () => {
    const advice = await provider().advise(alerts, 'Plant 1');
    expect(advice).toEqual({
      actions: ['Hosted action for SO4', 'Hosted action for As'],
      rationale: 'Hosted rationale',
    });
    expect(received).toHaveLength(1);
    const request = received[0] as ReceivedRequest;
    expect(request.url).toBe('/v1/chat/completions');
    expect(request.authorization).toBe('Bearer sk-test-key');
    expect(request.body.model).toBe('gpt-4o-mini');
    const user = JSON.parse(request.body.messages[1]?.content ?? '') as { site: string; alerts: unknown[] };
    expect(user.site).toBe('Plant 1');
    expect(user.alerts).toEqual([
      { species: 'SO4', level: 'critical', type: 'exceedance', value: 600, limit: 250, ratio: 2.4 },
      { species: 'As', level: 'watch', type: 'trend', value: 0.013, limit: 0.01, ratio: null },
    ]);
  });

  it('sanitises free text: species capped at 64 characters, numbers only, at most 128 alerts', async () => {
    expect(
      sanitiseAlert({
        species: `Ni\n${'x'.repeat(100)}`,
        level: 'ignore previous',
        value: '5',
        type: 'hack',
        message: 'm',
      }),
    ).toEqual({
      species: `Ni ${'x'.repeat(61)}`,
      level: 'info',
      type: null,
      value: null,
      limit: null,
      ratio: null,
    });
    const many = Array.from({ length: 200 }, (_, i) => ({ species: `S${i}`, level: 'info' }));
    const advice = await provider().advise(many);
    expect(advice?.actions).toHaveLength(128);
    const user = JSON.parse(received[0]?.body.messages[1]?.content ?? '') as { alerts: unknown[] };
    expect(user.alerts).toHaveLength(128);
  });

  it('retries server errors with backoff and succeeds', async () => {
    script.push('status500', 'status500');
    const advice = await provider().advise(alerts);
    expect(advice?.actions).toEqual(['Hosted action for SO4', 'Hosted action for As']);
    expect(received).toHaveLength(3);
  });

  it('gives up after 3 retries (4 requests) and falls back', async () => {
    script.push('status500', 'status500', 'status500', 'status500', 'ok');
    expect(await provider().advise(alerts)).toBeNull();
    expect(received).toHaveLength(4);
  });

  it('does not retry a refused key', async () => {
    script.push('status401');
    expect(await provider().advise(alerts)).toBeNull();
    expect(received).toHaveLength(1);
  });

  it('times out a hanging endpoint, then retries', async () => {
    script.push('hang');
    const started = Date.now();
    const advice = await provider({ timeoutMs: 150 }).advise(alerts);
    expect(advice?.rationale).toBe('Hosted rationale');
    expect(received).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('falls back on every timeout', async () => {
    script.push('hang', 'hang');
    expect(await provider({ timeoutMs: 100, retries: 1 }).advise(alerts)).toBeNull();
    expect(received).toHaveLength(2);
  });

  it.each(['garbage', 'wrong-length', 'not-json-content'] as const)(
    'answers null for %s',
    async (behaviour) => {
      script.push(behaviour);
      expect(await provider().advise(alerts)).toBeNull();
      expect(received).toHaveLength(1);
    },
  );

  it('opens the breaker after 5 failures within 60 s and sends nothing while open', async () => {
    let clock = 1_000_000;
    const advisor = provider({ retries: 0, now: () => clock });
    script.push('status500', 'status500', 'status500', 'status500', 'status500');
    for (let i = 0; i < 5; i++) expect(await advisor.advise(alerts)).toBeNull();
    expect(received).toHaveLength(5);
    expect(advisor.breakerOpen).toBe(true);
    expect(await advisor.advise(alerts)).toBeNull();
    expect(received).toHaveLength(5);
    clock += 60_001;
    expect(advisor.breakerOpen).toBe(false);
    expect((await advisor.advise(alerts))?.actions).toHaveLength(2);
    expect(received).toHaveLength(6);
  });

  it('does not open the breaker for failures spread over more than 60 s', async () => {
    let clock = 0;
    const advisor = provider({ retries: 0, now: () => clock });
    for (let i = 0; i < 6; i++) {
      script.push('status500');
      await advisor.advise(alerts);
      clock += 15_000;
    }
    expect(advisor.breakerOpen).toBe(false);
    expect(received).toHaveLength(6);
  });

  it('answers a repeated request from the cache without a request', async () => {
    const cache = new MemoryCache();
    const first = await provider({ cache }).advise(alerts, 'Plant 1');
    expect(cache.entries.size).toBe(1);
    expect([...cache.entries.keys()][0]).toMatch(/^[0-9a-f]{64}$/);
    const second = await provider({ cache }).advise(alerts, 'Plant 1');
    expect(second).toEqual(first);
    expect(received).toHaveLength(1);
    // A different request is a different key.
    await provider({ cache }).advise(alerts, 'Plant 2');
    expect(received).toHaveLength(2);
  });

  it('sends nothing for no alerts and never caches failures', async () => {
    const cache = new MemoryCache();
    expect(await provider({ cache }).advise([])).toBeNull();
    script.push('garbage');
    expect(await provider({ cache }).advise(alerts)).toBeNull();
    expect(cache.entries.size).toBe(0);
    expect(received).toHaveLength(1);
  });

  it('treats a refused connection as a failure', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    expect(await provider({ baseUrl: `http://127.0.0.1:${port}/v1`, retries: 1 }).advise(alerts)).toBeNull();
  });
});
