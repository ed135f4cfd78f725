// Admin routes (spec §3.9; acceptance 26 and 31).
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, startTestServer, type TestServer, until } from './harness.js';

describe('admin', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  }, 30_000);
  afterAll(async () => server?.close());

  it('manages users and budgets with audit entries', async () => {
    const admin = await createUser(server, 'admin@example.com', { admin: true });
    const user = await createUser(server, 'member@example.com');
    const forbidden = await server.request('GET', '/api/admin/users', { token: user.token });
    expect([forbidden.status, forbidden.body]).toEqual([403, { detail: 'Admin access required' }]);

    const users = await server.request('GET', '/api/admin/users', { token: admin.token });
    expect((users.body as { id: number }[]).map((row) => row.id)).toEqual([user.id, admin.id]);

    const demote = await server.request('POST', `/api/admin/users/${admin.id}/role`, {
      token: admin.token,
      body: { is_admin: false },
    });
    expect([demote.status, demote.body]).toEqual([
      400,
      { detail: 'Admins cannot remove their own admin access' },
    ]);
    const selfOff = await server.request('POST', `/api/admin/users/${admin.id}/active`, {
      token: admin.token,
      body: { is_active: false },
    });
    expect([selfOff.status, selfOff.body]).toEqual([400, { detail: 'Admins cannot deactivate themselves' }]);

    const unknownBudget = await server.request('POST', '/api/admin/budgets/999999', {
      token: admin.token,
      body: { monthly_limit_usd: 5 },
    });
    expect([unknownBudget.status, unknownBudget.body]).toEqual([404, { detail: 'User not found' }]);
    const outOfRange = await server.request('POST', `/api/admin/budgets/${user.id}`, {
      token: admin.token,
      body: { monthly_limit_usd: -1 },
    });
    expect(outOfRange.status).toBe(422);
    const budget = await server.request('POST', `/api/admin/budgets/${user.id}`, {
      token: admin.token,
      body: { monthly_limit_usd: 12.5 },
    });
    expect(budget.body).toEqual({ monthly_limit_usd: 12.5 });
    const role = await server.request('POST', `/api/admin/users/${user.id}/role`, {
      token: admin.token,
      body: { is_admin: false, admin_notes: 'pilot team' },
    });
    expect(role.body).toMatchObject({
      id: user.id,
      is_admin: false,
      admin_notes: 'pilot team',
      monthly_limit_usd: 12.5,
    });

    const deactivated = await server.request('POST', `/api/admin/users/${user.id}/active`, {
      token: admin.token,
      body: { is_active: false },
    });
    expect(deactivated.body).toMatchObject({ is_active: false });
    const blocked = await server.request('GET', '/api/auth/me', { token: user.token });
    expect([blocked.status, blocked.body]).toEqual([403, { detail: 'User is inactive' }]);

    const removed = await server.request('DELETE', `/api/admin/budgets/${user.id}`, { token: admin.token });
    expect(removed.status).toBe(204);

    const audit = (await server.request('GET', '/api/admin/audit', { token: admin.token })).body as {
      action: string;
      metadata_json: string | null;
      admin_user_id: number;
    }[];
    expect(audit.map((entry) => entry.action)).toEqual([
      'delete_budget',
      'set_user_active',
      'set_user_role',
      'set_budget',
    ]);
    const setBudget = audit.find((entry) => entry.action === 'set_budget');
    expect(JSON.parse(setBudget?.metadata_json as string)).toEqual({ monthly_limit_usd: 12.5 });
    expect(setBudget?.admin_user_id).toBe(admin.id);

    const summary = await server.request('GET', '/api/admin/system/summary', { token: admin.token });
    expect(summary.body).toEqual({
      users: 2,
      stores: 0,
      documents: 0,
      documents_by_status: { PENDING: 0, RUNNING: 0, DONE: 0, ERROR: 0 },
      chunks: 0,
      active_streams: 0,
    });
    const usage = await server.request('GET', '/api/admin/usage?month=2020-01', { token: admin.token });
    expect((usage.body as unknown[]).length).toBe(2);
    expect(
      (await server.request('GET', '/api/admin/usage?month=2020-13', { token: admin.token })).status,
    ).toBe(422);
  });

  it('resets a document stuck RUNNING for 2 hours and it reaches DONE', async () => {
    const admin = await createUser(server, 'watchdog-admin@example.com', { admin: true });
    const store = await server.request('POST', '/api/stores', {
      token: admin.token,
      body: { display_name: 'Stuck' },
    });
    const storeId = (store.body as { id: number }).id;
    const kysely = server.context.db.kysely;
    const text = 'The watchdog recovers stuck documents. Indexing finishes after the reset.\n';
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const dir = join(server.config.uploadDir, String(storeId), 'stuck');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'stuck.txt');
    writeFileSync(path, text);
    const document = await kysely
      .insertInto('documents')
      .values({
        store_id: storeId,
        filename: 'stuck.txt',
        display_name: 'stuck.txt',
        mime_type: 'text/plain',
        size_bytes: text.length,
        sha256: 'x',
        storage_path: path,
        status: 'RUNNING',
        attempts: 1,
        status_updated_at: sql<Date>`now() - interval '2 hours'`,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const reset = await server.request('POST', '/api/admin/watchdog/reset-stuck', {
      token: admin.token,
      body: { ttl_minutes: 60 },
    });
    expect(reset.body).toEqual({ reset_count: 1 });
    const done = await until(async () => {
      const row = await kysely
        .selectFrom('documents')
        .select('status')
        .where('id', '=', document.id)
        .executeTakeFirstOrThrow();
      return row.status === 'DONE';
    }, 10_000);
    expect(done).toBe(true);
    const entry = (
      (await server.request('GET', '/api/admin/audit?limit=1', { token: admin.token })).body as {
        action: string;
        metadata_json: string;
      }[]
    )[0];
    expect(entry?.action).toBe('watchdog_reset');
    expect(JSON.parse(entry?.metadata_json as string)).toEqual({
      reset_count: 1,
      ttl_minutes: 60,
      target_user_id: null,
    });
    const overview = await server.request('GET', '/api/admin/documents?status=DONE', { token: admin.token });
    expect((overview.body as { id: number; owner_email: string }[])[0]).toMatchObject({
      id: document.id,
      owner_email: 'watchdog-admin@example.com',
    });
  });

  it('retries an ERROR document (202, audited) until it is DONE; 409 for one that is not failed, 404 unknown', async () => {
    const admin = await createUser(server, 'retry-admin@example.com', { admin: true });
    const store = await server.request('POST', '/api/stores', {
      token: admin.token,
      body: { display_name: 'Retry' },
    });
    const storeId = (store.body as { id: number }).id;
    const kysely = server.context.db.kysely;
    const text = 'An admin retry indexes a failed document again.\n';
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const dir = join(server.config.uploadDir, String(storeId), 'retry');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'retry.txt');
    writeFileSync(path, text);
    const document = await kysely
      .insertInto('documents')
      .values({
        store_id: storeId,
        filename: 'retry.txt',
        display_name: 'retry.txt',
        mime_type: 'text/plain',
        size_bytes: text.length,
        sha256: 'x',
        storage_path: path,
        status: 'ERROR',
        attempts: 3,
        last_error: 'Indexing did not finish after 3 attempts',
      })
      .returning('id')
      .executeTakeFirstOrThrow();

    const retry = await server.request('POST', `/api/admin/documents/${document.id}/retry`, {
      token: admin.token,
    });
    expect([retry.status, retry.body]).toEqual([202, { op_id: `doc-${document.id}` }]);
    const status = async () =>
      kysely
        .selectFrom('documents')
        .select(['status', 'last_error'])
        .where('id', '=', document.id)
        .executeTakeFirstOrThrow();
    expect(await until(async () => (await status()).status === 'DONE', 10_000)).toBe(true);
    expect((await status()).last_error).toBeNull();
    const entry = (
      (await server.request('GET', '/api/admin/audit?limit=1', { token: admin.token })).body as {
        action: string;
        target_id: string | number;
      }[]
    )[0];
    expect(entry).toMatchObject({ action: 'retry_document' });
    expect(String(entry?.target_id)).toBe(String(document.id));

    const again = await server.request('POST', `/api/admin/documents/${document.id}/retry`, {
      token: admin.token,
    });
    expect([again.status, again.body]).toEqual([409, { detail: 'Document is not in ERROR state or stuck' }]);
    const unknown = await server.request('POST', '/api/admin/documents/99999999/retry', {
      token: admin.token,
    });
    expect([unknown.status, unknown.body]).toEqual([404, { detail: 'Document not found' }]);
  });
});
