// Background jobs with retries, backoff and dead letters, behind one interface with two backends:
// - SQL: durable rows in a table of the service's own database (PGlite or PostgreSQL), claimed under a lease
//   that the running worker renews; a worker that dies stops renewing and another one takes the job over;
// - BullMQ on Redis, for many instances.
// Both count attempts the same way (a run whose worker vanished counts as one), give up after maxAttempts
// (the job becomes `failed`: a dead letter that can be requeued) and abort a job's signal at its timeout.
import { DelayedError, type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import { type Kysely, type RawBuilder, sql } from 'kysely';
import type { SqlDialect } from './db.js';
import type { Logger } from './log.js';

export interface JobOptions {
  /** a caller's key: while a job of this kind and key is waiting or running, adding another returns its id */
  jobId?: string;
  delayMs?: number;
  /** higher runs first (default 0); equal priorities run in order of due time */
  priority?: number;
  /** attempts for this job, overriding the consumer's maxAttempts */
  attempts?: number;
}

/** What a handler (and onFailed) learns about a job. */
export interface JobInfo<P> {
  id: string;
  kind: string;
  payload: P;
  /** 1 for the first run, 2 for the first retry, … */
  attempt: number;
}

export interface QueuedJob<P> extends JobInfo<P> {
  /** aborted at the job's timeout and when the queue closes before the job finished */
  signal: AbortSignal;
}

export type JobHandler<P> = (job: QueuedJob<P>) => Promise<void>;

/** A failure worth retrying (any error but FatalJobError is retried; this one says so explicitly). */
export class RetryableJobError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RetryableJobError';
  }
}

/** A failure that retrying cannot fix: the job becomes a dead letter at once. */
export class FatalJobError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FatalJobError';
  }
}

/** The error a job's attempt fails with when it runs past its timeout. */
export class JobTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`Job timed out after ${timeoutMs} ms`);
    this.name = 'JobTimeoutError';
  }
}

export interface ProcessOptions<P> {
  /** jobs of this kind run in parallel in this process */
  concurrency: number;
  /** an attempt running longer fails (counts as an attempt) and its signal is aborted */
  timeoutMs: number;
  /** delay before the retry that follows failed attempt `attempt` (default 1 s, 4 s, 16 s, …) */
  backoffMs?: (attempt: number) => number;
  /** attempts before the job becomes a dead letter (default 3), unless the job set its own */
  maxAttempts?: number;
  /** called after each failed attempt; `final` when the job is now a dead letter */
  onFailed?: (job: JobInfo<P>, error: unknown, final: boolean) => void;
}

/** A job that used up its attempts (or failed fatally), kept until requeued. */
export interface DeadLetter {
  id: string;
  kind: string;
  payload: unknown;
  attempts: number;
  error: string | null;
  createdAt: Date;
  failedAt: Date | null;
}

export type JobCounts = Record<'waiting' | 'active' | 'delayed' | 'failed' | 'completed', number>;

export interface JobQueue {
  /** enqueues a job (payload must survive JSON) and returns its id */
  add<P extends object>(kind: string, payload: P, options?: JobOptions): Promise<string>;
  /** starts consuming `kind` with `concurrency` parallel jobs; per-job timeout aborts `signal` and fails the attempt */
  process<P>(kind: string, handler: JobHandler<P>, options: ProcessOptions<P>): void;
  /** failed jobs, the most recent failure first (default limit 100) */
  deadLetters(kind?: string, limit?: number): Promise<DeadLetter[]>;
  /** puts a dead letter back in the queue with fresh attempts; false when `id` is not a dead letter */
  requeue(id: string): Promise<boolean>;
  counts(): Promise<JobCounts>;
  /** true while a job of `kind` added with this jobId is waiting, delayed or running */
  hasPending(kind: string, jobId: string): Promise<boolean>;
  /** stops taking jobs and waits up to drainMs (default 10 s) for running ones; the rest are put back */
  close(options?: { drainMs?: number }): Promise<void>;
}

