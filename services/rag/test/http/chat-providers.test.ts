// The streaming provider clients against a local fake server: parsing, usage, retries, rejections, resets,
// idle timeouts and aborting the upstream request.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { geminiProvider } from '../../src/domain/providers/gemini.js';
import { openAiCompatibleProvider } from '../../src/domain/providers/openai-compatible.js';
import {
  type GenerationRequest,
  type LlmProvider,
  ProviderError,
  type ProviderEvent,
  streamWithRetries,
} from '../../src/domain/providers/streaming.js';
import { DEFAULT_PRICE, queryCostUsd } from '../../src/domain/text/costs.js';
import { type FakeLlm, startFakeLlm } from './fake-llm.js';

let fake: FakeLlm;
beforeAll(async () => {
  fake = await startFakeLlm();
});
afterAll(async () => {
  await fake.close();
});

const request: GenerationRequest = {
  model: 'local-model',
  system: 'Sources:\n[1] Report\nThe launch is in May.',
  messages: [
    { role: 'user', content: 'earlier question' },
    { role: 'assistant', content: 'earlier answer' },
    { role: 'user', content: 'When is the launch?' },
  ],
};

function openAi(idleTimeoutMs = 2000): LlmProvider {
  return openAiCompatibleProvider({
    baseUrl: `${fake.url}/v1`,
    apiKey: 'local-key',
    temperature: 0.2,
    maxOutputTokens: 1024,
    idleTimeoutMs,
  });
}

async function collect(stream: AsyncGenerator<ProviderEvent>): Promise<ProviderEvent[]> {
  const events: ProviderEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

const noDelay = { attempts: 2, delayMs: () => 10 };

describe('OpenAI-compatible client', () => {
  it('streams deltas, sends the documented body and reads the final usage', async () => {
    fake.script({
      kind: 'stream',
      deltas: ['The launch ', 'is in May [1].'],
      usage: { prompt: 1000, completion: 500 },
    });
    const events = await collect(streamWithRetries(openAi(), request, new AbortController().signal, noDelay));
    expect(events).toEqual([
      { type: 'delta', text: 'The launch ' },
      { type: 'delta', text: 'is in May [1].' },
      { type: 'usage', promptTokens: 1000, completionTokens: 500 },
    ]);
    const [sent] = fake.requests;
    expect(sent?.url).toBe('/v1/chat/completions');
    expect(sent?.headers.authorization).toBe('Bearer local-key');
    expect(sent?.body).toMatchObject({
      model: 'local-model',
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.2,
      max_tokens: 1024,
    });
    expect(sent?.body.messages).toEqual([{ role: 'system', content: request.system }, ...request.messages]);
    // 1000 prompt + 500 completion tokens at the default 0.30/2.50 → 0.0003 + 0.00125
    expect(queryCostUsd(1000, 500, DEFAULT_PRICE)).toBe('0.00155');
  });

  it('omits the Authorization header when the key is EMPTY', async () => {
    fake.script({ kind: 'stream', deltas: ['ok'] });
    const provider = openAiCompatibleProvider({
      baseUrl: `${fake.url}/v1`,
      apiKey: 'EMPTY',
      temperature: 0,
      maxOutputTokens: 5,
      idleTimeoutMs: 2000,
    });
    await collect(provider.stream(request, new AbortController().signal));
    expect(fake.requests[0]?.headers.authorization).toBeUndefined();
  });

  it('does not retry a 401 and reports it as rejected', async () => {
    fake.script({ kind: 'status', status: 401 });
    const error = await collect(
      streamWithRetries(openAi(), request, new AbortController().signal, noDelay),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).kind).toBe('rejected');
    expect(fake.requests).toHaveLength(1);
  });

  it('retries 5xx responses up to the attempt count, then gives up as unavailable', async () => {
    fake.script({ kind: 'status', status: 503 });
    const error = await collect(
      streamWithRetries(openAi(), request, new AbortController().signal, noDelay),
    ).catch((e: unknown) => e);
    expect((error as ProviderError).kind).toBe('unavailable');
    expect(fake.requests).toHaveLength(3);
  });

  it('succeeds after two timeouts with two retry attempts', async () => {
    fake.script({ kind: 'hang' }, { kind: 'hang' }, { kind: 'stream', deltas: ['finally'] });
    const events = await collect(
      streamWithRetries(openAi(150), request, new AbortController().signal, noDelay),
    );
    expect(events).toEqual([{ type: 'delta', text: 'finally' }]);
    expect(fake.requests).toHaveLength(3);
  });

  it('does not retry once a delta arrived: a reset after it is unavailable', async () => {
    fake.script({ kind: 'reset', delta: 'partial' }, { kind: 'stream', deltas: ['never used'] });
    const seen: ProviderEvent[] = [];
    const error = await (async () => {
      for await (const event of streamWithRetries(openAi(), request, new AbortController().signal, noDelay))
        seen.push(event);
    })().catch((e: unknown) => e);
    expect(seen).toEqual([{ type: 'delta', text: 'partial' }]);
    expect((error as ProviderError).kind).toBe('unavailable');
    expect(fake.requests).toHaveLength(1);
  });

  it('aborts the upstream request within a second of the abort signal', async () => {
    fake.script({ kind: 'stream', deltas: Array.from({ length: 100 }, (_, i) => `t${i} `), delayMs: 100 });
    const controller = new AbortController();
    const reading = (async () => {
      for await (const event of streamWithRetries(openAi(), request, controller.signal, noDelay)) {
        if (event.type === 'delta' && event.text === 't2 ') controller.abort();
      }
    })().catch(() => undefined);
    await reading;
    const abortedAt = await Promise.race([
      fake.requests[0]?.aborted,
      new Promise((r) => setTimeout(() => r(null), 1000)),
    ]);
    expect(abortedAt).not.toBeNull();
    expect(fake.requests).toHaveLength(1);
  });
});

describe('Gemini client', () => {
  it('streams candidate parts, keeps the key in the header and reads usageMetadata', async () => {
    fake.script({ kind: 'stream', deltas: ['Gem ', 'answer [1]'], usage: { prompt: 42, completion: 7 } });
    const provider = geminiProvider({
      baseUrl: fake.url,
      apiKey: 'secret-key',
      temperature: 0.2,
      maxOutputTokens: 100,
      idleTimeoutMs: 2000,
    });
    const events = await collect(
      provider.stream({ ...request, model: 'gemini-2.5-flash' }, new AbortController().signal),
    );
    expect(events).toEqual([
      { type: 'delta', text: 'Gem ' },
      { type: 'delta', text: 'answer [1]' },
      { type: 'usage', promptTokens: 42, completionTokens: 7 },
    ]);
    const [sent] = fake.requests;
    expect(sent?.url).toBe('/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse');
    expect(sent?.url).not.toContain('secret-key');
    expect(sent?.headers['x-goog-api-key']).toBe('secret-key');
    expect(sent?.body.systemInstruction).toEqual({ parts: [{ text: request.system }] });
    expect(sent?.body.contents).toEqual([
      { role: 'user', parts: [{ text: 'earlier question' }] },
      { role: 'model', parts: [{ text: 'earlier answer' }] },
      { role: 'user', parts: [{ text: 'When is the launch?' }] },
    ]);
  });
});
