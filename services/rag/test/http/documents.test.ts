// Documents (spec §3.4): listing, details, chunks, the original file, re-index, soft delete and admin restore;
// foreign ids answer like unknown ones.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ContentApp, startContentApp } from './content-app.js';

let app: ContentApp;
let token: string;
let storeId: number;
let documentId: number;
const TEXT = 'The Falcon launch is in May.\nThe budget is 40000 euros.\n';

beforeAll(async () => {
  app = await startContentApp({ UPLOAD_RATE_LIMIT_PER_MINUTE: '1000' });
  ({ token } = await app.signIn());
  storeId = await app.createStore(token);
  documentId = await app.indexed(token, storeId, { name: 'My notes.txt', type: 'text/plain', data: TEXT });
});
afterAll(async () => {
  await app?.close();
});

describe('documents', () => {
  it('lists, reads and pages chunks', async () => {
    const list = (await (await app.api(`/api/documents/store/${storeId}`, { token })).json()) as Record<
      string,
      unknown
    >[];
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      id: documentId,
      store_id: storeId,
      filename: 'My_notes.txt',
      display_name: 'My_notes.txt',
      status: 'DONE',
      size_bytes: Buffer.byteLength(TEXT),
      gcs_uri: null,
      mime_type: 'text/plain',
      last_error: null,
    });
    const one = await app.api(`/api/documents/${documentId}`, { token });
    expect(await one.json()).toEqual(list[0]);
    const chunks = (await (
      await app.api(`/api/documents/${documentId}/chunks?limit=1`, { token })
    ).json()) as Record<string, unknown>;
    expect(chunks).toMatchObject({ document_id: documentId, total: 1 });
    expect((chunks.chunks as Record<string, unknown>[])[0]).toMatchObject({
      ordinal: 0,
      page: null,
      text: TEXT.trim(),
    });
    expect((await app.api(`/api/documents/${documentId}/chunks?limit=201`, { token })).status).toBe(422);
    expect((await app.api('/api/documents/abc', { token })).status).toBe(422);
  });

  it('downloads the original bytes as an attachment', async () => {
    const response = await app.api(`/api/documents/${documentId}/file`, { token });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain');
    expect(response.headers.get('content-disposition')).toBe('attachment; filename="My_notes.txt"');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await response.text()).toBe(TEXT);
  });

  it('hides documents from other users with the same 404', async () => {
    const other = await app.signIn();
    for (const path of [
      `/api/documents/${documentId}`,
      `/api/documents/${documentId}/chunks`,
      `/api/documents/${documentId}/file`,
      '/api/documents/999999',
    ]) {
      const response = await app.api(path, { token: other.token });
      expect([path, response.status, await response.json()]).toEqual([
        path,
        404,
        { detail: 'Document not found' },
      ]);
    }
    const list = await app.api(`/api/documents/store/${storeId}`, { token: other.token });
    expect([list.status, await list.json()]).toEqual([404, { detail: 'Store not found' }]);
  });

  it('re-indexes (202) and refuses while indexing (409)', async () => {
    const { kysely } = app.context.db;
    await kysely.updateTable('documents').set({ status: 'RUNNING' }).where('id', '=', documentId).execute();
    const busy = await app.api(`/api/documents/${documentId}/reindex`, { method: 'POST', token });
    expect([busy.status, await busy.json()]).toEqual([409, { detail: 'Document is already being indexed' }]);
    await kysely.updateTable('documents').set({ status: 'DONE' }).where('id', '=', documentId).execute();
    const queued = await app.api(`/api/documents/${documentId}/reindex`, { method: 'POST', token });
    expect([queued.status, await queued.json()]).toEqual([202, { op_id: `doc-${documentId}` }]);
    let status = '';
    for (let i = 0; i < 200 && status !== 'DONE'; i++) {
      status = (
        (await (await app.api(`/api/upload/op-status/doc-${documentId}`, { token })).json()) as {
          status: string;
        }
      ).status;
      if (status !== 'DONE') await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status).toBe('DONE');
    const chunks = await kysely
      .selectFrom('chunks')
      .select('id')
      .where('document_id', '=', documentId)
      .execute();
    expect(chunks).toHaveLength(1);
  });

  it('soft-deletes (202), then everything answers 404 until an admin restores it', async () => {
    const deleted = await app.api(`/api/documents/${documentId}`, { method: 'DELETE', token });
    expect([deleted.status, await deleted.json()]).toEqual([202, { status: 'deletion_scheduled' }]);
    for (const path of [
      `/api/documents/${documentId}`,
      `/api/upload/op-status/doc-${documentId}`,
      `/api/documents/${documentId}/file`,
    ]) {
      expect((await app.api(path, { token })).status).toBe(404);
    }
    const notAdmin = await app.api(`/api/documents/${documentId}/restore`, { method: 'POST', token });
    expect([notAdmin.status, await notAdmin.json()]).toEqual([403, { detail: 'Admin access required' }]);
    const admin = await app.signInAdmin();
    const restored = await app.api(`/api/documents/${documentId}/restore`, {
      method: 'POST',
      token: admin.token,
    });
    expect([restored.status, await restored.json()]).toEqual([
      200,
      { document_id: documentId, store_id: storeId },
    ]);
    const audit = await app.context.db.kysely
      .selectFrom('admin_audit_logs')
      .selectAll()
      .where('action', '=', 'restore_document')
      .execute();
    expect(audit).toHaveLength(1);
    expect(JSON.parse(audit[0]?.metadata_json ?? '{}')).toEqual({ store_id: storeId });
    expect((await app.api(`/api/documents/${documentId}`, { token })).status).toBe(200);
    const again = await app.api(`/api/documents/${documentId}/restore`, {
      method: 'POST',
      token: admin.token,
    });
    expect(again.status).toBe(404);
  });
});