const DEFAULT_MAX_ATTEMPTS = 3;
const DEFAULT_DRAIN_MS = 10_000;
const DEFAULT_POLL_MS = 250;
const DEFAULT_LEASE_MS = 30_000;
const DEFAULT_DEAD_LETTER_LIMIT = 100;
const LEASE_LOST_MESSAGE = 'the worker running the job stopped (lease expired)';

/** The default retry delay: 1 s after the first failed attempt, then 4 s, 16 s, … */
export function defaultBackoffMs(attempt: number): number {
  return 1000 * 4 ** Math.max(0, attempt - 1);
}

function checkKind(kind: string): void {
  // BullMQ queue names cannot contain ':'; the same rule everywhere keeps both backends interchangeable.
  if (!/^[A-Za-z0-9_.-]+$/.test(kind)) throw new Error(`invalid job kind "${kind}"`);
}

function checkJobOptions(options: JobOptions): void {
  if (options.jobId !== undefined && !/^[A-Za-z0-9_.-]*[A-Za-z_.-][A-Za-z0-9_.-]*$/.test(options.jobId))
    throw new Error(`invalid jobId "${options.jobId}": letters, digits, _ . - and not only digits`);
  if (options.attempts !== undefined && (!Number.isInteger(options.attempts) || options.attempts < 1))
    throw new Error('attempts must be a positive integer');
  if (options.delayMs !== undefined && !(options.delayMs >= 0)) throw new Error('delayMs must be ≥ 0');
  if (options.priority !== undefined && !Number.isInteger(options.priority))
    throw new Error('priority must be an integer');
}

function errorMessage(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 2000);
}

/**
 * Runs one attempt: the handler against the timeout and the queue's shutdown. Resolves when the handler
 * finished; rejects with the handler's error, a JobTimeoutError, or `shutdown.reason` when the queue gave up
 * waiting for it (the handler may still be running then: its signal is aborted).
 */
async function runAttempt<P>(
  info: JobInfo<P>,
  handler: JobHandler<P>,
  timeoutMs: number,
  shutdown: AbortSignal,
): Promise<void> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onShutdown: (() => void) | undefined;
  const interrupted = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new JobTimeoutError(timeoutMs);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
    onShutdown = () => {
      controller.abort(shutdown.reason);
      reject(shutdown.reason);
    };
    if (shutdown.aborted) onShutdown();
    else shutdown.addEventListener('abort', onShutdown, { once: true });
  });
  interrupted.catch(() => {});
  try {
    await Promise.race([handler({ ...info, signal: controller.signal }), interrupted]);
  } finally {
    clearTimeout(timer);
    if (onShutdown) shutdown.removeEventListener('abort', onShutdown);
  }
}

class ShutdownError extends Error {
  constructor() {
    super('the queue closed before the job finished');
    this.name = 'ShutdownError';
  }
}

