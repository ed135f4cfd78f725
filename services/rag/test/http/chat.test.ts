// POST /api/chat (spec §3.7, acceptance 16–23): pre-stream checks, the exact frame sequence and headers of the
// offline answerer, refusals, persistence, and the OpenAI-compatible path against a local fake server
// (usage and cost, rejections, capacity, mid-stream budget, client disconnect).
import { createServer, request as httpRequest, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SseStream } from '../../src/domain/sse.js';
import { type ContentApp, frameTypes, readSse, startContentApp } from './content-app.js';
import { type FakeLlm, startFakeLlm } from './fake-llm.js';

const REPORT = [
  '# Project Falcon',
  '',
  'The Falcon launch is scheduled for 14 May 2025 in Lisbon.',
  'The project budget is 40000 euros.',
  'Maria Santos leads the engineering team.',
  '',
].join('\n');

const REFUSAL = "I couldn't find an answer to that in the selected documents.";

let app: ContentApp;
let fake: FakeLlm;
let token: string;
let userId: number;
let storeId: number;
let emptyStore: number;
let localStore: number;

beforeAll(async () => {
  fake = await startFakeLlm();
  app = await startContentApp({
    CHAT_RATE_LIMIT_PER_MINUTE: '1000',
    ENABLE_LOCAL_OPENAI_BACKEND: 'true',
    LOCAL_LLM_BASE_URL: `${fake.url}/v1`,
    LOCAL_LLM_DEFAULT_MODEL: 'local-model',
    GEMINI_STREAM_RETRY_ATTEMPTS: '0',
    MAX_CONCURRENT_STREAMS: '2',
    STREAM_SLOT_WAIT_MS: '200',
  });
  ({ token, userId } = await app.signIn());
  storeId = await app.createStore(token, 'Reports');
  emptyStore = await app.createStore(token, 'Empty');
  localStore = await app.createStore(token, 'Local', 'local_openai');
  await app.indexed(token, storeId, { name: 'falcon.md', type: 'text/markdown', data: REPORT });
  await app.indexed(token, localStore, { name: 'falcon.md', type: 'text/markdown', data: REPORT });
});
afterAll(async () => {
  await app?.close();
  await fake?.close();
});

function chat(json: unknown, as = token) {
  return app.api('/api/chat', { method: 'POST', token: as, json });
}

async function queryLogs() {
  return app.context.db.kysely
    .selectFrom('query_logs')
    .selectAll()
    .where('user_id', '=', userId)
    .where('model', '<>', 'INDEX')
    .orderBy('id')
    .execute();
}

