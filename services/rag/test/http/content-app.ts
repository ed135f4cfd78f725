// The content route tests' view of a test server (harness.ts): fetch-based calls for multipart uploads and
// event streams, store/upload helpers, and readers for SSE responses and files left on disk.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { RagConfig } from '../../src/config-types.js';
import type { RagContext } from '../../src/http/context.js';
import { createUser, startTestServer } from './harness.js';

export interface ContentApp {
  url: string;
  config: RagConfig;
  context: RagContext;
  tmpDir: string;
  uploadDir: string;
  /** a new user and their bearer token */
  signIn(): Promise<{ token: string; userId: number }>;
  /** a new admin and their bearer token */
  signInAdmin(): Promise<{ token: string; userId: number }>;
  api(path: string, init?: RequestInit & { token?: string; json?: unknown }): Promise<Response>;
  createStore(token: string, name?: string, backend?: string): Promise<number>;
  upload(
    token: string,
    storeId: number | string,
    file: { name: string; type: string; data: Uint8Array<ArrayBuffer> | string },
    extra?: Record<string, string>,
  ): Promise<Response>;
  /** uploads and waits for DONE; returns the document id */
  indexed(
    token: string,
    storeId: number,
    file: { name: string; type: string; data: string },
  ): Promise<number>;
  close(): Promise<void>;
}

let counter = 0;

export async function startContentApp(env: Record<string, string> = {}): Promise<ContentApp> {
  const server = await startTestServer({ LOG_LEVEL: 'warn', ...env });
  const { url, config } = server;

  const api: ContentApp['api'] = (path, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('x-requested-with', 'XMLHttpRequest');
    if (init.token) headers.set('authorization', `Bearer ${init.token}`);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set('content-type', 'application/json');
      body = JSON.stringify(init.json);
    }
    return fetch(`${url}${path}`, { ...init, headers, body });
  };

  const app: ContentApp = {
    url,
    config,
    context: server.context,
    tmpDir: config.tmpDir,
    uploadDir: config.uploadDir,
    async signIn() {
      const user = await createUser(server, `user${++counter}-${process.pid}@example.com`);
      return { token: user.token, userId: user.id };
    },
    async signInAdmin() {
      const user = await createUser(server, `admin${++counter}-${process.pid}@example.com`, { admin: true });
      return { token: user.token, userId: user.id };
    },
    api,
    async createStore(token, name = 'Docs', backend) {
      const response = await api('/api/stores', {
        method: 'POST',
        token,
        json: { display_name: name, ...(backend ? { backend } : {}) },
      });
      if (response.status !== 200)
        throw new Error(`store failed: ${response.status} ${await response.text()}`);
      return ((await response.json()) as { id: number }).id;
    },
    upload(token, storeId, file, extra = {}) {
      const form = new FormData();
      form.set('storeId', String(storeId));
      for (const [name, value] of Object.entries(extra)) form.set(name, value);
      form.set('file', new Blob([file.data], { type: file.type }), file.name);
      return api('/api/upload', { method: 'POST', token, body: form });
    },
    async indexed(token, storeId, file) {
      const response = await app.upload(token, storeId, file);
      if (response.status !== 200)
        throw new Error(`upload failed: ${response.status} ${await response.text()}`);
      const { document_id: id } = (await response.json()) as { document_id: number };
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        const status = (await (await api(`/api/upload/op-status/doc-${id}`, { token })).json()) as {
          status: string;
        };
        if (status.status === 'DONE') return id;
        if (status.status === 'ERROR') throw new Error(`indexing failed: ${JSON.stringify(status)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error('indexing did not finish');
    },
    close: () => server.close(),
  };
  return app;
}

/** Every file below a directory (relative paths), for "nothing left behind" checks. */
export async function filesUnder(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
  } catch {
    return [];
  }
}

export interface SseResult {
  status: number;
  headers: Headers;
  /** parsed frames (keepalive comments excluded); `[DONE]` as the string */
  frames: (Record<string, unknown> | '[DONE]')[];
  raw: string;
}

/** Reads a whole chat stream (or a JSON error). */
export async function readSse(response: Response): Promise<SseResult> {
  const raw = await response.text();
  const frames: SseResult['frames'] = [];
  for (const block of raw.split('\n\n')) {
    if (!block.startsWith('data: ')) continue;
    const data = block.slice(6);
    frames.push(data === '[DONE]' ? '[DONE]' : (JSON.parse(data) as Record<string, unknown>));
  }
  return { status: response.status, headers: response.headers, frames, raw };
}

export function frameTypes(result: SseResult): string[] {
  return result.frames.map((frame) => (frame === '[DONE]' ? '[DONE]' : String(frame.type)));
}
