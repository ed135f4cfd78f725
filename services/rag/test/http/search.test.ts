// POST /api/search (spec §3.6): per-signal scores, passing candidates first, store checks, validation, no cost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ContentApp, startContentApp } from './content-app.js';

let app: ContentApp;
let token: string;
let userId: number;
let storeId: number;

beforeAll(async () => {
  app = await startContentApp();
  ({ token, userId } = await app.signIn());
  storeId = await app.createStore(token);
  await app.indexed(token, storeId, {
    name: 'falcon.md',
    type: 'text/markdown',
    data: 'The Falcon launch is in May.\n\nUnrelated weather notes about rain.',
  });
  await app.indexed(token, storeId, {
    name: 'other.txt',
    type: 'text/plain',
    data: 'Gardening tips for tomatoes and basil.',
  });
});
afterAll(async () => {
  await app?.close();
});

function search(json: unknown, as = token) {
  return app.api('/api/search', { method: 'POST', token: as, json });
}

describe('POST /api/search', () => {
  it('returns ranked candidates with scores, passing ones first, and writes no cost row', async () => {
    const response = await search({ storeIds: [storeId], query: 'Falcon launch', topK: 5 });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { query: string; results: Record<string, unknown>[] };
    expect(body.query).toBe('Falcon launch');
    expect(body.results.length).toBeGreaterThanOrEqual(1);
    expect(body.results[0]).toMatchObject({
      rank: 1,
      storeId,
      title: 'falcon.md',
      filename: 'falcon.md',
      page: null,
      passesGate: true,
      coverage: 1,
    });
    expect(Object.keys(body.results[0] as object).sort()).toEqual(
      [
        'chunkId',
        'coverage',
        'documentId',
        'filename',
        'lexicalScore',
        'page',
        'passesGate',
        'query',
        'rank',
        'score',
        'snippet',
        'storeId',
        'title',
        'vectorScore',
      ]
        .filter((key) => key !== 'query')
        .sort(),
    );
    expect(String(body.results[0]?.snippet)).toContain('Falcon launch');
    const gates = body.results.map((result) => result.passesGate);
    expect(gates).toEqual([...gates].sort((a, b) => Number(b) - Number(a)));
    const logs = await app.context.db.kysely
      .selectFrom('query_logs')
      .select('id')
      .where('user_id', '=', userId)
      .where('model', '<>', 'INDEX')
      .execute();
    expect(logs).toEqual([]);
  });

  it('validates the body (422)', async () => {
    for (const body of [
      { query: 'x' },
      { storeIds: [], query: 'x' },
      { storeIds: [storeId], query: '' },
      { storeIds: [storeId], query: 'x'.repeat(2001) },
      { storeIds: [storeId], query: 'x', topK: 51 },
    ]) {
      expect((await search(body)).status).toBe(422);
    }
  });

  it("answers 404 for another user's store and never returns their chunks", async () => {
    const other = await app.signIn();
    const response = await search({ storeIds: [storeId], query: 'Falcon' }, other.token);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ detail: 'Store not found' });
  });

  it('checks 70,000 store ids at once: one unknown among them is a 404, not a failure', async () => {
    const storeIds = [storeId, ...Array.from({ length: 69_999 }, (_, index) => 1_000_000 + index)];
    const response = await search({ storeIds, query: 'Falcon' });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ detail: 'Store not found' });
  });
});

describe('reads remembered between writes', () => {
  it('never outlive the write that changes them: documents added and deleted, deactivation, store deletion, logout', async () => {
    // Remembered on the embedded database only (the `rag-embedded` project); PostgreSQL reads every time.
    expect(app.context.db.writes !== null).toBe(app.context.db.dialect === 'pglite');
    const owner = await app.signIn();
    const store = await app.createStore(owner.token);
    await app.indexed(owner.token, store, {
      name: 'first.txt',
      type: 'text/plain',
      data: 'Pelican migration starts in April.',
    });
    const titles = async () => {
      const response = await search({ storeIds: [store], query: 'pelican migration' }, owner.token);
      if (response.status !== 200) return [response.status, await response.json()];
      const body = (await response.json()) as { results: { title: string }[] };
      return body.results.map((result) => result.title).sort();
    };
    expect(await titles()).toEqual(['first.txt']);
    expect(await titles()).toEqual(['first.txt']);

    const second = await app.indexed(owner.token, store, {
      name: 'second.txt',
      type: 'text/plain',
      data: 'Pelican migration ends in October.',
    });
    expect(await titles()).toEqual(['first.txt', 'second.txt']);
    expect((await app.api(`/api/documents/${second}`, { method: 'DELETE', token: owner.token })).status).toBe(
      202,
    );
    expect(await titles()).toEqual(['first.txt']);

    const admin = await app.signInAdmin();
    const setActive = (isActive: boolean) =>
      app.api(`/api/admin/users/${owner.userId}/active`, {
        method: 'POST',
        token: admin.token,
        json: { is_active: isActive },
      });
    expect((await setActive(false)).status).toBe(200);
    expect(await titles()).toEqual([403, { detail: 'User is inactive' }]);
    expect((await setActive(true)).status).toBe(200);
    expect(await titles()).toEqual(['first.txt']);

    expect((await app.api(`/api/stores/${store}`, { method: 'DELETE', token: owner.token })).status).toBe(
      202,
    );
    expect(await titles()).toEqual([404, { detail: 'Store not found' }]);

    expect((await app.api('/api/auth/logout', { method: 'POST', token: owner.token })).status).toBe(200);
    expect(await titles()).toEqual([401, { detail: 'Token revoked' }]);
  });
});