/** Resolves when every promise settled or `ms` passed; true when they all settled. */
async function settledWithin(promises: Iterable<Promise<unknown>>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const all = Promise.allSettled(promises).then(() => true);
  try {
    return await Promise.race([all, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------------------
// SQL backend

/**
 * The table the SQL queue needs (fresh databases); `table` may be schema-qualified. The partial unique index
 * makes a caller's jobId unique among waiting and running jobs of one kind.
 */
export function jobTableSql(table: string): string {
  const name = table.replaceAll('.', '_');
  return `
CREATE TABLE ${table} (
  id serial PRIMARY KEY,
  kind text NOT NULL,
  payload jsonb NOT NULL,
  state text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
  priority integer NOT NULL DEFAULT 0,
  job_key text,
  attempts integer NOT NULL DEFAULT 0,
  max_attempts integer,
  run_at timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX ${name}_ready ON ${table} (kind, state, priority DESC, run_at);
CREATE UNIQUE INDEX ${name}_pending_key ON ${table} (kind, job_key) WHERE state IN ('queued', 'running');
`;
}

export interface SqlJobQueueOptions {
  /** the jobs table (see jobTableSql); may be schema-qualified */
  table: string;
  /** 'postgres' claims with FOR UPDATE SKIP LOCKED (many connections); 'pglite' with a plain update */
  dialect?: SqlDialect;
  /** how often idle consumers look for due jobs (default 250 ms); adds in this process wake them at once */
  pollMs?: number;
  /** how long a claim lasts without renewal (default 30 s); renewed every third of it while the job runs */
  leaseMs?: number;
  logger?: Logger;
}

interface ClaimedRow {
  id: number;
  kind: string;
  payload: unknown;
  attempts: number;
  max_attempts: number | null;
}

interface DeadLetterRow {
  id: number;
  kind: string;
  payload: unknown;
  attempts: number;
  last_error: string | null;
  created_at: Date;
  finished_at: Date | null;
}

// Consumers of every SQL queue in this process, by table: an add wakes them without waiting for the poll.
const localConsumers = new Map<string, Set<SqlConsumer>>();

/** A queue whose jobs are rows of `options.table` in `db` (durable: a restart loses nothing). */
export function createSqlJobQueue(
  // biome-ignore lint/suspicious/noExplicitAny: the queue works on whatever schema holds its table
  db: Kysely<any>,
  options: SqlJobQueueOptions,
): JobQueue {
  if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/.test(options.table))
    throw new Error(`invalid table name "${options.table}"`);
  const table = sql.table(options.table);
  const settings: SqlSettings = {
    db,
    table,
    tableName: options.table,
    skipLocked: (options.dialect ?? 'postgres') === 'postgres',
    pollMs: options.pollMs ?? DEFAULT_POLL_MS,
    leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS,
    logger: options.logger,
  };
  const consumers: SqlConsumer[] = [];
  let closed = false;

  const wakeLocal = (kind: string, delayMs: number) => {
    for (const consumer of localConsumers.get(options.table) ?? [])
      if (consumer.kind === kind) consumer.wakeIn(delayMs);
  };

  return {
    async add(kind, payload, jobOptions = {}) {
      checkKind(kind);
      checkJobOptions(jobOptions);
      const delayMs = Math.round(jobOptions.delayMs ?? 0);
      const key = jobOptions.jobId ?? null;
      // Two tries: the pending job holding the key may finish between the insert and the look-up.
      for (let tries = 0; tries < 2; tries++) {
        const inserted = await sql<{ id: number }>`
          insert into ${table} (kind, payload, state, priority, job_key, max_attempts, run_at)
          values (${kind}, ${JSON.stringify(payload)}::jsonb, 'queued', ${jobOptions.priority ?? 0}, ${key},
            ${jobOptions.attempts ?? null}, now() + ${delayMs}::double precision * interval '1 millisecond')
          on conflict (kind, job_key) where state in ('queued', 'running') do nothing
          returning id`.execute(db);
        const row = inserted.rows[0];
        if (row) {
          wakeLocal(kind, delayMs);
          return String(row.id);
        }
        const existing = await sql<{ id: number }>`
          select id from ${table}
          where kind = ${kind} and job_key = ${key} and state in ('queued', 'running')`.execute(db);
        if (existing.rows[0]) return String(existing.rows[0].id);
      }
      throw new Error(`could not enqueue ${kind} job ${key}`);
    },

    process(kind, handler, processOptions) {
      checkKind(kind);
      if (closed) throw new Error('the queue is closed');
      const consumer = new SqlConsumer(
        kind,
        handler as JobHandler<unknown>,
        processOptions as ProcessOptions<unknown>,
        settings,
      );
      consumers.push(consumer);
      const set = localConsumers.get(options.table) ?? new Set<SqlConsumer>();
      localConsumers.set(options.table, set);
      set.add(consumer);
      consumer.start();
    },

    async deadLetters(kind, limit = DEFAULT_DEAD_LETTER_LIMIT) {
      const { rows } = await sql<DeadLetterRow>`
        select id, kind, payload, attempts, last_error, created_at, finished_at from ${table}
        where state = 'failed' ${kind === undefined ? sql`` : sql`and kind = ${kind}`}
        order by finished_at desc nulls last, id desc
        limit ${limit}`.execute(db);
      return rows.map((row) => ({
        id: String(row.id),
        kind: row.kind,
        payload: row.payload,
        attempts: row.attempts,
        error: row.last_error,
        createdAt: row.created_at,
        failedAt: row.finished_at,
      }));
    },

    async requeue(id) {
      if (!/^\d{1,15}$/.test(id)) return false;
      try {
        const { rows } = await sql<{ kind: string }>`
          update ${table}
          set state = 'queued', attempts = 0, run_at = now(), lease_until = null, finished_at = null
          where id = ${Number(id)} and state = 'failed'
          returning kind`.execute(db);
        if (!rows[0]) return false;
        wakeLocal(rows[0].kind, 0);
        return true;
      } catch (error) {
        // Another job with the same jobId is pending: that one will do the work.
        if ((error as { code?: unknown }).code === '23505') return false;
        throw error;
      }
    },

    async counts() {
      const { rows } = await sql<Record<keyof JobCounts, number | string>>`
        select
          count(*) filter (where state = 'queued' and run_at <= now()) as waiting,
          count(*) filter (where state = 'queued' and run_at > now()) as delayed,
          count(*) filter (where state = 'running') as active,
          count(*) filter (where state = 'failed') as failed,
          count(*) filter (where state = 'done') as completed
        from ${table}`.execute(db);
      const row = rows[0];
      return {
        waiting: Number(row?.waiting ?? 0),
        active: Number(row?.active ?? 0),
        delayed: Number(row?.delayed ?? 0),
        failed: Number(row?.failed ?? 0),
        completed: Number(row?.completed ?? 0),
      };
    },

    async hasPending(kind, jobId) {
      const { rows } = await sql`
        select 1 from ${table}
        where kind = ${kind} and job_key = ${jobId} and state in ('queued', 'running')
        limit 1`.execute(db);
      return rows.length > 0;
    },

    async close(closeOptions = {}) {
      closed = true;
      const drainMs = closeOptions.drainMs ?? DEFAULT_DRAIN_MS;
      for (const consumer of consumers) localConsumers.get(options.table)?.delete(consumer);
      await Promise.all(consumers.map((consumer) => consumer.stop(drainMs)));
    },
  };
}

interface SqlSettings {
  // biome-ignore lint/suspicious/noExplicitAny: see createSqlJobQueue
  db: Kysely<any>;
  table: RawBuilder<unknown>;
  tableName: string;
  skipLocked: boolean;
  pollMs: number;
  leaseMs: number;
  logger: Logger | undefined;
}

/** One `process()` registration: claims due jobs of its kind while it has free slots. */
class SqlConsumer {
  private readonly running = new Map<number, Promise<void>>();
  private readonly shutdown = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private timerDueAt = Number.POSITIVE_INFINITY;
  private pumping = false;
  private pumpAgain = false;
  private stopped = false;

  constructor(
    readonly kind: string,
    private readonly handler: JobHandler<unknown>,
    private readonly options: ProcessOptions<unknown>,
    private readonly settings: SqlSettings,
  ) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1)
      throw new Error('concurrency must be a positive integer');
  }

  start(): void {
    this.wakeIn(0);
  }

  /** Looks for jobs in `delayMs` (sooner if already planned). */
  wakeIn(delayMs: number): void {
    if (this.stopped) return;
    const dueAt = Date.now() + delayMs;
    if (this.timer !== undefined && this.timerDueAt <= dueAt) return;
    clearTimeout(this.timer);
    this.timerDueAt = dueAt;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDueAt = Number.POSITIVE_INFINITY;
      void this.pump();
    }, delayMs);
  }

  private async pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        while (!this.stopped && this.running.size < this.options.concurrency) {
          const row = await this.claim();
          if (!row || this.stopped) {
            if (row) await this.release(row.id, row.attempts);
            break;
          }
          this.startJob(row);
        }
      } while (this.pumpAgain && !this.stopped);
    } catch (error) {
      this.settings.logger?.error({ err: error, kind: this.kind }, 'claiming a job failed');
    } finally {
      this.pumping = false;
      this.wakeIn(this.settings.pollMs);
    }
  }

  private async claim(): Promise<ClaimedRow | undefined> {
    const { db, table, leaseMs, skipLocked } = this.settings;
    // A running row whose lease ran out belongs to a worker that stopped: it is taken over, and its lost run
    // counts as an attempt (attempts is also the lease's fencing token: every later write checks it).
    const due = sql`
      select id from ${table}
      where kind = ${this.kind}
        and ((state = 'queued' and run_at <= now()) or (state = 'running' and lease_until < now()))
      order by priority desc, run_at, id
      limit 1 ${skipLocked ? sql`for update skip locked` : sql``}`;
    const { rows } = await sql<ClaimedRow>`
      update ${table}
      set state = 'running', attempts = attempts + 1,
        lease_until = now() + ${leaseMs}::double precision * interval '1 millisecond',
        last_error = case when state = 'running' then ${LEASE_LOST_MESSAGE} else last_error end
      where id = (${due})
      returning id, kind, payload, attempts, max_attempts`.execute(db);
    return rows[0];
  }

  private startJob(row: ClaimedRow): void {
    const run = this.runJob(row)
      .catch((error) => {
        this.settings.logger?.error({ err: error, kind: this.kind, jobId: row.id }, 'recording a job failed');
      })
      .finally(() => {
        this.running.delete(row.id);
        if (!this.stopped) void this.pump();
      });
    this.running.set(row.id, run);
  }

  private async runJob(row: ClaimedRow): Promise<void> {
    const { db, table, leaseMs, logger } = this.settings;
    const attempt = row.attempts;
    const maxAttempts = row.max_attempts ?? this.options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    const info: JobInfo<unknown> = { id: String(row.id), kind: row.kind, payload: row.payload, attempt };
    const mine = sql`id = ${row.id} and state = 'running' and attempts = ${attempt}`;
    if (attempt > maxAttempts) {
      // Only runs lost with their worker get here: giving up stops a job that kills its worker every time.
      await this.fail(info, new Error(LEASE_LOST_MESSAGE), true, mine);
      return;
    }
    const renewal = setInterval(
      () => {
        sql`update ${table} set lease_until = now() + ${leaseMs}::double precision * interval '1 millisecond'
            where ${mine}`
          .execute(db)
          .catch((error) => logger?.warn({ err: error, jobId: row.id }, 'renewing a job lease failed'));
      },
      Math.max(10, Math.floor(leaseMs / 3)),
    );
    let failure: unknown;
    let succeeded = false;
    try {
      await runAttempt(info, this.handler, this.options.timeoutMs, this.shutdown.signal);
      succeeded = true;
    } catch (error) {
      failure = error;
    } finally {
      clearInterval(renewal);
    }
    if (succeeded) {
      await sql`update ${table} set state = 'done', lease_until = null, finished_at = now() where ${mine}`.execute(
        db,
      );
      return;
    }
    if (failure instanceof ShutdownError) {
      await this.release(row.id, attempt);
      return;
    }
    const final = failure instanceof FatalJobError || attempt >= maxAttempts;
    await this.fail(info, failure, final, mine);
  }

  private async fail(
    info: JobInfo<unknown>,
    error: unknown,
    final: boolean,
    mine: RawBuilder<unknown>,
  ): Promise<void> {
    const { db, table, logger } = this.settings;
    const message = errorMessage(error);
    if (final) {
      await sql`update ${table}
        set state = 'failed', lease_until = null, finished_at = now(), last_error = ${message}
        where ${mine}`.execute(db);
    } else {
      const delayMs = Math.max(0, Math.round((this.options.backoffMs ?? defaultBackoffMs)(info.attempt)));
      await sql`update ${table}
        set state = 'queued', lease_until = null, last_error = ${message},
          run_at = now() + ${delayMs}::double precision * interval '1 millisecond'
        where ${mine}`.execute(db);
      this.wakeIn(delayMs);
    }
    logger?.warn(
      { kind: info.kind, jobId: info.id, attempt: info.attempt, final, error: message },
      final ? 'job failed for good' : 'job attempt failed',
    );
    try {
      this.options.onFailed?.(info, error, final);
    } catch (callbackError) {
      logger?.error({ err: callbackError, jobId: info.id }, 'onFailed threw');
    }
  }

  /** Puts a claimed job back without counting the attempt (the queue is closing). */
  private async release(id: number, attempt: number): Promise<void> {
    const { db, table } = this.settings;
    await sql`update ${table}
      set state = 'queued', attempts = attempts - 1, lease_until = null, run_at = now()
      where id = ${id} and state = 'running' and attempts = ${attempt}`.execute(db);
  }

  async stop(drainMs: number): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (await settledWithin(this.running.values(), drainMs)) return;
    // Still running: abort them; runJob puts each one back for the next worker.
    this.shutdown.abort(new ShutdownError());
    await Promise.allSettled(this.running.values());
  }
}

