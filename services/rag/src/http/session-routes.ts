// Chat sessions (spec §3.7 "Sessions"): list, messages, rename, delete — always scoped to the caller.
import type { FastifyInstance } from 'fastify';
import {
  deleteSession,
  findSession,
  listSessions,
  renameSession,
  sessionMessages,
} from '../domain/sessions.js';
import type { RagContext } from './context.js';
import { detail, InputReader, requireUser } from './conventions.js';
import { findOwnedStores } from './store-lookup.js';

const SESSION_NOT_FOUND = 'Session not found';

function sessionIdParam(params: unknown): string {
  return String((params as { id?: unknown }).id ?? '');
}

export function registerSessionRoutes(app: FastifyInstance, context: RagContext): void {
  const { db } = context;

  app.get('/api/chat/sessions', async (request) => {
    const user = await requireUser(request);
    const query = InputReader.query(request);
    const storeId = query.integer('storeId');
    const limit = query.integer('limit', { min: 1, max: 200 }) ?? 50;
    query.done();
    if (storeId !== undefined && (await findOwnedStores(db, user.id, [storeId])).length === 0) {
      throw detail(404, 'Store not found');
    }
    return listSessions(db, user.id, { storeId, limit });
  });

  app.get('/api/chat/sessions/:id/messages', async (request) => {
    const user = await requireUser(request);
    const session = await findSession(db, user.id, sessionIdParam(request.params));
    if (session === null) throw detail(404, SESSION_NOT_FOUND);
    return sessionMessages(db, session.id);
  });

  app.patch('/api/chat/sessions/:id', async (request) => {
    const user = await requireUser(request);
    const body = InputReader.body(request);
    const title = body.string('title', { required: true, min: 1, max: 200, trim: true });
    body.done();
    const session = await renameSession(db, user.id, sessionIdParam(request.params), title as string);
    if (session === null) throw detail(404, SESSION_NOT_FOUND);
    return session;
  });

  app.delete('/api/chat/sessions/:id', async (request, reply) => {
    const user = await requireUser(request);
    if (!(await deleteSession(db, user.id, sessionIdParam(request.params))))
      throw detail(404, SESSION_NOT_FOUND);
    return reply.code(204).send();
  });
}
