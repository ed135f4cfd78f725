// Chat sessions and their messages (spec §3.7 "Sessions"): ownership checks, the title rule, history for the
// LLM prompt, and the listing/rename/delete queries behind /api/chat/sessions.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { guardDatabase, type RagDb } from './database.js';

export const SESSION_ID_MAX = 64;
export const TITLE_LENGTH = 50;

export interface SessionOut {
  id: string;
  store_id: number | null;
  title: string;
  updated_at: string;
}

export interface MessageOut {
  id: number;
  role: 'user' | 'assistant';
  content: string;
  created_at: string;
  sources: unknown[];
}

/** A client session id trimmed and cut to 64 characters; a new UUID when absent or blank. */
export function sanitizeSessionId(value: unknown): string {
  const text = typeof value === 'string' ? value.trim().slice(0, SESSION_ID_MAX) : '';
  return text === '' ? randomUUID() : text;
}

/** The title of a session: its first question, trimmed, cut to 50 characters + `…` when longer. */
export function sessionTitle(question: string): string {
  const text = question.trim().replace(/\s+/g, ' ');
  return [...text].length > TITLE_LENGTH ? `${[...text].slice(0, TITLE_LENGTH).join('')}…` : text;
}

function sessionOut(row: {
  id: string;
  store_id: number | null;
  title: string;
  updated_at: Date;
}): SessionOut {
  return { id: row.id, store_id: row.store_id, title: row.title, updated_at: row.updated_at.toISOString() };
}

/** The owner of a session, or null when it does not exist. */
export async function sessionOwner(db: RagDb, sessionId: string): Promise<number | null> {
  const row = await guardDatabase(() =>
    db.kysely.selectFrom('chat_sessions').select('user_id').where('id', '=', sessionId).executeTakeFirst(),
  );
  return row?.user_id ?? null;
}

/** Creates the session (titled by its first question) or touches it, then stores the user's message. */
export async function recordUserTurn(
  db: RagDb,
  turn: { sessionId: string; userId: number; storeId: number; question: string },
): Promise<void> {
  await guardDatabase(() =>
    db.kysely.transaction().execute(async (tx) => {
      await tx
        .insertInto('chat_sessions')
        .values({
          id: turn.sessionId,
          user_id: turn.userId,
          store_id: turn.storeId,
          title: sessionTitle(turn.question),
          updated_at: new Date(),
        })
        .onConflict((conflict) => conflict.column('id').doUpdateSet({ updated_at: new Date() }))
        .execute();
      await tx
        .insertInto('chat_history')
        .values({
          user_id: turn.userId,
          store_id: turn.storeId,
          session_id: turn.sessionId,
          role: 'user',
          content: turn.question,
          sources: '[]',
        })
        .execute();
    }),
  );
}

export async function recordAssistantTurn(
  db: RagDb,
  turn: { sessionId: string; userId: number; storeId: number; content: string; sources: unknown[] },
): Promise<void> {
  await guardDatabase(() =>
    db.kysely.transaction().execute(async (tx) => {
      await tx
        .insertInto('chat_history')
        .values({
          user_id: turn.userId,
          store_id: turn.storeId,
          session_id: turn.sessionId,
          role: 'assistant',
          content: turn.content,
          sources: JSON.stringify(turn.sources),
        })
        .execute();
      await tx
        .updateTable('chat_sessions')
        .set({ updated_at: new Date() })
        .where('id', '=', turn.sessionId)
        .execute();
    }),
  );
}

/** The last `limit` stored messages of a session before message `beforeId`, oldest first (LLM history). */
export async function recentMessages(
  db: RagDb,
  sessionId: string,
  limit: number,
  beforeId?: number,
): Promise<{ role: 'user' | 'assistant'; content: string }[]> {
  let query = db.kysely
    .selectFrom('chat_history')
    .select(['id', 'role', 'content'])
    .where('session_id', '=', sessionId)
    .orderBy('id', 'desc')
    .limit(limit);
  if (beforeId !== undefined) query = query.where('id', '<', beforeId);
  const rows = await guardDatabase(() => query.execute());
  return rows.reverse().map((row) => ({ role: row.role, content: row.content }));
}

/** The id of the newest message of a session (the user turn just stored). */
export async function lastMessageId(db: RagDb, sessionId: string): Promise<number | undefined> {
  const row = await guardDatabase(() =>
    db.kysely
      .selectFrom('chat_history')
      .select('id')
      .where('session_id', '=', sessionId)
      .orderBy('id', 'desc')
      .executeTakeFirst(),
  );
  return row?.id;
}

export async function listSessions(
  db: RagDb,
  userId: number,
  options: { storeId?: number; limit: number },
): Promise<SessionOut[]> {
  let query = db.kysely
    .selectFrom('chat_sessions')
    .select(['id', 'store_id', 'title', 'updated_at'])
    .where('user_id', '=', userId)
    .orderBy('updated_at', 'desc')
    .orderBy('id', 'asc')
    .limit(options.limit);
  if (options.storeId !== undefined) query = query.where('store_id', '=', options.storeId);
  const rows = await guardDatabase(() => query.execute());
  return rows.map(sessionOut);
}

/** A session of the user, or null (unknown and foreign sessions look the same). */
export async function findSession(db: RagDb, userId: number, sessionId: string): Promise<SessionOut | null> {
  const row = await guardDatabase(() =>
    db.kysely
      .selectFrom('chat_sessions')
      .select(['id', 'store_id', 'title', 'updated_at'])
      .where('id', '=', sessionId)
      .where('user_id', '=', userId)
      .executeTakeFirst(),
  );
  return row === undefined ? null : sessionOut(row);
}

export async function sessionMessages(db: RagDb, sessionId: string): Promise<MessageOut[]> {
  const rows = await guardDatabase(() =>
    db.kysely
      .selectFrom('chat_history')
      .select(['id', 'role', 'content', 'created_at', 'sources'])
      .where('session_id', '=', sessionId)
      .orderBy('id', 'asc')
      .execute(),
  );
  return rows.map((row) => ({
    id: row.id,
    role: row.role,
    content: row.content,
    created_at: row.created_at.toISOString(),
    sources: row.role === 'user' ? [] : Array.isArray(row.sources) ? row.sources : [],
  }));
}

export async function renameSession(
  db: RagDb,
  userId: number,
  sessionId: string,
  title: string,
): Promise<SessionOut | null> {
  const row = await guardDatabase(() =>
    db.kysely
      .updateTable('chat_sessions')
      .set({ title, updated_at: sql<Date>`now()` })
      .where('id', '=', sessionId)
      .where('user_id', '=', userId)
      .returning(['id', 'store_id', 'title', 'updated_at'])
      .executeTakeFirst(),
  );
  return row === undefined ? null : sessionOut(row);
}

/** Deletes a session of the user with its messages; false when there was none. */
export async function deleteSession(db: RagDb, userId: number, sessionId: string): Promise<boolean> {
  const result = await guardDatabase(() =>
    db.kysely
      .deleteFrom('chat_sessions')
      .where('id', '=', sessionId)
      .where('user_id', '=', userId)
      .executeTakeFirst(),
  );
  return Number(result.numDeletedRows) > 0;
}