// ---------------------------------------------------------------------------------------------------------
// BullMQ backend

export interface BullJobQueueOptions {
  /** Redis key prefix of every queue (one BullMQ queue per job kind) */
  prefix: string;
  logger?: Logger;
  /**
   * How long a running job's lock lasts without renewal, and how often stalled jobs are looked for
   * (default 30 s): a job whose worker vanished runs again within about twice this time.
   */
  leaseMs?: number;
  /** completed jobs kept per kind for counts (default 1000) */
  keepCompleted?: number;
}

interface BullJobData {
  payload: unknown;
  /** the job's own attempts (JobOptions.attempts), else null: the consumer's maxAttempts applies */
  attempts: number | null;
}

// BullMQ decides retries from job.opts.attempts, fixed when the job is added; the consumer's maxAttempts is
// only known to the worker, so jobs get this ceiling and the worker ends them itself (UnrecoverableError).
const BULL_ATTEMPTS_CEILING = 1_000_000;
const BULL_BACKOFF_TYPE = 'quintet';
const BULL_NEUTRAL_PRIORITY = 1_000_000;
const BULL_MAX_PRIORITY = 2_097_151;
const PENDING_BULL_STATES = new Set(['waiting', 'prioritized', 'active', 'delayed', 'waiting-children']);