describe('offline answers', () => {
  it('streams the exact sequence with citations, headers and a grounded finish', async () => {
    const response = await chat({
      storeIds: [storeId],
      question: 'When is the Falcon launch scheduled?',
      sessionId: 'session-offline-1',
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-cache, no-transform');
    expect(response.headers.get('x-vercel-ai-ui-message-stream')).toBe('v1');
    expect(response.headers.get('x-accel-buffering')).toBe('no');
    expect(response.headers.get('x-session-id')).toBe('session-offline-1');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    const result = await readSse(response);
    const types = frameTypes(result);
    expect(types[0]).toBe('start');
    expect(types[1]).toBe('text-start');
    const deltas = types.filter((type) => type === 'text-delta').length;
    expect(deltas).toBeGreaterThanOrEqual(1);
    expect(types.slice(2, 2 + deltas).every((type) => type === 'text-delta')).toBe(true);
    expect(types.slice(2 + deltas)).toEqual(['text-end', 'source-document', 'finish', '[DONE]']);
    expect(result.raw.endsWith('data: [DONE]\n\n')).toBe(true);

    const frames = result.frames as Record<string, unknown>[];
    const textId = frames[1]?.id;
    const answer = frames
      .filter((frame) => frame.type === 'text-delta')
      .map((frame) => frame.delta)
      .join('');
    expect(frames.filter((frame) => frame.type === 'text-delta').every((frame) => frame.id === textId)).toBe(
      true,
    );
    expect(answer).toContain('14 May 2025');
    expect(answer).toContain('[1]');
    const source = frames.find((frame) => frame.type === 'source-document') as Record<string, unknown>;
    expect(source).toMatchObject({
      sourceId: 'cit-0',
      mediaType: 'text/markdown',
      title: 'falcon.md',
      filename: 'falcon.md',
      storeId,
      page: null,
    });
    expect(String(source.snippet)).toContain('Falcon launch');
    const highlights = source.highlights as [number, number][];
    expect(highlights.length).toBeGreaterThan(0);
    for (const [start, end] of highlights)
      expect(String(source.snippet).slice(start, end).toLowerCase()).toMatch(/falcon|launch|schedul/);
    const finish = frames.find((frame) => frame.type === 'finish') as Record<string, unknown>;
    expect(finish).toMatchObject({ finishReason: 'stop', provider: 'offline', grounded: true });
    expect(finish.promptTokens).toBeGreaterThan(0);
    expect(finish.completionTokens).toBeGreaterThan(0);
    expect(finish.usage).toEqual({
      prompt_tokens: finish.promptTokens,
      completion_tokens: finish.completionTokens,
      model: 'gemini-2.5-flash',
    });
    expect(finish.costUsd).toBeGreaterThan(0);

    const messages = (await (
      await app.api('/api/chat/sessions/session-offline-1/messages', { token })
    ).json()) as Record<string, unknown>[];
    expect(messages.map((message) => message.role)).toEqual(['user', 'assistant']);
    expect(messages[0]).toMatchObject({ content: 'When is the Falcon launch scheduled?', sources: [] });
    expect(messages[1]?.content).toBe(answer.trim());
    expect(messages[1]?.sources).toEqual([source]);
  });

  it('refuses on an empty store with exactly the refusal text and no cost', async () => {
    const result = await readSse(await chat({ storeIds: [emptyStore], question: 'When is the launch?' }));
    expect(frameTypes(result)).toEqual(['start', 'text-start', 'text-delta', 'text-end', 'finish', '[DONE]']);
    const frames = result.frames as Record<string, unknown>[];
    expect(frames[2]?.delta).toBe(REFUSAL);
    expect(frames[4]).toMatchObject({
      grounded: false,
      promptTokens: 0,
      completionTokens: 0,
      costUsd: 0,
      provider: 'offline',
    });
  });

  it('accepts the snake alias and the last user message of `messages`', async () => {
    const result = await readSse(
      await chat({
        store_ids: [storeId],
        messages: [
          { role: 'user', content: 'Who leads engineering?' },
          { role: 'assistant', content: [{ type: 'text', text: 'Maria.' }] },
          { role: 'user', parts: [{ type: 'text', text: 'What is the project budget?' }] },
        ],
      }),
    );
    const answer = (result.frames as Record<string, unknown>[])
      .filter((frame) => frame.type === 'text-delta')
      .map((frame) => frame.delta)
      .join('');
    expect(answer).toContain('40000 euros');
    expect(answer).not.toContain('Maria');
  });
});

describe('pre-stream checks (plain JSON)', () => {
  it.each([
    [{ storeIds: [1], store_ids: [1], question: 'x' }, 422],
    [{ question: 'x' }, 422],
    [{ storeIds: [], question: 'x' }, 422],
  ])('answers 422 for %j', async (body, status) => {
    const response = await chat(body);
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toContain('application/json');
  });

  it('answers the spec messages', async () => {
    const other = await app.signIn();
    const foreign = await app.createStore(other.token);
    const cases: [unknown, number, string][] = [
      [{ storeIds: [foreign], question: 'x' }, 404, 'Store not found'],
      [{ storeIds: [storeId, localStore], question: 'x' }, 400, 'Selected stores use different backends'],
      [{ storeIds: [storeId] }, 400, 'Missing question'],
      [
        { storeIds: [storeId], question: 'q'.repeat(32_001) },
        400,
        'Question too long (max 32000 characters)',
      ],
      [{ storeIds: [storeId], question: 'x', projectId: 'abc' }, 400, 'projectId must be an integer'],
      [{ storeIds: [storeId], question: 'x', tags: ['a'] }, 400, 'tags must be an object'],
      [
        { storeIds: [storeId], question: 'x', metadataFilter: { filename: 'a' } },
        400,
        'Metadata filters are disabled on this deployment.',
      ],
      [{ storeIds: [storeId], question: 'x', model: 'gpt-4' }, 400, 'Unsupported model requested'],
    ];
    for (const [body, status, message] of cases) {
      const response = await chat(body);
      expect([response.status, await response.json()]).toEqual([status, { detail: message }]);
    }
  });

  it("answers 404 for another user's session", async () => {
    const other = await app.signIn();
    const otherStore = await app.createStore(other.token);
    await readSse(
      await chat(
        { storeIds: [otherStore], question: 'hello there', sessionId: 'shared-session-id' },
        other.token,
      ),
    );
    const response = await chat({ storeIds: [storeId], question: 'x', sessionId: 'shared-session-id' });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ detail: 'Session not found' });
  });

  it('answers 402 when the budget is exhausted', async () => {
    const { kysely } = app.context.db;
    await kysely.insertInto('budgets').values({ user_id: userId, monthly_limit_usd: '0.01' }).execute();
    await kysely
      .insertInto('query_logs')
      .values({
        user_id: userId,
        cost_usd: '0.02',
        model: 'gemini-2.5-flash',
        prompt_tokens: 1,
        completion_tokens: 1,
      })
      .execute();
    try {
      const response = await chat({ storeIds: [storeId], question: 'When is the launch?' });
      expect(response.status).toBe(402);
      expect(await response.json()).toEqual({ detail: 'Monthly budget exhausted' });
    } finally {
      await kysely.deleteFrom('budgets').where('user_id', '=', userId).execute();
      await kysely
        .deleteFrom('query_logs')
        .where('user_id', '=', userId)
        .where('cost_usd', '=', '0.02')
        .execute();
    }
  });
});

