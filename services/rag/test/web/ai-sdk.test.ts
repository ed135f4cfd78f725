// The chat stream consumed by the Vercel AI SDK's own UI-message-stream client (spec §3.7): DefaultChatTransport
// (which validates every frame against the SDK's chunk schema) feeding readUIMessageStream, exactly as `useChat`
// does in a browser. The assembled assistant message must carry the streamed answer and the source documents.
import { DefaultChatTransport, readUIMessageStream, type SourceDocumentUIPart, type UIMessage } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../http/harness.js';

const FACT = 'The Zephyr turbine produces 42 megawatts at full load.';
const HANDBOOK = `# Turbine handbook\n\n${FACT}\n\nMaintenance happens every spring in the northern hall.\n`;
const QUESTION = 'How many megawatts does the Zephyr turbine produce?';
const AJAX = { 'X-Requested-With': 'XMLHttpRequest' };

interface SourceFrame {
  type: 'source-document';
  sourceId: string;
  title: string;
  filename: string;
  documentId: number;
  highlights: [number, number][];
}

/** The raw frames of one chat request, as a non-SDK client would read them. */
async function rawFrames(response: Response): Promise<Record<string, unknown>[]> {
  const text = await response.text();
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: ') && block !== 'data: [DONE]')
    .map((block) => JSON.parse(block.slice('data: '.length)) as Record<string, unknown>);
}

describe('chat stream with the Vercel AI SDK UI message stream client', () => {
  let app: TestServer;
  let token: string;
  let storeId: number;
  let documentId: number;

  const authorized = (extra: Record<string, string> = {}) => ({ Authorization: `Bearer ${token}`, ...extra });

  beforeAll(async () => {
    app = await startTestServer({ ALLOW_DEV_LOGIN: 'true' });
    const login = await fetch(`${app.url}/api/auth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...AJAX },
      body: JSON.stringify({ email: 'sdk-client@example.com' }),
    });
    expect(login.status).toBe(200);
    token = ((await login.json()) as { access_token: string }).access_token;

    const store = await fetch(`${app.url}/api/stores`, {
      method: 'POST',
      headers: authorized({ 'Content-Type': 'application/json', ...AJAX }),
      body: JSON.stringify({ display_name: 'Turbines' }),
    });
    expect(store.status).toBe(200);
    storeId = ((await store.json()) as { id: number }).id;

    const form = new FormData();
    form.append('storeId', String(storeId));
    form.append('file', new Blob([HANDBOOK], { type: 'text/markdown' }), 'turbine-handbook.md');
    const upload = await fetch(`${app.url}/api/upload`, {
      method: 'POST',
      headers: authorized(AJAX),
      body: form,
    });
    expect(upload.status).toBe(200);
    documentId = ((await upload.json()) as { document_id: number }).document_id;

    const deadline = Date.now() + 10_000;
    let status = '';
    while (Date.now() < deadline) {
      const poll = await fetch(`${app.url}/api/upload/op-status/doc-${documentId}`, {
        headers: authorized(),
      });
      status = ((await poll.json()) as { status: string }).status;
      if (status === 'DONE' || status === 'ERROR') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toBe('DONE');
  }, 30_000);

  afterAll(async () => {
    await app?.close();
  });

  it('assembles the streamed answer and the cited documents into one assistant UI message', async () => {
    // The reference: the same question read frame by frame without the SDK.
    const reference = await fetch(`${app.url}/api/chat`, {
      method: 'POST',
      headers: authorized({ 'Content-Type': 'application/json', ...AJAX }),
      body: JSON.stringify({ storeIds: [storeId], question: QUESTION }),
    });
    expect(reference.status).toBe(200);
    expect(reference.headers.get('x-vercel-ai-ui-message-stream')).toBe('v1');
    const frames = await rawFrames(reference);
    const answer = frames
      .filter((frame) => frame.type === 'text-delta')
      .map((frame) => frame.delta)
      .join('');
    const sourceFrames = frames.filter(
      (frame) => frame.type === 'source-document',
    ) as unknown as SourceFrame[];
    expect(answer).toContain(FACT);
    expect(answer).toContain('[1]');
    expect(sourceFrames.length).toBeGreaterThanOrEqual(1);

    // The SDK client: the transport posts AI SDK `messages` (parts) plus our body and parses the SSE frames.
    let sessionId: string | null = null;
    const transport = new DefaultChatTransport<UIMessage>({
      api: `${app.url}/api/chat`,
      headers: authorized(AJAX),
      body: { storeIds: [storeId] },
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        sessionId = response.headers.get('x-session-id');
        return response;
      },
    });
    const chunks = await transport.sendMessages({
      chatId: 'sdk-chat',
      messageId: undefined,
      trigger: 'submit-message',
      abortSignal: undefined,
      messages: [{ id: 'user-1', role: 'user', parts: [{ type: 'text', text: QUESTION }] }],
    });
    const errors: unknown[] = [];
    let assistant: UIMessage | undefined;
    for await (const message of readUIMessageStream<UIMessage>({
      stream: chunks,
      onError: (error) => errors.push(error),
      terminateOnError: true,
    })) {
      assistant = message;
    }
    expect(errors).toEqual([]);
    expect(assistant?.role).toBe('assistant');

    const text = (assistant?.parts ?? [])
      .filter((part) => part.type === 'text')
      .map((part) => (part as { text: string }).text)
      .join('');
    expect(text).toBe(answer);

    const sources = (assistant?.parts ?? []).filter(
      (part): part is SourceDocumentUIPart => part.type === 'source-document',
    );
    expect(
      sources.map((source) => [source.sourceId, source.title, source.mediaType, source.filename]),
    ).toEqual(sourceFrames.map((frame) => [frame.sourceId, frame.title, 'text/markdown', frame.filename]));
    expect(sources[0]).toMatchObject({
      sourceId: 'cit-0',
      title: 'turbine-handbook.md',
      filename: 'turbine-handbook.md',
    });

    // The server stored exactly what the SDK assembled.
    expect(sessionId).toMatch(/^[A-Za-z0-9-]{1,64}$/);
    const stored = await fetch(`${app.url}/api/chat/sessions/${sessionId}/messages`, {
      headers: authorized(),
    });
    expect(stored.status).toBe(200);
    const messages = (await stored.json()) as { role: string; content: string; sources: SourceFrame[] }[];
    expect(messages.map((message) => message.role)).toEqual(['user', 'assistant']);
    expect(messages[0]?.content).toBe(QUESTION);
    expect(messages[1]?.content).toBe(text.trim());
    expect(messages[1]?.sources.map((source) => source.documentId)).toEqual(sources.map(() => documentId));
  });

  it('surfaces a pre-stream refusal as the SDK transport error', async () => {
    const transport = new DefaultChatTransport<UIMessage>({
      api: `${app.url}/api/chat`,
      headers: authorized(AJAX),
      body: { storeIds: [storeId + 1000] },
    });
    await expect(
      transport.sendMessages({
        chatId: 'sdk-chat-missing-store',
        messageId: undefined,
        trigger: 'submit-message',
        abortSignal: undefined,
        messages: [{ id: 'user-1', role: 'user', parts: [{ type: 'text', text: QUESTION }] }],
      }),
    ).rejects.toMatchObject({ statusCode: 404, responseBody: '{"detail":"Store not found"}' });
  });
});