/** Connection options for BullMQ from a redis:// or rediss:// URL (BullMQ requires maxRetriesPerRequest null). */
export function bullConnectionOptions(redisUrl: string): Record<string, unknown> {
  const url = new URL(redisUrl);
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    throw new Error('the Redis URL must start with redis:// or rediss://');
  const db = url.pathname.replace(/^\//, '');
  return {
    host: url.hostname || '127.0.0.1',
    port: url.port === '' ? 6379 : Number(url.port),
    ...(db === '' ? {} : { db: Number(db) }),
    ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
    ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}

/** Our priority (higher first, default 0) as BullMQ's (lower first; every job prioritized so FIFO holds). */
function bullPriority(priority: number): number {
  return Math.min(BULL_MAX_PRIORITY, Math.max(1, BULL_NEUTRAL_PRIORITY - priority));
}

/** A queue on Redis through BullMQ: one BullMQ queue per kind, ids `<kind>:<BullMQ job id>`. */
export function createBullJobQueue(redisUrl: string, options: BullJobQueueOptions): JobQueue {
  const connection = bullConnectionOptions(redisUrl);
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const keepCompleted = options.keepCompleted ?? 1000;
  const logger = options.logger;
  const queues = new Map<string, Queue<BullJobData>>();
  const workers: Worker<BullJobData>[] = [];
  const running = new Set<Promise<unknown>>();
  const shutdown = new AbortController();
  let closed = false;

  const queueFor = (kind: string): Queue<BullJobData> => {
    checkKind(kind);
    let queue = queues.get(kind);
    if (!queue) {
      queue = new Queue<BullJobData>(kind, { connection, prefix: options.prefix });
      queue.on('error', (error) => logger?.warn({ err: error, kind }, 'job queue connection error'));
      queues.set(kind, queue);
    }
    return queue;
  };

  const findJob = async (id: string): Promise<Job<BullJobData> | undefined> => {
    const colon = id.indexOf(':');
    if (colon <= 0) return undefined;
    const kind = id.slice(0, colon);
    if (!/^[A-Za-z0-9_.-]+$/.test(kind)) return undefined;
    return (await queueFor(kind).getJob(id.slice(colon + 1))) ?? undefined;
  };

  const info = (job: Job<BullJobData>): JobInfo<unknown> => ({
    id: `${job.queueName}:${job.id}`,
    kind: job.queueName,
    payload: job.data.payload,
    // A stalled run (its worker vanished) counts as an attempt, as with the SQL queue's lost leases.
    attempt: job.attemptsMade + job.stalledCounter + 1,
  });

  return {
    async add(kind, payload, jobOptions = {}) {
      checkJobOptions(jobOptions);
      const queue = queueFor(kind);
      if (jobOptions.jobId !== undefined) {
        const existing = await queue.getJob(jobOptions.jobId);
        if (existing) {
          if (PENDING_BULL_STATES.has(await existing.getState())) return `${kind}:${existing.id}`;
          // A finished job with this id would make BullMQ ignore the add.
          await existing.remove();
        }
      }
      const job = await queue.add(
        kind,
        { payload, attempts: jobOptions.attempts ?? null },
        {
          ...(jobOptions.jobId === undefined ? {} : { jobId: jobOptions.jobId }),
          delay: Math.round(jobOptions.delayMs ?? 0),
          priority: bullPriority(jobOptions.priority ?? 0),
          attempts: BULL_ATTEMPTS_CEILING,
          backoff: { type: BULL_BACKOFF_TYPE },
          removeOnComplete: { count: keepCompleted },
          removeOnFail: false,
        },
      );
      return `${kind}:${job.id}`;
    },

    process(kind, handler, processOptions) {
      if (closed) throw new Error('the queue is closed');
      if (!Number.isInteger(processOptions.concurrency) || processOptions.concurrency < 1)
        throw new Error('concurrency must be a positive integer');
      queueFor(kind);
      const backoffMs = processOptions.backoffMs ?? defaultBackoffMs;
      const failures = new WeakMap<Error, { original: unknown; final: boolean }>();
      const worker = new Worker<BullJobData>(
        kind,
        async (job, token) => {
          const current = info(job);
          const maxAttempts = job.data.attempts ?? processOptions.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
          const recordAndThrow = (original: unknown, final: boolean): never => {
            const thrown = final
              ? new UnrecoverableError(errorMessage(original))
              : original instanceof Error
                ? original
                : new Error(errorMessage(original));
            failures.set(thrown, { original, final });
            throw thrown;
          };
          if (current.attempt > maxAttempts) recordAndThrow(new Error(LEASE_LOST_MESSAGE), true);
          const attempt = runAttempt(
            current,
            handler as JobHandler<unknown>,
            processOptions.timeoutMs,
            shutdown.signal,
          );
          running.add(attempt);
          try {
            await attempt;
          } catch (error) {
            if (error instanceof ShutdownError) {
              // Back to the queue for the next worker, without counting the attempt.
              await job.moveToDelayed(Date.now(), token);
              throw new DelayedError();
            }
            recordAndThrow(error, error instanceof FatalJobError || current.attempt >= maxAttempts);
          } finally {
            running.delete(attempt);
          }
        },
        {
          connection,
          prefix: options.prefix,
          concurrency: processOptions.concurrency,
          lockDuration: leaseMs,
          stalledInterval: leaseMs,
          maxStalledCount: BULL_ATTEMPTS_CEILING,
          settings: { backoffStrategy: (attemptsMade: number) => Math.max(0, backoffMs(attemptsMade)) },
        },
      );
      worker.on('error', (error) => logger?.warn({ err: error, kind }, 'job worker error'));
      worker.on('failed', (job, error) => {
        if (!job) return;
        const recorded = failures.get(error);
        const final = recorded?.final ?? error instanceof UnrecoverableError;
        const failed = info(job);
        // attemptsMade already counts this failure here.
        failed.attempt -= 1;
        logger?.warn(
          { kind, jobId: failed.id, attempt: failed.attempt, final, error: error.message },
          final ? 'job failed for good' : 'job attempt failed',
        );
        try {
          (processOptions.onFailed as ProcessOptions<unknown>['onFailed'])?.(
            failed,
            recorded?.original ?? error,
            final,
          );
        } catch (callbackError) {
          logger?.error({ err: callbackError, jobId: failed.id }, 'onFailed threw');
        }
      });
      workers.push(worker);
    },

    async deadLetters(kind, limit = DEFAULT_DEAD_LETTER_LIMIT) {
      const kinds = kind === undefined ? [...queues.keys()] : [kind];
      const letters: DeadLetter[] = [];
      for (const name of kinds) {
        const jobs = await queueFor(name).getFailed(0, limit - 1);
        for (const job of jobs as Job<BullJobData>[]) {
          letters.push({
            id: `${name}:${job.id}`,
            kind: name,
            payload: job.data.payload,
            attempts: job.attemptsMade + job.stalledCounter,
            error: job.failedReason ?? null,
            createdAt: new Date(job.timestamp),
            failedAt: job.finishedOn === undefined ? null : new Date(job.finishedOn),
          });
        }
      }
      letters.sort((a, b) => (b.failedAt?.getTime() ?? 0) - (a.failedAt?.getTime() ?? 0));
      return letters.slice(0, limit);
    },

    async requeue(id) {
      const job = await findJob(id);
      if (!job || (await job.getState()) !== 'failed') return false;
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      return true;
    },

    async counts() {
      const total: JobCounts = { waiting: 0, active: 0, delayed: 0, failed: 0, completed: 0 };
      for (const queue of queues.values()) {
        const counts = await queue.getJobCounts(
          'wait',
          'prioritized',
          'active',
          'delayed',
          'failed',
          'completed',
        );
        total.waiting += (counts.wait ?? 0) + (counts.prioritized ?? 0);
        total.active += counts.active ?? 0;
        total.delayed += counts.delayed ?? 0;
        total.failed += counts.failed ?? 0;
        total.completed += counts.completed ?? 0;
      }
      return total;
    },

    async hasPending(kind, jobId) {
      const job = await queueFor(kind).getJob(jobId);
      return job !== undefined && PENDING_BULL_STATES.has(await job.getState());
    },

    async close(closeOptions = {}) {
      if (closed) return;
      closed = true;
      const drainMs = closeOptions.drainMs ?? DEFAULT_DRAIN_MS;
      // Stop fetching, let running jobs finish for up to drainMs, then abort the rest (put back unconsumed).
      await Promise.all(workers.map((worker) => worker.pause(true)));
      if (!(await settledWithin(running, drainMs))) {
        shutdown.abort(new ShutdownError());
        await settledWithin(running, 1000);
      }
      await Promise.allSettled(workers.map((worker) => worker.close()));
      await Promise.allSettled([...queues.values()].map((queue) => queue.close()));
    },
  };
}
