// Monthly budgets and spend (spec §3.8): month-to-date spend from `query_logs`, the upload and chat budget
// checks serialized per user (an in-process mutex, then a transaction-scoped advisory lock so several processes
// on one PostgreSQL agree), per-stream reservations so parallel streams of one user cannot overspend, and the
// cost summary/history and admin usage figures. Money is exact decimal: SQL sums are read back as text.
import { Decimal } from 'decimal.js';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { Logger } from 'pino';
import type { RagDatabase } from './schema.js';

/** A budget check refused the request: HTTP 402 with this message. */
export class BudgetExceededError extends Error {
  override readonly name = 'BudgetExceededError';
}

export const UPLOAD_BUDGET_MESSAGE = 'Monthly budget exceeded';
export const CHAT_BUDGET_MESSAGE = 'Monthly budget exhausted';

export interface StreamReservation {
  /** the user's monthly limit as a decimal string, or null when the user has no budget (unlimited) */
  readonly limitUsd: string | null;
  /**
   * What this stream may still spend: limit − month-to-date spend at reservation time − the holds of the
   * user's other open streams; null when unlimited.
   */
  remainingUsd(): string | null;
  /** gives the hold back; call once the stream's final `query_logs` row is written (repeat calls do nothing) */
  release(): void;
}

export interface CostSummary {
  month: string;
  query_cost_usd: number;
  indexing_cost_usd: number;
  total_usd: number;
  prompt_tokens: number;
  completion_tokens: number;
  index_tokens: number;
  monthly_budget_usd: number | null;
  remaining_budget_usd: number | null;
  percent_used: number | null;
  budget_alert: boolean;
}

export interface CostHistoryMonth {
  month: string;
  query_cost_usd: number;
  indexing_cost_usd: number;
  total_usd: number;
}

export interface UserUsage {
  user_id: number;
  email: string;
  query_cost_usd: number;
  indexing_cost_usd: number;
  total_usd: number;
  prompt_tokens: number;
  completion_tokens: number;
  index_tokens: number;
  monthly_limit_usd: number | null;
  remaining_budget_usd: number | null;
  percent_used: number | null;
}

export interface BudgetService {
  /** sum of the user's `query_logs.cost_usd` since the first day of the current UTC month, as a decimal string */
  monthToDateSpend(userId: number, executor?: Kysely<RagDatabase>): Promise<string>;
  /** the user's monthly limit (decimal string) or null when none is set */
  limitFor(userId: number, executor?: Kysely<RagDatabase>): Promise<string | null>;
  /** runs `fn` in a transaction holding the user's budget lock (per process and across processes) */
  withBudgetLock<T>(userId: number, fn: (tx: Transaction<RagDatabase>) => Promise<T>): Promise<T>;
  /** upload check: throws BudgetExceededError(`Monthly budget exceeded`) when spend + estimate + hold > limit */
  checkUpload(userId: number, estimatedCostUsd: string): Promise<void>;
  /** chat pre-check and hold: throws BudgetExceededError(`Monthly budget exhausted`) per §3.8 */
  reserveStream(userId: number, estimatedPromptCostUsd: string): Promise<StreamReservation>;
  /** open stream holds of a user (tests, admin) */
  openReservations(userId: number): number;
  summary(userId: number, now?: Date): Promise<CostSummary>;
  history(userId: number, months: number, now?: Date): Promise<CostHistoryMonth[]>;
  /** admin usage table for a `YYYY-MM` month, spend desc */
  usage(month: string): Promise<UserUsage[]>;
}

const ROUND = Decimal.ROUND_HALF_UP;

/** A decimal amount as a JSON number rounded to 6 decimals. */
export function usdNumber(value: Decimal.Value): number {
  return new Decimal(value).toDecimalPlaces(6, ROUND).toNumber();
}

/** `YYYY-MM` of a date in UTC. */
export function monthOf(date: Date): string {
  return date.toISOString().slice(0, 7);
}

/** The first instant of a `YYYY-MM` month (UTC) and of the month after it. */
export function monthBounds(month: string): { start: Date; end: Date } {
  const [year, monthNumber] = month.split('-').map(Number) as [number, number];
  return {
    start: new Date(Date.UTC(year, monthNumber - 1, 1)),
    end: new Date(Date.UTC(year, monthNumber, 1)),
  };
}

function percentUsed(spend: Decimal, limit: Decimal): number {
  if (limit.isZero()) return 100;
  return spend.div(limit).times(100).toDecimalPlaces(1, ROUND).toNumber();
}

interface MonthFigures {
  query: Decimal;
  indexing: Decimal;
  promptTokens: number;
  completionTokens: number;
  indexTokens: number;
}

/** Runs callers of one key one after another (the in-process half of the budget lock). */
class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let unlock: () => void = () => {};
    const mine = new Promise<void>((resolve) => {
      unlock = resolve;
    });
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      unlock();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

