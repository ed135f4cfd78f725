// `/api/costs` (spec §3.8): the caller's month summary with budget figures, and the monthly history.
import type { FastifyInstance } from 'fastify';
import { guardDatabase } from '../domain/database.js';
import type { RagContext } from './context.js';
import { InputReader, requireUser } from './conventions.js';

export function registerCostRoutes(app: FastifyInstance, context: RagContext): void {
  const { budgets } = context;

  app.get('/api/costs/summary', async (request) => {
    const user = await requireUser(request);
    return guardDatabase(() => budgets.summary(user.id));
  });

  app.get('/api/costs/history', async (request) => {
    const user = await requireUser(request);
    const reader = InputReader.query(request);
    const months = reader.integer('months', { min: 1, max: 24 }) ?? 6;
    reader.done();
    return guardDatabase(() => budgets.history(user.id, months));
  });
}
