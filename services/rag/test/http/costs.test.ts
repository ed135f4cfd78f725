// Costs and budgets (spec §3.8; acceptance 14 budget side, 25): summary, history, upload and stream checks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BudgetExceededError } from '../../src/domain/budgets.js';
import { createUser, startTestServer, type TestServer } from './harness.js';

describe('costs and budgets', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  }, 30_000);
  afterAll(async () => server?.close());

  it('summarises the month with exact sums and raises the alert at 80 %', async () => {
    const user = await createUser(server, 'costs@example.com');
    const empty = await server.request('GET', '/api/costs/summary', { token: user.token });
    expect(empty.body).toMatchObject({
      query_cost_usd: 0,
      indexing_cost_usd: 0,
      total_usd: 0,
      monthly_budget_usd: null,
      remaining_budget_usd: null,
      percent_used: null,
      budget_alert: false,
    });
    const kysely = server.context.db.kysely;
    await kysely
      .insertInto('query_logs')
      .values([
        { user_id: user.id, prompt_tokens: 1000, completion_tokens: 0, cost_usd: '0.000002', model: 'INDEX' },
        {
          user_id: user.id,
          prompt_tokens: 321,
          completion_tokens: 17,
          cost_usd: '0.000139',
          model: 'gemini-2.5-flash',
        },
        {
          user_id: user.id,
          prompt_tokens: 1,
          completion_tokens: 1,
          cost_usd: '5',
          model: 'old',
          created_at: new Date('2020-01-15T00:00:00Z'),
        },
      ])
      .execute();
    const summary = await server.request('GET', '/api/costs/summary', { token: user.token });
    expect(summary.body).toMatchObject({
      month: new Date().toISOString().slice(0, 7),
      query_cost_usd: 0.000139,
      indexing_cost_usd: 0.000002,
      total_usd: 0.000141,
      prompt_tokens: 321,
      completion_tokens: 17,
      index_tokens: 1000,
    });
    await kysely.insertInto('budgets').values({ user_id: user.id, monthly_limit_usd: '0.01' }).execute();
    await kysely
      .insertInto('query_logs')
      .values({
        user_id: user.id,
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_usd: '0.007859',
        model: 'gemini-2.5-flash',
      })
      .execute();
    const alert = await server.request('GET', '/api/costs/summary', { token: user.token });
    expect(alert.body).toMatchObject({
      total_usd: 0.008,
      monthly_budget_usd: 0.01,
      remaining_budget_usd: 0.002,
      percent_used: 80,
      budget_alert: true,
    });
    expect(server.logs.filter((line) => line.event === 'budget_alert')).toHaveLength(1);

    const history = await server.request('GET', '/api/costs/history?months=3', { token: user.token });
    const months = history.body as { month: string; total_usd: number }[];
    expect(months).toHaveLength(3);
    expect(months[2]).toMatchObject({ month: new Date().toISOString().slice(0, 7), total_usd: 0.008 });
    expect(months[0]?.total_usd).toBe(0);
    expect((await server.request('GET', '/api/costs/history?months=25', { token: user.token })).status).toBe(
      422,
    );
  });

  it('refuses uploads over budget and holds per stream so parallel streams cannot overspend', async () => {
    const user = await createUser(server, 'budget@example.com');
    const budgets = server.context.budgets;
    await budgets.checkUpload(user.id, '1');
    await server.context.db.kysely
      .insertInto('budgets')
      .values({ user_id: user.id, monthly_limit_usd: '0.01' })
      .execute();
    await expect(budgets.checkUpload(user.id, '0.000001')).rejects.toEqual(
      new BudgetExceededError('Monthly budget exceeded'),
    );
    await server.context.db.kysely
      .updateTable('budgets')
      .set({ monthly_limit_usd: '10' })
      .where('user_id', '=', user.id)
      .execute();
    await budgets.checkUpload(user.id, '0.000001');

    // A budget for two holds: of five parallel streams exactly two get a reservation.
    await server.context.db.kysely
      .updateTable('budgets')
      .set({ monthly_limit_usd: '0.15' })
      .where('user_id', '=', user.id)
      .execute();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 5 }, () => budgets.reserveStream(user.id, '0.000001')),
    );
    const granted = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    expect(granted).toHaveLength(2);
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected')
        expect(outcome.reason).toEqual(new BudgetExceededError('Monthly budget exhausted'));
    }
    expect(budgets.openReservations(user.id)).toBe(2);
    for (const outcome of granted) if (outcome.status === 'fulfilled') outcome.value.release();
    expect(budgets.openReservations(user.id)).toBe(0);
  });
});