export function createBudgetService(deps: {
  kysely: Kysely<RagDatabase>;
  holdUsd: string;
  alertPercent: number;
  logger: Logger;
}): BudgetService {
  const { kysely, logger } = deps;
  const hold = new Decimal(deps.holdUsd);
  const mutex = new KeyedMutex();
  /** open stream holds per user (this process) */
  const reservations = new Map<number, Set<symbol>>();
  /** `user:month` pairs already logged as `budget_alert` */
  const alerted = new Set<string>();

  const monthToDateSpend = async (userId: number, executor: Kysely<RagDatabase> = kysely) => {
    const { start } = monthBounds(monthOf(new Date()));
    const row = await executor
      .selectFrom('query_logs')
      .select(sql<string>`coalesce(sum(cost_usd), 0)::text`.as('spend'))
      .where('user_id', '=', userId)
      .where('created_at', '>=', start)
      .executeTakeFirst();
    return new Decimal(row?.spend ?? '0').toFixed();
  };

  const limitFor = async (userId: number, executor: Kysely<RagDatabase> = kysely) => {
    const row = await executor
      .selectFrom('budgets')
      .select(sql<string>`monthly_limit_usd::text`.as('limit'))
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return row === undefined ? null : row.limit;
  };

  const withBudgetLock = <T>(userId: number, fn: (tx: Transaction<RagDatabase>) => Promise<T>) =>
    mutex.run(`budget:${userId}`, () =>
      kysely.transaction().execute(async (tx) => {
        await sql`select pg_advisory_xact_lock(hashtext(${`budget:${userId}`}))`.execute(tx);
        return fn(tx);
      }),
    );

  const figures = async (userIds: number[] | null, month: string) => {
    const { start, end } = monthBounds(month);
    let query = kysely
      .selectFrom('query_logs')
      .select([
        'user_id',
        sql<string>`coalesce(sum(cost_usd) filter (where model <> 'INDEX'), 0)::text`.as('query'),
        sql<string>`coalesce(sum(cost_usd) filter (where model = 'INDEX'), 0)::text`.as('indexing'),
        sql<string>`coalesce(sum(prompt_tokens) filter (where model <> 'INDEX'), 0)::text`.as('prompt'),
        sql<string>`coalesce(sum(completion_tokens) filter (where model <> 'INDEX'), 0)::text`.as(
          'completion',
        ),
        sql<string>`coalesce(sum(prompt_tokens) filter (where model = 'INDEX'), 0)::text`.as('index_tokens'),
      ])
      .where('created_at', '>=', start)
      .where('created_at', '<', end)
      .groupBy('user_id');
    if (userIds !== null) query = query.where('user_id', 'in', userIds);
    const rows = await query.execute();
    const result = new Map<number, MonthFigures>();
    for (const row of rows) {
      result.set(row.user_id, {
        query: new Decimal(row.query),
        indexing: new Decimal(row.indexing),
        promptTokens: Number(row.prompt),
        completionTokens: Number(row.completion),
        indexTokens: Number(row.index_tokens),
      });
    }
    return result;
  };

  const empty: MonthFigures = {
    query: new Decimal(0),
    indexing: new Decimal(0),
    promptTokens: 0,
    completionTokens: 0,
    indexTokens: 0,
  };

  return {
    monthToDateSpend,
    limitFor,
    withBudgetLock,

    async checkUpload(userId, estimatedCostUsd) {
      await withBudgetLock(userId, async (tx) => {
        const limit = await limitFor(userId, tx);
        if (limit === null) return;
        const spend = new Decimal(await monthToDateSpend(userId, tx));
        if (spend.plus(estimatedCostUsd).plus(hold).greaterThan(limit)) {
          logger.info({ event: 'budget_refused', user_id: userId, check: 'upload' }, 'budget_refused');
          throw new BudgetExceededError(UPLOAD_BUDGET_MESSAGE);
        }
      });
    },

    async reserveStream(userId, estimatedPromptCostUsd) {
      const token = Symbol('stream');
      const result = await withBudgetLock(userId, async (tx) => {
        const limit = await limitFor(userId, tx);
        if (limit === null) return { limit: null, remaining: null };
        const spend = new Decimal(await monthToDateSpend(userId, tx));
        const otherHolds = hold.times(reservations.get(userId)?.size ?? 0);
        const remaining = new Decimal(limit).minus(spend).minus(otherHolds);
        if (
          remaining.lessThanOrEqualTo(0) ||
          remaining.lessThanOrEqualTo(hold) ||
          new Decimal(estimatedPromptCostUsd).greaterThan(remaining.minus(hold))
        ) {
          logger.info({ event: 'budget_refused', user_id: userId, check: 'chat' }, 'budget_refused');
          throw new BudgetExceededError(CHAT_BUDGET_MESSAGE);
        }
        // Taken while the lock is held, so the next stream of this user already sees this hold.
        let held = reservations.get(userId);
        if (held === undefined) {
          held = new Set();
          reservations.set(userId, held);
        }
        held.add(token);
        return { limit, remaining: remaining.toFixed() };
      });
      return {
        limitUsd: result.limit,
        remainingUsd: () => result.remaining,
        release: () => {
          const held = reservations.get(userId);
          if (held?.delete(token) && held.size === 0) reservations.delete(userId);
        },
      };
    },

    openReservations(userId) {
      return reservations.get(userId)?.size ?? 0;
    },

    async summary(userId, now = new Date()) {
      const month = monthOf(now);
      const [monthFigures, limit] = await Promise.all([figures([userId], month), limitFor(userId)]);
      const current = monthFigures.get(userId) ?? empty;
      const total = current.query.plus(current.indexing);
      let remaining: number | null = null;
      let percent: number | null = null;
      let alert = false;
      if (limit !== null) {
        const limitValue = new Decimal(limit);
        remaining = usdNumber(Decimal.max(0, limitValue.minus(total)));
        percent = percentUsed(total, limitValue);
        alert = total.greaterThanOrEqualTo(limitValue.times(deps.alertPercent).div(100));
        const key = `${userId}:${month}`;
        if (alert && !alerted.has(key)) {
          alerted.add(key);
          logger.warn(
            { event: 'budget_alert', user_id: userId, month, percent_used: percent },
            'budget_alert',
          );
        }
      }
      return {
        month,
        query_cost_usd: usdNumber(current.query),
        indexing_cost_usd: usdNumber(current.indexing),
        total_usd: usdNumber(total),
        prompt_tokens: current.promptTokens,
        completion_tokens: current.completionTokens,
        index_tokens: current.indexTokens,
        monthly_budget_usd: limit === null ? null : usdNumber(limit),
        remaining_budget_usd: remaining,
        percent_used: percent,
        budget_alert: alert,
      };
    },

    async history(userId, months, now = new Date()) {
      const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - (months - 1), 1));
      const rows = await kysely
        .selectFrom('query_logs')
        .select([
          sql<string>`to_char(created_at at time zone 'UTC', 'YYYY-MM')`.as('month'),
          sql<string>`coalesce(sum(cost_usd) filter (where model <> 'INDEX'), 0)::text`.as('query'),
          sql<string>`coalesce(sum(cost_usd) filter (where model = 'INDEX'), 0)::text`.as('indexing'),
        ])
        .where('user_id', '=', userId)
        .where('created_at', '>=', first)
        .groupBy(sql`to_char(created_at at time zone 'UTC', 'YYYY-MM')`)
        .execute();
      const byMonth = new Map(rows.map((row) => [row.month, row]));
      const result: CostHistoryMonth[] = [];
      for (let index = 0; index < months; index++) {
        const month = monthOf(new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth() + index, 1)));
        const row = byMonth.get(month);
        const query = new Decimal(row?.query ?? 0);
        const indexing = new Decimal(row?.indexing ?? 0);
        result.push({
          month,
          query_cost_usd: usdNumber(query),
          indexing_cost_usd: usdNumber(indexing),
          total_usd: usdNumber(query.plus(indexing)),
        });
      }
      return result;
    },

    async usage(month) {
      const [monthFigures, users] = await Promise.all([
        figures(null, month),
        kysely
          .selectFrom('users')
          .leftJoin('budgets', 'budgets.user_id', 'users.id')
          .select([
            'users.id',
            'users.email',
            sql<string | null>`budgets.monthly_limit_usd::text`.as('limit'),
          ])
          .execute(),
      ]);
      const rows = users.map((user) => {
        const current = monthFigures.get(user.id) ?? empty;
        const total = current.query.plus(current.indexing);
        const limit = user.limit === null ? null : new Decimal(user.limit);
        return {
          total,
          row: {
            user_id: user.id,
            email: user.email,
            query_cost_usd: usdNumber(current.query),
            indexing_cost_usd: usdNumber(current.indexing),
            total_usd: usdNumber(total),
            prompt_tokens: current.promptTokens,
            completion_tokens: current.completionTokens,
            index_tokens: current.indexTokens,
            monthly_limit_usd: limit === null ? null : usdNumber(limit),
            remaining_budget_usd: limit === null ? null : usdNumber(Decimal.max(0, limit.minus(total))),
            percent_used: limit === null ? null : percentUsed(total, limit),
          },
        };
      });
      rows.sort((a, b) => b.total.comparedTo(a.total) || a.row.user_id - b.row.user_id);
      return rows.map((entry) => entry.row);
    },
  };
}
