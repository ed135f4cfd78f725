// Stores (spec §3.3; acceptance 9).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, startTestServer, type TestServer } from './harness.js';

describe('stores', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  }, 30_000);
  afterAll(async () => server?.close());

  it('validates names, caps stores per user, soft-deletes and lets an admin restore', async () => {
    const user = await createUser(server, 'stores@example.com');
    const create = (display_name: unknown) =>
      server.request('POST', '/api/stores', { token: user.token, body: { display_name } });
    expect((await create('')).status).toBe(422);
    expect((await create('javascript:alert(1)')).status).toBe(422);
    expect((await create('x'.repeat(101))).status).toBe(422);
    const long = await create('x'.repeat(100));
    expect(long.status).toBe(200);
    const typed = await create('  R&D <b>notes</b>\u0007 ');
    expect(typed.body).toMatchObject({
      display_name: 'R&D <b>notes</b>',
      backend: 'gemini_hosted',
      document_count: 0,
    });
    expect((typed.body as { fs_name: string }).fs_name).toMatch(/^fileSearchStores\/local-[0-9a-f]{32}$/);
    const disabled = await server.request('POST', '/api/stores', {
      token: user.token,
      body: { display_name: 'Local', backend: 'local_openai' },
    });
    expect([disabled.status, disabled.body]).toEqual([400, { detail: 'local_openai backend is disabled' }]);
    for (let index = 3; index <= 10; index++) expect((await create(`Store ${index}`)).status).toBe(200);
    const eleventh = await create('Store 11');
    expect([eleventh.status, eleventh.body]).toEqual([429, { detail: 'Maximum 10 stores per user' }]);

    const list = await server.request('GET', '/api/stores', { token: user.token });
    const ids = (list.body as { id: number }[]).map((store) => store.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    const target = ids[0] as number;

    const other = await createUser(server, 'other-stores@example.com');
    const foreign = await server.request('DELETE', `/api/stores/${target}`, { token: other.token });
    expect([foreign.status, foreign.body]).toEqual([404, { detail: 'Store not found' }]);
    const deleted = await server.request('DELETE', `/api/stores/${target}`, { token: user.token });
    expect([deleted.status, deleted.body]).toEqual([202, { status: 'deletion_scheduled' }]);
    expect((await server.request('DELETE', `/api/stores/${target}`, { token: user.token })).status).toBe(404);
    expect(
      ((await server.request('GET', '/api/stores', { token: user.token })).body as unknown[]).length,
    ).toBe(9);

    const notAdmin = await server.request('POST', `/api/stores/${target}/restore`, { token: user.token });
    expect([notAdmin.status, notAdmin.body]).toEqual([403, { detail: 'Admin access required' }]);
    const admin = await createUser(server, 'stores-admin@example.com', { admin: true });
    const restored = await server.request('POST', `/api/stores/${target}/restore`, { token: admin.token });
    expect(restored.body).toMatchObject({ id: target });
    expect((await server.request('POST', '/api/stores/999999/restore', { token: admin.token })).status).toBe(
      404,
    );
    const audit = await server.request('GET', '/api/admin/audit', { token: admin.token });
    expect((audit.body as { action: string }[])[0]).toMatchObject({
      action: 'restore_store',
      target_id: String(target),
    });
  });
});
