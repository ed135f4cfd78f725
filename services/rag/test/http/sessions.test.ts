// Chat sessions (spec §3.7, acceptance 24): titles, listing, messages, rename, delete, isolation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ContentApp, readSse, startContentApp } from './content-app.js';

let app: ContentApp;
let token: string;
let storeId: number;

beforeAll(async () => {
  app = await startContentApp({ CHAT_RATE_LIMIT_PER_MINUTE: '1000' });
  ({ token } = await app.signIn());
  storeId = await app.createStore(token);
});
afterAll(async () => {
  await app?.close();
});

async function ask(question: string, sessionId: string, as = token, store = storeId) {
  const result = await readSse(
    await app.api('/api/chat', {
      method: 'POST',
      token: as,
      json: { storeIds: [store], question, sessionId },
    }),
  );
  expect(result.status).toBe(200);
}

describe('chat sessions', () => {
  it('titles a session by its first question, cut to 50 characters + …', async () => {
    const long = `  ${'Tell me everything about the quarterly numbers and the forecast'}  `;
    await ask(long, 'session-long');
    await ask('A second question', 'session-long');
    await ask('Short one', 'session-short');
    const sessions = (await (await app.api('/api/chat/sessions', { token })).json()) as Record<
      string,
      unknown
    >[];
    expect(sessions.map((session) => session.id)).toEqual(['session-short', 'session-long']);
    expect(sessions[1]).toMatchObject({ store_id: storeId, title: `${long.trim().slice(0, 50)}…` });
    expect(sessions[0]?.title).toBe('Short one');
    const limited = (await (await app.api('/api/chat/sessions?limit=1', { token })).json()) as unknown[];
    expect(limited).toHaveLength(1);
    const byStore = (await (
      await app.api(`/api/chat/sessions?storeId=${storeId}`, { token })
    ).json()) as unknown[];
    expect(byStore).toHaveLength(2);
  });

  it('lists messages oldest first, hides them from other users', async () => {
    const messages = (await (
      await app.api('/api/chat/sessions/session-long/messages', { token })
    ).json()) as Record<string, unknown>[];
    expect(messages.map((message) => message.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(messages[0]?.sources).toEqual([]);
    const other = await app.signIn();
    const foreign = await app.api('/api/chat/sessions/session-long/messages', { token: other.token });
    expect(foreign.status).toBe(404);
    expect(await foreign.json()).toEqual({ detail: 'Session not found' });
    const unknown = await app.api('/api/chat/sessions/nope/messages', { token });
    expect(unknown.status).toBe(404);
    const otherList = await app.api(`/api/chat/sessions?storeId=${storeId}`, { token: other.token });
    expect(otherList.status).toBe(404);
    expect(await otherList.json()).toEqual({ detail: 'Store not found' });
  });

  it('renames and deletes a session with its messages', async () => {
    const renamed = await app.api('/api/chat/sessions/session-short', {
      method: 'PATCH',
      token,
      json: { title: 'Renamed' },
    });
    expect(renamed.status).toBe(200);
    expect(await renamed.json()).toMatchObject({ id: 'session-short', title: 'Renamed' });
    const empty = await app.api('/api/chat/sessions/session-short', {
      method: 'PATCH',
      token,
      json: { title: '' },
    });
    expect(empty.status).toBe(422);
    const deleted = await app.api('/api/chat/sessions/session-short', { method: 'DELETE', token });
    expect(deleted.status).toBe(204);
    const gone = await app.api('/api/chat/sessions/session-short/messages', { token });
    expect(gone.status).toBe(404);
    const rows = await app.context.db.kysely
      .selectFrom('chat_history')
      .select('id')
      .where('session_id', '=', 'session-short')
      .execute();
    expect(rows).toEqual([]);
    const again = await app.api('/api/chat/sessions/session-short', { method: 'DELETE', token });
    expect(again.status).toBe(404);
  });
});
