// The long-running commands as an operator runs them (spec §2.1, §3.11, §7 SIGTERM): the compiled bin really
// listens, sweeps upload staging folders a crash left behind, ends an open chat stream with
// `upstream_unavailable` + `[DONE]` on SIGTERM and exits 0 within 15 s; `demo` seeds and serves;
// `export-openapi --out` writes an OpenAPI 3.1 document; `reindex --document` enqueues.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRagDatabase } from '../../src/domain/database.js';
import { capturingLogger, createStore, createUser, testConfig } from '../domain/rag-fixtures.js';
import { type FakeLlm, startFakeLlm } from '../http/fake-llm.js';

const SERVICE_DIR = fileURLToPath(new URL('../../', import.meta.url));
// The compiled bin when it is built (npm test builds first), else the sources through tsx.
const COMMAND = existsSync(join(SERVICE_DIR, 'dist/cli.js'))
  ? [join(SERVICE_DIR, 'bin/rag-assistant.js')]
  : ['--import', import.meta.resolve('tsx'), join(SERVICE_DIR, 'src/cli.ts')];

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'rag-serve-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A clean environment: only what the test sets (plus PATH/HOME for node). */
function environment(dir: string, env: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: dir,
    DATA_DIR: join(dir, 'data'),
    TMP_DIR: join(dir, 'tmp'),
    WATCHDOG_CRON_MINUTES: '0',
    ...env,
  };
}

