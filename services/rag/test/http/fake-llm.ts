// A local fake of an OpenAI-compatible server and of the Gemini REST API (node:http on 127.0.0.1:0). Each
// request is answered by the next scripted behaviour; every request is recorded (headers, body, whether the
// client closed it early) so tests can assert retries, prompts and aborts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Behaviour =
  | { kind: 'stream'; deltas: string[]; usage?: { prompt: number; completion: number }; delayMs?: number }
  | { kind: 'status'; status: number }
  /** accepts the request and never answers */
  | { kind: 'hang' }
  /** one delta, then the connection is destroyed */
  | { kind: 'reset'; delta: string };

export interface RecordedRequest {
  url: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
  /** resolves when the client closed the connection before the response ended */
  aborted: Promise<number>;
  abortedAt: number | null;
}

export interface FakeLlm {
  url: string;
  requests: RecordedRequest[];
  /** behaviours used in order; the last one repeats */
  script(...behaviours: Behaviour[]): void;
  close(): Promise<void>;
}

function openAiChunk(content: string): string {
  return `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }] })}\n\n`;
}

function geminiChunk(text: string, usage?: { prompt: number; completion: number }): string {
  const payload: Record<string, unknown> = {
    candidates: [{ content: { role: 'model', parts: [{ text }] } }],
  };
  if (usage)
    payload.usageMetadata = { promptTokenCount: usage.prompt, candidatesTokenCount: usage.completion };
  return `data: ${JSON.stringify(payload)}\n\n`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startFakeLlm(): Promise<FakeLlm> {
  let behaviours: Behaviour[] = [{ kind: 'stream', deltas: ['Hello'] }];
  const requests: RecordedRequest[] = [];
  const sockets = new Set<import('node:net').Socket>();

  const respond = async (request: IncomingMessage, response: ServerResponse, record: RecordedRequest) => {
    const behaviour = (
      requests.length <= behaviours.length ? behaviours[requests.length - 1] : behaviours.at(-1)
    ) as Behaviour;
    const gemini = request.url?.includes(':streamGenerateContent') ?? false;
    if (behaviour.kind === 'status') {
      response
        .writeHead(behaviour.status, { 'content-type': 'application/json' })
        .end('{"error":"scripted"}');
      return;
    }
    if (behaviour.kind === 'hang') return;
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    if (behaviour.kind === 'reset') {
      response.write(gemini ? geminiChunk(behaviour.delta) : openAiChunk(behaviour.delta));
      await sleep(20);
      request.socket.destroy();
      return;
    }
    for (const [index, delta] of behaviour.deltas.entries()) {
      if (record.abortedAt !== null) return;
      const last = index === behaviour.deltas.length - 1;
      response.write(gemini ? geminiChunk(delta, last ? behaviour.usage : undefined) : openAiChunk(delta));
      if (behaviour.delayMs) await sleep(behaviour.delayMs);
    }
    if (record.abortedAt !== null) return;
    if (!gemini) {
      if (behaviour.usage) {
        const usage = {
          prompt_tokens: behaviour.usage.prompt,
          completion_tokens: behaviour.usage.completion,
        };
        response.write(`data: ${JSON.stringify({ choices: [], usage })}\n\n`);
      }
      response.write('data: [DONE]\n\n');
    }
    response.end();
  };

  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      let resolveAborted: (at: number) => void = () => {};
      const record: RecordedRequest = {
        url: request.url ?? '',
        headers: request.headers,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>,
        aborted: new Promise((resolve) => {
          resolveAborted = resolve;
        }),
        abortedAt: null,
      };
      response.on('close', () => {
        if (response.writableFinished) return;
        record.abortedAt = Date.now();
        resolveAborted(record.abortedAt);
      });
      requests.push(record);
      void respond(request, response, record);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    script(...next) {
      behaviours = next;
      requests.length = 0;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