describe('OpenAI-compatible stores', () => {
  it('sends sources and history, reports the usage and prices it', async () => {
    fake.script({
      kind: 'stream',
      deltas: ['The launch is ', 'on 14 May 2025 [1].'],
      usage: { prompt: 1000, completion: 500 },
    });
    const result = await readSse(
      await chat({
        storeIds: [localStore],
        messages: [
          { role: 'user', content: 'Who leads engineering?' },
          { role: 'assistant', content: 'Maria Santos [1].' },
          { role: 'user', content: 'When is the Falcon launch?' },
        ],
        system: 'Answer briefly.',
        tags: { team: 'growth' },
        projectId: '7',
      }),
    );
    expect(frameTypes(result)).toEqual([
      'start',
      'text-start',
      'text-delta',
      'text-delta',
      'text-end',
      'source-document',
      'finish',
      '[DONE]',
    ]);
    const finish = (result.frames as Record<string, unknown>[]).find((frame) => frame.type === 'finish');
    expect(finish).toMatchObject({
      promptTokens: 1000,
      completionTokens: 500,
      costUsd: 0.00155,
      provider: 'local_openai',
      grounded: true,
    });
    const sent = fake.requests[0]?.body as { model: string; messages: { role: string; content: string }[] };
    expect(sent.model).toBe('local-model');
    expect(sent.messages[0]?.role).toBe('system');
    expect(sent.messages[0]?.content).toContain('[1] falcon.md');
    expect(sent.messages[0]?.content).toContain('Answer briefly.');
    expect(sent.messages.slice(1)).toEqual([
      { role: 'user', content: 'Who leads engineering?' },
      { role: 'assistant', content: 'Maria Santos [1].' },
      { role: 'user', content: 'When is the Falcon launch?' },
    ]);
    const [log] = (await queryLogs()).slice(-1);
    expect(log).toMatchObject({
      prompt_tokens: 1000,
      completion_tokens: 500,
      model: 'local-model',
      project_id: 7,
      store_id: localStore,
      tags: { team: 'growth' },
    });
    expect(Number(log?.cost_usd)).toBe(0.00155);
  });

  it('turns a 401 into upstream_rejected after start, without retrying', async () => {
    fake.script({ kind: 'status', status: 401 });
    const result = await readSse(
      await chat({ storeIds: [localStore], question: 'When is the Falcon launch?' }),
    );
    expect(frameTypes(result)).toEqual(['start', 'text-start', 'error', '[DONE]']);
    expect(result.frames[2]).toEqual({
      type: 'error',
      code: 'upstream_rejected',
      message: 'The model provider rejected the request.',
      errorText: 'The model provider rejected the request.',
      status: 502,
    });
    expect(fake.requests).toHaveLength(1);
  });

  it('gives the third concurrent stream stream_capacity_exceeded before start', async () => {
    fake.script({ kind: 'stream', deltas: Array.from({ length: 10 }, () => 'Falcon '), delayMs: 100 });
    const first = chat({ storeIds: [localStore], question: 'When is the Falcon launch?' });
    const second = chat({ storeIds: [localStore], question: 'When is the Falcon launch?' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const third = await readSse(
      await chat({ storeIds: [localStore], question: 'When is the Falcon launch?' }),
    );
    expect(third.status).toBe(200);
    expect(frameTypes(third)).toEqual(['error', '[DONE]']);
    expect(third.frames[0]).toMatchObject({
      code: 'stream_capacity_exceeded',
      status: 503,
      retryAfterMs: 500,
      message: 'Server is busy. Please try again.',
    });
    for (const pending of [first, second])
      expect(frameTypes(await readSse(await pending)).at(-2)).toBe('finish');
    expect(app.context.streams.active).toBe(0);
  });

  it('stops a long answer that overruns a tiny budget with budget_exceeded and no finish', async () => {
    const { kysely } = app.context.db;
    await kysely.insertInto('budgets').values({ user_id: userId, monthly_limit_usd: '0.06' }).execute();
    fake.script({
      kind: 'stream',
      deltas: Array.from({ length: 40 }, () => 'Falcon launch details. '.repeat(200)),
    });
    try {
      const result = await readSse(
        await chat({ storeIds: [localStore], question: 'When is the Falcon launch?' }),
      );
      const types = frameTypes(result);
      expect(types.slice(-2)).toEqual(['error', '[DONE]']);
      expect(types).not.toContain('finish');
      expect(types).not.toContain('text-end');
      expect(result.frames.at(-2)).toMatchObject({
        code: 'budget_exceeded',
        status: 402,
        message: 'Monthly budget exceeded',
      });
      const [log] = (await queryLogs()).slice(-1);
      expect(log?.tags).toMatchObject({ error_code: 'budget_exceeded' });
    } finally {
      await kysely.deleteFrom('budgets').where('user_id', '=', userId).execute();
    }
  });

  it('aborts the upstream request when the client disconnects, logs usage and stores no answer', async () => {
    fake.script({ kind: 'stream', deltas: Array.from({ length: 100 }, () => 'Falcon '), delayMs: 100 });
    const sessionId = 'session-disconnect';
    await new Promise<void>((resolve, reject) => {
      const body = JSON.stringify({
        storeIds: [localStore],
        question: 'When is the Falcon launch?',
        sessionId,
      });
      const request = httpRequest(`${app.url}/api/chat`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'x-requested-with': 'XMLHttpRequest',
        },
      });
      request.on('response', (response) => {
        let seen = '';
        response.on('data', (chunk: Buffer) => {
          seen += chunk.toString();
          if (seen.includes('text-delta')) {
            request.destroy();
            resolve();
          }
        });
      });
      request.on('error', () => {});
      request.setTimeout(5000, () => reject(new Error('no delta')));
      request.end(body);
    });
    const closedAt = Date.now();
    const abortedAt = await Promise.race([
      fake.requests[0]?.aborted,
      new Promise<null>((r) => setTimeout(() => r(null), 1000)),
    ]);
    expect(abortedAt).not.toBeNull();
    expect((abortedAt as number) - closedAt).toBeLessThan(1000);
    for (let i = 0; i < 50 && app.context.streams.active > 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(app.context.streams.active).toBe(0);
    const [log] = (await queryLogs()).slice(-1);
    expect(log?.tags).toMatchObject({ error_code: 'client_disconnect' });
    const messages = (await (
      await app.api(`/api/chat/sessions/${sessionId}/messages`, { token })
    ).json()) as { role: string }[];
    expect(messages.map((message) => message.role)).toEqual(['user']);
  });
});

describe('the event stream writer', () => {
  async function withStream(
    options: { keepaliveSecs: number; maxBufferBytes: number },
    work: (sse: SseStream) => Promise<void>,
  ): Promise<{ server: Server; url: string }> {
    const server = createServer((_request, response) => {
      const sse = new SseStream(response, options);
      sse.open({}, 'sid');
      void work(sse);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }

  it('sends keepalive comments after a quiet period and [DONE] last', async () => {
    const { server, url } = await withStream({ keepaliveSecs: 0.1, maxBufferBytes: 1 << 20 }, async (sse) => {
      sse.send({ type: 'start' });
      await new Promise((resolve) => setTimeout(resolve, 250));
      sse.end();
    });
    try {
      const raw = await (await fetch(url)).text();
      expect(raw).toMatch(/^data: \{"type":"start"\}\n\n(: keepalive \d+\n\n)+data: \[DONE\]\n\n$/);
    } finally {
      server.close();
    }
  });

  it('reports a client that does not read once more than the buffer cap is queued', async () => {
    let overflowed: boolean | undefined;
    const { server } = await withStream({ keepaliveSecs: 0, maxBufferBytes: 64 * 1024 }, async (sse) => {
      const big = 'x'.repeat(16 * 1024);
      for (let i = 0; i < 2000 && overflowed === undefined; i++) {
        if (!sse.send({ type: 'text-delta', delta: big })) overflowed = sse.overflowing;
        await new Promise((resolve) => setImmediate(resolve));
      }
      sse.end();
    });
    try {
      const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
      socket.pause();
      socket.write(`GET / HTTP/1.1\r\nHost: x\r\n\r\n`);
      for (let i = 0; i < 100 && overflowed === undefined; i++)
        await new Promise((resolve) => setTimeout(resolve, 20));
      expect(overflowed).toBe(true);
      socket.destroy();
    } finally {
      server.close();
    }
  });
});
