// The Gemini VLM client (spec §3.6.7 "VLM call"; acceptance 43 at client level) against a local fake server.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../src/domain/labels/circuit-breaker.js';
import { GeminiClient, IMAGE_PROMPT, normaliseVlmAnswer } from '../../src/domain/labels/gemini.js';

const API_KEY = 'test-key-7f3a9c';
const MODEL = 'gemini-2.5-flash';

interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

type Reply = (response: ServerResponse) => void;

interface FakeGemini {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

const servers: FakeGemini[] = [];

/** A fake generateContent endpoint; request n gets `replies[n]` (the last one repeats). */
async function startFakeGemini(replies: Reply[]): Promise<FakeGemini> {
  const requests: RecordedRequest[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      requests.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      const reply = replies[Math.min(requests.length - 1, replies.length - 1)];
      reply?.(response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const fake: FakeGemini = {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  servers.push(fake);
  return fake;
}

function json(status: number, body: unknown): Reply {
  return (response) => {
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(body));
  };
}

/** A generateContent answer whose first part carries `text`. */
function answer(text: string): Reply {
  return json(200, { candidates: [{ content: { role: 'model', parts: [{ text }] }, finishReason: 'STOP' }] });
}

const neverAnswer: Reply = () => {};

const GOOD_ANSWER = {
  primary_category: 'animal',
  tags: ['dog', 'grass', 'outdoor', 'pet', 'sunny'],
  description: 'A dog running on grass.',
  detected_objects: [
    { name: 'dog', confidence: 0.97 },
    { name: 'ball', confidence: 0.6 },
  ],
  scene_type: 'outdoor',
  color_palette: ['#3A7D2C', '#f0e6d2', '#8b5a2b', 'not-a-colour'],
  suggested_cluster_name: 'Dogs Outdoors',
};

const GOOD_LABELS = {
  primaryCategory: 'animal',
  tags: ['dog', 'grass', 'outdoor', 'pet', 'sunny'],
  description: 'A dog running on grass.',
  detectedObjects: [
    { name: 'dog', confidence: 0.97 },
    { name: 'ball', confidence: 0.6 },
  ],
  sceneType: 'outdoor',
  colorPalette: ['#3a7d2c', '#f0e6d2', '#8b5a2b'],
  suggestedClusterName: 'Dogs Outdoors',
};

function client(baseUrl: string, extra: Partial<ConstructorParameters<typeof GeminiClient>[0]> = {}) {
  return new GeminiClient({
    apiKey: API_KEY,
    model: MODEL,
    baseUrl,
    timeoutMs: 2000,
    retryDelayMs: 20,
    ...extra,
  });
}

let jpeg: Buffer;

beforeAll(async () => {
  jpeg = await sharp({ create: { width: 16, height: 12, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .jpeg({ quality: 85 })
    .toBuffer();
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

describe('GeminiClient request', () => {
  it('POSTs generateContent with the key header, the prompt, the base64 JPEG and the generation config', async () => {
    const fake = await startFakeGemini([answer(JSON.stringify(GOOD_ANSWER))]);
    const outcome = await client(`${fake.url}/`).labelImage(jpeg, 'image');

    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request?.method).toBe('POST');
    expect(request?.url).toBe('/v1beta/models/gemini-2.5-flash:generateContent');
    expect(request?.headers['x-goog-api-key']).toBe(API_KEY);
    expect(request?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(request?.body ?? '')).toEqual({
      contents: [
        {
          role: 'user',
          parts: [
            { text: IMAGE_PROMPT },
            { inline_data: { mime_type: 'image/jpeg', data: jpeg.toString('base64') } },
          ],
        },
      ],
      generationConfig: {
        temperature: 0.3,
        topP: 0.95,
        topK: 40,
        maxOutputTokens: 2048,
        responseMimeType: 'application/json',
      },
    });
    expect(outcome).toEqual({ ok: true, labels: GOOD_LABELS, elapsedMs: expect.any(Number) });
  });

  it('asks for every JSON field of the spec in the prompt', () => {
    for (const field of [
      'primary_category',
      'tags',
      'description',
      'detected_objects',
      'scene_type',
      'color_palette',
      'suggested_cluster_name',
    ]) {
      expect(IMAGE_PROMPT).toContain(`"${field}"`);
    }
    expect(IMAGE_PROMPT).toContain('5 to 15');
    expect(IMAGE_PROMPT).toContain('3 to 5');
  });

  it('sends a video keyframe with the image prompt plus a note that it comes from a video', async () => {
    const fake = await startFakeGemini([answer(JSON.stringify(GOOD_ANSWER))]);
    const outcome = await client(fake.url).labelImage(jpeg, 'video');
    expect(outcome.ok).toBe(true);
    const body = JSON.parse(fake.requests[0]?.body ?? '') as { contents: { parts: { text?: string }[] }[] };
    const text = body.contents[0]?.parts[0]?.text ?? '';
    expect(text.startsWith(IMAGE_PROMPT)).toBe(true);
    expect(text).toContain('keyframe taken from a video');
  });
});

describe('GeminiClient answers', () => {
  it('accepts an answer wrapped in a ```json fence', async () => {
    const fake = await startFakeGemini([
      answer(`\`\`\`json\n${JSON.stringify(GOOD_ANSWER, null, 2)}\n\`\`\``),
    ]);
    const outcome = await client(fake.url).labelImage(jpeg, 'image');
    expect(outcome).toEqual({ ok: true, labels: GOOD_LABELS, elapsedMs: expect.any(Number) });
  });

  it('turns garbage answer text into an error outcome without retrying', async () => {
    const fake = await startFakeGemini([answer('I think this is a dog {not json')]);
    const outcome = await client(fake.url).labelImage(jpeg, 'image');
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.reason).toBe('error');
    expect(outcome.error).toMatch(/^Gemini answer is not valid JSON: /);
    expect(fake.requests).toHaveLength(1);
  });

  it('treats a response without candidates text as an error', async () => {
    const fake = await startFakeGemini([json(200, { promptFeedback: { blockReason: 'SAFETY' } })]);
    const outcome = await client(fake.url).labelImage(jpeg, 'image');
    expect(outcome).toEqual({
      ok: false,
      reason: 'error',
      error: 'Gemini response has no answer text',
      elapsedMs: expect.any(Number),
    });
  });

  it('retries a 500 once and reports the error after exactly 2 requests, never leaking the key', async () => {
    const fake = await startFakeGemini([
      json(500, { error: { code: 500, message: `internal error for ${API_KEY}` } }),
    ]);
    const outcome = await client(fake.url).labelImage(jpeg, 'image');
    expect(fake.requests).toHaveLength(2);
    expect(outcome).toEqual({
      ok: false,
      reason: 'error',
      error: 'Gemini API answered HTTP 500: internal error for [redacted]',
      elapsedMs: expect.any(Number),
    });
  });

  it('retries a 429 after the retry delay and succeeds', async () => {
    const fake = await startFakeGemini([
      json(429, { error: { code: 429, message: 'quota' } }),
      answer(JSON.stringify(GOOD_ANSWER)),
    ]);
    const outcome = await client(fake.url, { retryDelayMs: 150 }).labelImage(jpeg, 'image');
    expect(fake.requests).toHaveLength(2);
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    expect(outcome.labels).toEqual(GOOD_LABELS);
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(145);
  });

  it('does not retry a 4xx other than 429', async () => {
    const fake = await startFakeGemini([json(400, { error: { code: 400, message: 'API key not valid.' } })]);
    const outcome = await client(fake.url).labelImage(jpeg, 'image');
    expect(fake.requests).toHaveLength(1);
    expect(outcome).toMatchObject({
      ok: false,
      reason: 'error',
      error: 'Gemini API answered HTTP 400: API key not valid.',
    });
  });

  it('times out a server that never answers, retries once, then gives up', async () => {
    const fake = await startFakeGemini([neverAnswer]);
    const startedAt = Date.now();
    const outcome = await client(fake.url, { timeoutMs: 120, retryDelayMs: 10 }).labelImage(jpeg, 'image');
    expect(fake.requests).toHaveLength(2);
    expect(outcome).toMatchObject({
      ok: false,
      reason: 'error',
      error: 'Gemini request timed out after 120 ms',
    });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(240);
    expect(Date.now() - startedAt).toBeLessThan(3000);
  });

  it('retries a network error once, without the key in the message', async () => {
    const calls: string[] = [];
    const refusing: typeof fetch = async (input) => {
      calls.push(String(input));
      throw new TypeError('fetch failed', {
        cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      });
    };
    const outcome = await client('http://127.0.0.1:9', { fetchImpl: refusing }).labelImage(jpeg, 'image');
    expect(calls).toEqual([
      'http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:generateContent',
      'http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:generateContent',
    ]);
    expect(outcome).toMatchObject({
      ok: false,
      reason: 'error',
      error: 'Gemini request failed: ECONNREFUSED',
    });
  });
});

describe('GeminiClient circuit breaker', () => {
  it('opens after 5 failed calls by default and then skips the request', async () => {
    const fake = await startFakeGemini([json(400, { error: { message: 'bad request' } })]);
    const gemini = client(fake.url);
    for (let call = 1; call <= 5; call += 1) {
      expect(gemini.circuitState).toBe('closed');
      const outcome = await gemini.labelImage(jpeg, 'image');
      expect(outcome).toMatchObject({ ok: false, reason: 'error' });
    }
    expect(gemini.circuitState).toBe('open');
    const skipped = await gemini.labelImage(jpeg, 'image');
    expect(skipped).toMatchObject({
      ok: false,
      reason: 'circuit_open',
      error: 'Gemini circuit breaker is open',
    });
    expect(fake.requests).toHaveLength(5);
  });

  it('lets one trial through after openMs and closes again when it succeeds', async () => {
    const clock = { now: 0 };
    const breaker = new CircuitBreaker({ failureThreshold: 5, openMs: 60_000, now: () => clock.now });
    const failing = Array.from({ length: 10 }, () => json(503, { error: { message: 'overloaded' } }));
    const fake = await startFakeGemini([...failing, answer(JSON.stringify(GOOD_ANSWER))]);
    const gemini = client(fake.url, { breaker, retryDelayMs: 1 });

    for (let call = 0; call < 5; call += 1) await gemini.labelImage(jpeg, 'image');
    expect(fake.requests).toHaveLength(10);
    expect(gemini.circuitState).toBe('open');
    expect(await gemini.labelImage(jpeg, 'image')).toMatchObject({ ok: false, reason: 'circuit_open' });
    expect(fake.requests).toHaveLength(10);

    clock.now = 60_000;
    expect(gemini.circuitState).toBe('half_open');
    const trial = await gemini.labelImage(jpeg, 'image');
    expect(trial).toEqual({ ok: true, labels: GOOD_LABELS, elapsedMs: expect.any(Number) });
    expect(fake.requests).toHaveLength(11);
    expect(gemini.circuitState).toBe('closed');
  });

  it('re-opens when the half-open trial fails', async () => {
    const clock = { now: 0 };
    const breaker = new CircuitBreaker({ failureThreshold: 5, openMs: 60_000, now: () => clock.now });
    const fake = await startFakeGemini([json(403, { error: { message: 'forbidden' } })]);
    const gemini = client(fake.url, { breaker });
    for (let call = 0; call < 5; call += 1) await gemini.labelImage(jpeg, 'image');
    clock.now = 60_000;
    expect(await gemini.labelImage(jpeg, 'image')).toMatchObject({ ok: false, reason: 'error' });
    expect(fake.requests).toHaveLength(6);
    expect(gemini.circuitState).toBe('open');
    expect(await gemini.labelImage(jpeg, 'image')).toMatchObject({ ok: false, reason: 'circuit_open' });
    expect(fake.requests).toHaveLength(6);
  });
});

describe('normaliseVlmAnswer', () => {
  it('fills the defaults of the spec for an empty answer', () => {
    expect(normaliseVlmAnswer({})).toEqual({
      primaryCategory: 'unknown',
      tags: ['unknown', 'content'],
      description: '',
      detectedObjects: [],
      sceneType: 'unknown',
      colorPalette: ['#808080', '#808080', '#808080'],
      suggestedClusterName: null,
    });
  });

  it('defaults the tags to the primary category and "content"', () => {
    expect(normaliseVlmAnswer({ primary_category: 'food', tags: [] }).tags).toEqual(['food', 'content']);
    expect(normaliseVlmAnswer({ primary_category: 'food', tags: 'pizza' }).tags).toEqual(['food', 'content']);
  });

  it('keeps at most 15 tags, trimmed and without blanks or repeats', () => {
    const tags = [' a ', '', 'a', 7, ...Array.from({ length: 20 }, (_, index) => `tag${index}`)];
    const labels = normaliseVlmAnswer({ tags });
    expect(labels.tags).toEqual(['a', ...Array.from({ length: 14 }, (_, index) => `tag${index}`)]);
  });

  it('drops invalid palette entries, keeps at most 5 and pads to 3 greys', () => {
    expect(
      normaliseVlmAnswer({ color_palette: ['#ABCDEF', 'red', '#12345', '#abc', 42] }).colorPalette,
    ).toEqual(['#abcdef', '#aabbcc', '#808080']);
    const six = ['#000001', '#000002', '#000003', '#000004', '#000005', '#000006'];
    expect(normaliseVlmAnswer({ color_palette: six }).colorPalette).toEqual(six.slice(0, 5));
  });

  it('keeps named detected objects with confidences clamped to [0, 1]', () => {
    const labels = normaliseVlmAnswer({
      detected_objects: [
        { name: 'cat', confidence: 1.7 },
        { name: 'lamp', confidence: '0.4' },
        { name: ' ', confidence: 0.9 },
        { confidence: 0.5 },
        'sofa',
        { name: 'rug' },
      ],
    });
    expect(labels.detectedObjects).toEqual([
      { name: 'cat', confidence: 1 },
      { name: 'lamp', confidence: 0.4 },
      { name: 'rug', confidence: 0 },
    ]);
  });

  it('accepts camelCase field names and treats a non-object as empty', () => {
    expect(
      normaliseVlmAnswer({ primaryCategory: 'vehicle', sceneType: 'street', suggestedClusterName: ' Cars ' }),
    ).toMatchObject({ primaryCategory: 'vehicle', sceneType: 'street', suggestedClusterName: 'Cars' });
    expect(normaliseVlmAnswer('nonsense').primaryCategory).toBe('unknown');
  });
});