function run(
  dir: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...COMMAND, ...args],
      { cwd: dir, env: environment(dir, env), timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

interface Spawned {
  child: ChildProcess;
  output(): string;
  /** resolves with the exit code */
  exited: Promise<number | null>;
  /** the text that `pattern` captured first in stdout (waits up to `timeoutMs`) */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

function start(dir: string, args: string[], env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, [...COMMAND, ...args], {
    cwd: dir,
    env: environment(dir, env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    output: () => output,
    exited,
    async waitFor(pattern, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(output);
        if (match) return match[1] ?? match[0];
        if (child.exitCode !== null || Date.now() > deadline)
          throw new Error(`no ${pattern} (exit ${child.exitCode}):\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
  };
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

function api(
  base: string,
  path: string,
  init: { method?: string; token?: string; json?: unknown; body?: FormData } = {},
) {
  const headers: Record<string, string> = { 'x-requested-with': 'XMLHttpRequest' };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  let body: string | FormData | undefined = init.body;
  if (init.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.json);
  }
  return fetch(`${base}${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(body === undefined ? {} : { body }),
  });
}

async function devLogin(base: string, email: string): Promise<string> {
  const response = await api(base, '/api/auth/token', { method: 'POST', json: { email } });
  expect(response.status).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

describe('serve', () => {
  let fake: FakeLlm;
  beforeAll(async () => {
    fake = await startFakeLlm();
  });
  afterAll(async () => {
    await fake?.close();
  });

  it('listens, sweeps stale upload staging folders, and on SIGTERM ends an open stream and exits 0 within 15 s', async () => {
    const dir = await mkdtemp(join(work, 'serve-'));
    const tmp = join(dir, 'tmp');
    for (const name of ['upload-0123abcd', 'upload-fresh']) {
      await mkdir(join(tmp, name), { recursive: true });
      await writeFile(join(tmp, name, 'part'), 'x');
    }
    const old = new Date(Date.now() - 25 * 3_600_000);
    await utimes(join(tmp, 'upload-0123abcd'), old, old);
    // A slow upstream: one word every 100 ms for 30 s, so the stream is open when SIGTERM arrives.
    fake.script({ kind: 'stream', deltas: Array.from({ length: 300 }, (_, i) => `word${i} `), delayMs: 100 });

    const server = start(dir, ['serve', '--host', '127.0.0.1', '--port', '0'], {
      ALLOW_DEV_LOGIN: 'true',
      ENABLE_LOCAL_OPENAI_BACKEND: 'true',
      LOCAL_LLM_BASE_URL: `${fake.url}/v1`,
      LOCAL_LLM_DEFAULT_MODEL: 'local-model',
      GEMINI_STREAM_RETRY_ATTEMPTS: '0',
    });
    try {
      const base = await server.waitFor(/"event":"server_listening"[^\n]*"url":"([^"]+)"/);
      const live = await fetch(`${base}/live`);
      expect([live.status, await live.json()]).toEqual([200, { status: 'ok' }]);
      expect(await until(() => !existsSync(join(tmp, 'upload-0123abcd')), 5_000)).toBe(true);
      expect(existsSync(join(tmp, 'upload-fresh', 'part'))).toBe(true);

      const token = await devLogin(base, 'stream@example.com');
      const store = await api(base, '/api/stores', {
        method: 'POST',
        token,
        json: { display_name: 'Local', backend: 'local_openai' },
      });
      const storeId = ((await store.json()) as { id: number }).id;
      const form = new FormData();
      form.set('storeId', String(storeId));
      form.set(
        'file',
        new Blob(['The Falcon launch is scheduled for May 2026 at the northern site.\n'], {
          type: 'text/markdown',
        }),
        'falcon.md',
      );
      const upload = await api(base, '/api/upload', { method: 'POST', token, body: form });
      expect(upload.status).toBe(200);
      const { op_id: opId } = (await upload.json()) as { op_id: string };
      expect(
        await until(async () => {
          const status = await api(base, `/api/upload/op-status/${opId}`, { token });
          return ((await status.json()) as { status: string }).status === 'DONE';
        }, 10_000),
      ).toBe(true);

      const response = await api(base, '/api/chat', {
        method: 'POST',
        token,
        json: { storeIds: [storeId], question: 'When is the Falcon launch?' },
      });
      expect(response.status).toBe(200);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = '';
      while (!text.includes('"type":"text-delta"')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      expect(text).toContain('"type":"text-delta"');

      const signalledAt = Date.now();
      server.child.kill('SIGTERM');
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      const frames = text
        .split('\n\n')
        .filter((block) => block.startsWith('data: '))
        .map((block) => block.slice(6));
      expect(frames.at(-1)).toBe('[DONE]');
      expect(JSON.parse(frames.at(-2) as string)).toMatchObject({
        type: 'error',
        code: 'upstream_unavailable',
        errorText: 'Service temporarily unavailable. Please try again.',
      });
      expect(frames.some((frame) => frame.includes('"type":"finish"'))).toBe(false);
      expect(await server.exited).toBe(0);
      expect(Date.now() - signalledAt).toBeLessThan(15_000);
      expect(server.output()).toContain('"event":"server_stopped"');
    } finally {
      server.child.kill('SIGKILL');
    }
  }, 40_000);
});

describe('demo', () => {
  it('seeds demo@example.com with the "Demo" store, serves it, and stops on SIGTERM', async () => {
    const dir = await mkdtemp(join(work, 'demo-'));
    const demo = start(
      dir,
      ['demo', '--data-dir', join(dir, 'demo-data'), '--host', '127.0.0.1', '--port', '0'],
      {},
    );
    try {
      const base = await demo.waitFor(/Demo running at (http:\/\/[^\s:]+:\d+)/);
      expect(demo.output()).toContain('sign in as demo@example.com with the dev login');
      const token = await devLogin(base, 'demo@example.com');
      const stores = (await (await api(base, '/api/stores', { token })).json()) as {
        id: number;
        display_name: string;
        document_count: number;
      }[];
      expect(stores).toEqual([expect.objectContaining({ display_name: 'Demo', document_count: 1 })]);
      const documents = (await (
        await api(base, `/api/documents/store/${stores[0]?.id}`, { token })
      ).json()) as { filename: string }[];
      expect(documents.map((document) => document.filename)).toEqual(['sample-report.md']);
      expect(existsSync(join(dir, 'demo-data', 'pglite'))).toBe(true);
      demo.child.kill('SIGTERM');
      expect(await demo.exited).toBe(0);
    } finally {
      demo.child.kill('SIGKILL');
    }
  }, 30_000);
});

describe('one-shot commands', () => {
  it('export-openapi --out writes a valid OpenAPI 3.1 document', async () => {
    const dir = await mkdtemp(join(work, 'openapi-'));
    const out = join(dir, 'docs', 'openapi.json');
    const result = await run(dir, ['export-openapi', '--out', out]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`Wrote the OpenAPI document to ${out}\n`);
    const document = JSON.parse(await readFile(out, 'utf8')) as {
      openapi: string;
      info: { title: string; version: string };
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
      components?: { schemas?: Record<string, object> };
    };
    expect(document.openapi).toMatch(/^3\.1\.\d+$/);
    expect(typeof document.info.title).toBe('string');
    expect(typeof document.info.version).toBe('string');
    for (const path of ['/api/stores', '/api/upload', '/api/chat', '/health'])
      expect(document.paths).toHaveProperty(path);
    for (const [path, operations] of Object.entries(document.paths)) {
      expect(path.startsWith('/')).toBe(true);
      for (const [method, operation] of Object.entries(operations)) {
        if (!['get', 'post', 'put', 'patch', 'delete', 'head', 'options'].includes(method)) continue;
        expect(Object.keys(operation.responses).length, `${method} ${path}`).toBeGreaterThan(0);
      }
    }
    // Every component schema is a valid JSON Schema 2020-12 (the dialect of OpenAPI 3.1) and every $ref resolves.
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    ajv.addSchema({ $id: 'openapi.json', components: document.components ?? {} });
    const text = JSON.stringify(document);
    for (const [, ref] of text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g))
      expect(document.components?.schemas, `$ref ${ref}`).toHaveProperty(ref as string);
    for (const name of Object.keys(document.components?.schemas ?? {}))
      expect(() => ajv.getSchema(`openapi.json#/components/schemas/${name}`)).not.toThrow();
  });

  it('reindex --document enqueues a DONE document on the embedded queue, and finds nothing to do the second time', async () => {
    const dir = await mkdtemp(join(work, 'reindex-'));
    const config = testConfig({ dataDir: join(dir, 'data'), uploadDir: join(dir, 'data', 'uploads') });
    let db = await openRagDatabase(config, capturingLogger().logger);
    let documentId: number;
    try {
      const store = await createStore(db, await createUser(db));
      const row = await db.kysely
        .insertInto('documents')
        .values({
          store_id: store,
          filename: 'a.md',
          display_name: 'a.md',
          mime_type: 'text/markdown',
          size_bytes: 1,
          sha256: 'x',
          storage_path: join(dir, 'a.md'),
          status: 'DONE',
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      documentId = row.id;
    } finally {
      await db.close();
    }

    const first = await run(dir, ['reindex', '--document', String(documentId)]);
    expect([first.code, first.stderr]).toEqual([0, '']);
    expect(first.stdout).toBe(
      `Queued 1 document(s) for re-indexing: ${documentId}\nThe server indexes them when it starts (embedded queue).\n`,
    );
    const second = await run(dir, ['reindex', '--document', String(documentId)]);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe(
      'No documents to re-index (none found, or they are already PENDING/RUNNING).\n',
    );
    const usage = await run(dir, ['reindex']);
    expect(usage.code).toBe(2);

    db = await openRagDatabase(config, capturingLogger().logger);
    try {
      const document = await db.kysely
        .selectFrom('documents')
        .select(['status', 'attempts'])
        .where('id', '=', documentId)
        .executeTakeFirstOrThrow();
      expect(document).toEqual({ status: 'PENDING', attempts: 0 });
      const jobs = await db.kysely.selectFrom('jobs').select(['payload', 'state']).execute();
      expect(jobs).toEqual([{ payload: expect.objectContaining({ documentId }), state: 'queued' }]);
    } finally {
      await db.close();
    }
  });
});
