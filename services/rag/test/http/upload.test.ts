// POST /api/upload and op-status (spec §3.4, acceptance 10–15): the checks in order with their exact answers,
// files kept under UPLOAD_DIR/<store>/<doc>/<safe name>, and nothing left behind on any failure.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ContentApp, filesUnder, startContentApp } from './content-app.js';

let app: ContentApp;
let token: string;
let userId: number;
let storeId: number;

beforeAll(async () => {
  app = await startContentApp({ UPLOAD_RATE_LIMIT_PER_MINUTE: '1000' });
  ({ token, userId } = await app.signIn());
  storeId = await app.createStore(token);
});
afterAll(async () => {
  await app?.close();
});

async function documentCount(): Promise<number> {
  const rows = await app.context.db.kysely.selectFrom('documents').select('id').execute();
  return rows.length;
}

async function expectNothingKept(before: number): Promise<void> {
  expect(await documentCount()).toBe(before);
  expect(await filesUnder(app.tmpDir)).toEqual([]);
}

const THREE_LINES = 'Alpha line one.\nBravo line two.\nCharlie line three.\n';

describe('POST /api/upload', () => {
  it('accepts a text file, keeps it under UPLOAD_DIR and indexes it', async () => {
    const response = await app.upload(token, storeId, {
      name: '../../My notes (v2).txt',
      type: 'text/plain',
      data: THREE_LINES,
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    const id = body.document_id as number;
    expect(body).toEqual({
      op_id: `doc-${id}`,
      document_id: id,
      file_display_name: 'My_notes__v2_.txt',
      estimated_tokens: Math.floor(Buffer.byteLength(THREE_LINES) / 4),
      estimated_cost_usd: 0.000001,
    });
    const stored = join(app.uploadDir, String(storeId), String(id), 'My_notes__v2_.txt');
    expect(await readFile(stored, 'utf8')).toBe(THREE_LINES);
    expect(await filesUnder(app.tmpDir)).toEqual([]);

    let status: Record<string, unknown> = {};
    for (let i = 0; i < 200 && status.status !== 'DONE'; i++) {
      status = (await (await app.api(`/api/upload/op-status/doc-${id}`, { token })).json()) as Record<
        string,
        unknown
      >;
      if (status.status !== 'DONE') await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status).toMatchObject({ status: 'DONE', error: null, document_id: id, attempts: 1 });
    expect(status.chunk_count).toBeGreaterThanOrEqual(1);
    // The finished indexing job is counted for the ingest-jobs panel of the dashboard.
    const metrics = await (await app.api('/metrics')).text();
    expect(metrics).toMatch(/^rag_ingest_jobs_total\{status="done"\} [1-9]\d*$/m);
  });

  it('uses the display name when given', async () => {
    const response = await app.upload(
      token,
      storeId,
      { name: 'a.md', type: 'text/markdown', data: '# Title\n\nBody.' },
      { displayName: 'Quarterly <b>plan</b>' },
    );
    expect(response.status).toBe(200);
    expect(((await response.json()) as Record<string, unknown>).file_display_name).toBe(
      'Quarterly <b>plan</b>',
    );
  });

  it('infers the type from the extension when the part says application/octet-stream', async () => {
    const response = await app.upload(token, storeId, {
      name: 'data.csv',
      type: 'application/octet-stream',
      data: 'a,b\n1,2\n',
    });
    expect(response.status).toBe(200);
  });

  it('refuses a type outside the profile with the sorted allow-list (415)', async () => {
    const before = await documentCount();
    const response = await app.upload(token, storeId, {
      name: 'bundle.zip',
      type: 'application/zip',
      data: 'PK\u0003\u0004rest',
    });
    expect(response.status).toBe(415);
    expect(await response.json()).toEqual({
      detail:
        "Unsupported media type 'application/zip'. Allowed types (profile=safe): application/pdf, text/csv, text/markdown, text/plain, text/tab-separated-values",
    });
    await expectNothingKept(before);
  });

  it('refuses legacy binary Office files with their own message', async () => {
    const response = await app.upload(token, storeId, {
      name: 'old.doc',
      type: 'application/msword',
      data: 'binary',
    });
    expect(response.status).toBe(415);
    expect(await response.json()).toEqual({
      detail: 'Legacy binary Office formats (.doc/.xls) are not supported; save as .docx/.xlsx',
    });
  });

  it('refuses a .pdf whose bytes are plain text (415) and keeps nothing', async () => {
    const before = await documentCount();
    const response = await app.upload(token, storeId, {
      name: 'fake.pdf',
      type: 'application/pdf',
      data: 'just some text',
    });
    expect(response.status).toBe(415);
    expect(await response.json()).toEqual({ detail: 'File content does not match declared type' });
    await expectNothingKept(before);
  });

  it('refuses text with a NUL character', async () => {
    const response = await app.upload(token, storeId, {
      name: 'nul.txt',
      type: 'text/plain',
      data: 'a\u0000b',
    });
    expect(response.status).toBe(415);
  });

  it('refuses an empty file (400)', async () => {
    const before = await documentCount();
    const response = await app.upload(token, storeId, { name: 'empty.txt', type: 'text/plain', data: '' });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ detail: 'File is empty' });
    await expectNothingKept(before);
  });

  it('answers 413 for 26 MB, drains the body and keeps nothing', async () => {
    const before = await documentCount();
    const big = new Uint8Array(new ArrayBuffer(26 * 1024 * 1024)).fill(0x61);
    const response = await app.upload(token, storeId, { name: 'big.txt', type: 'text/plain', data: big });
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual({ detail: 'File too large' });
    await expectNothingKept(before);
    expect(await filesUnder(join(app.uploadDir, String(storeId)))).not.toContainEqual(
      expect.stringContaining('big.txt'),
    );
  });

  it('answers 422 for a missing or non-integer storeId and a missing file', async () => {
    const form = new FormData();
    form.set('storeId', 'abc');
    const response = await app.api('/api/upload', { method: 'POST', token, body: form });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { detail: { loc: string[] }[] };
    expect(body.detail.map((item) => item.loc)).toEqual([
      ['body', 'storeId'],
      ['body', 'file'],
    ]);
    await expectNothingKept(await documentCount());
  });

  it("answers 404 for another user's store", async () => {
    const other = await app.signIn();
    const foreign = await app.createStore(other.token);
    const response = await app.upload(token, foreign, { name: 'a.txt', type: 'text/plain', data: 'hello' });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ detail: 'Store not found' });
    expect(await filesUnder(app.tmpDir)).toEqual([]);
  });

  it('refuses over budget (402) and accepts once the budget is raised', async () => {
    const { kysely } = app.context.db;
    await kysely.insertInto('budgets').values({ user_id: userId, monthly_limit_usd: '0.01' }).execute();
    try {
      const before = await documentCount();
      const refused = await app.upload(token, storeId, {
        name: 'b.txt',
        type: 'text/plain',
        data: THREE_LINES,
      });
      expect(refused.status).toBe(402);
      expect(await refused.json()).toEqual({ detail: 'Monthly budget exceeded' });
      await expectNothingKept(before);
      await kysely
        .updateTable('budgets')
        .set({ monthly_limit_usd: '10' })
        .where('user_id', '=', userId)
        .execute();
      const accepted = await app.upload(token, storeId, {
        name: 'b.txt',
        type: 'text/plain',
        data: THREE_LINES,
      });
      expect(accepted.status).toBe(200);
    } finally {
      await kysely.deleteFrom('budgets').where('user_id', '=', userId).execute();
    }
  });

  it('stores files readable only by the service', async () => {
    const response = await app.upload(token, storeId, {
      name: 'private.txt',
      type: 'text/plain',
      data: 'secret text',
    });
    const { document_id: id } = (await response.json()) as { document_id: number };
    const info = await stat(join(app.uploadDir, String(storeId), String(id), 'private.txt'));
    expect(info.mode & 0o077).toBe(0);
  });
});

describe('GET /api/upload/op-status/{op_id}', () => {
  it('checks the op id format', async () => {
    const bad = await app.api('/api/upload/op-status/doc-abc', { token });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ detail: 'Invalid op id format' });
    const wrong = await app.api('/api/upload/op-status/op-1', { token });
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toEqual({ detail: 'Invalid op id' });
  });

  it("answers 404 for another user's document", async () => {
    const response = await app.upload(token, storeId, { name: 'mine.txt', type: 'text/plain', data: 'mine' });
    const { op_id: opId } = (await response.json()) as { op_id: string };
    const other = await app.signIn();
    const foreign = await app.api(`/api/upload/op-status/${opId}`, { token: other.token });
    expect(foreign.status).toBe(404);
    expect(await foreign.json()).toEqual({ detail: 'Document not found' });
  });
});
