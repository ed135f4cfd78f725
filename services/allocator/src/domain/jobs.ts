// Jobs (spec §3.5): the `job` row is the source of truth; the queue (in-process priority queue, or BullMQ on
// Redis) only carries job ids. WORKER_THREADS executors take the highest-priority due job, process its assets
// in order, classify failures (permanent → the asset fails; transient → the attempt fails and is retried with
// backoff, then dead-lettered), and a recovery loop re-enqueues jobs whose executor vanished.

import type { Logger } from '@quintet/kernel/log';
import { namedLogger } from '@quintet/kernel/log';
import type { JobQueue } from '@quintet/kernel/queue';
import { createBullJobQueue } from '@quintet/kernel/queue';
import type { ThreadPool } from '@quintet/kernel/thread-pool';
import { type Selectable, sql } from 'kysely';
import type { AllocatorRuntime, JobDispatcher } from '../runtime.js';
import type { AssetStatus, JobTable } from './database.js';
import { TransientProcessingError } from './errors.js';
import { recordLineage } from './lineage.js';
import { JOB_TYPES } from './metrics.js';
import { type AnalysisResult, type AnalysisTask, createAnalysisPool } from './pipeline/analysis.js';
import { notifyJobTerminal } from './pipeline/notify.js';
import { AssetProcessor } from './pipeline/process-assets.js';

const RECOVERY_INTERVAL_MS = 30_000;
const QUEUE_KIND = 'allocator-job';

// ---------------------------------------------------------------------------------------------------------
// In-process priority queue

interface QueuedEntry {
  jobId: string;
  priority: number;
  dueAt: number;
  seq: number;
}

/** Job ids by priority (higher first), then arrival; delayed entries wait until due. */
class InprocQueue {
  readonly #entries = new Map<string, QueuedEntry>();
  readonly #waiters: (() => void)[] = [];
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  get size(): number {
    return this.#entries.size;
  }

  has(jobId: string): boolean {
    return this.#entries.has(jobId);
  }

  push(jobId: string, priority: number, delayMs: number): void {
    const existing = this.#entries.get(jobId);
    const dueAt = Date.now() + Math.max(0, delayMs);
    if (existing !== undefined) {
      existing.priority = priority;
      existing.dueAt = Math.min(existing.dueAt, dueAt);
    } else this.#entries.set(jobId, { jobId, priority, dueAt, seq: this.#seq++ });
    this.#wake();
  }

  /** Resolves with the next due job id, or null once closed. */
  async take(): Promise<string | null> {
    for (;;) {
      if (this.#closed) return null;
      const now = Date.now();
      let best: QueuedEntry | undefined;
      let nextDue = Number.POSITIVE_INFINITY;
      for (const entry of this.#entries.values()) {
        if (entry.dueAt > now) {
          nextDue = Math.min(nextDue, entry.dueAt);
          continue;
        }
        if (
          best === undefined ||
          entry.priority > best.priority ||
          (entry.priority === best.priority && entry.seq < best.seq)
        )
          best = entry;
      }
      if (best !== undefined) {
        this.#entries.delete(best.jobId);
        return best.jobId;
      }
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        if (Number.isFinite(nextDue)) this.#arm(nextDue - now);
      });
    }
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#wake();
  }

  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#wake(), Math.max(1, ms));
    this.#timer.unref();
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

/** Redis commands wait for a reconnection forever; callers (ingest, /ready) need an answer. */
const REDIS_TIMEOUT_MS = 3000;

/** The Redis queue did not answer in time: the same 503 as a refused connection. */
export class QueueUnavailableError extends Error {
  override readonly name = 'QueueUnavailableError';
  readonly code = 'ECONNREFUSED';
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new QueueUnavailableError(`the Redis queue did not answer within ${ms} ms`)),
      ms,
    );
  });
  work.catch(() => {});
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** The queue entry of one attempt of a job on Redis. */
function bullKey(jobId: string, retryCount: number): string {
  return `${jobId}.${retryCount}`;
}

// ---------------------------------------------------------------------------------------------------------
// The runner

export interface WorkerStats {
  configured: number;
  alive: number;
  busy: number;
  restarts: number;
}

export interface QueueStats {
  backend: 'inproc' | 'redis';
  depth: number;
  processing: number;
  delayed: number;
  dead_letter: number;
}

type RuntimeWithoutJobs = Omit<AllocatorRuntime, 'jobs'>;

/** Why an attempt stopped early: the job's own timeout, or this process shutting down. */
class ShutdownAbort extends Error {
  override name = 'ShutdownAbort';
}

export class JobRunner {
  readonly runtime: AllocatorRuntime;
  readonly #logger: Logger;
  readonly #inproc: InprocQueue | null;
  readonly #bull: JobQueue | null;
  readonly #pool: ThreadPool<AnalysisTask, AnalysisResult>;
  readonly #processor: AssetProcessor;
  readonly #running = new Map<string, AbortController>();
  readonly #executors: Promise<void>[] = [];
  #restarts = 0;
  #started = false;
  #draining = false;
  #recoveryTimer: NodeJS.Timeout | undefined;
  #redisUp = true;

  private constructor(partial: RuntimeWithoutJobs) {
    const { config } = partial;
    this.#logger = namedLogger(partial.logger, 'allocator.worker');
    this.#inproc = config.queueBackend === 'inproc' ? new InprocQueue() : null;
    this.#bull =
      config.queueBackend === 'redis'
        ? createBullJobQueue(config.redisUrl, {
            prefix: config.redisQueuePrefix,
            logger: this.#logger,
            leaseMs: Math.min(config.jobLeaseMs, 30_000),
          })
        : null;
    const dispatcher: JobDispatcher = {
      backend: config.queueBackend,
      enqueue: (jobId, options = {}) =>
        this.enqueue(jobId, options.priority ?? 0, options.delayMs ?? 0, options.retryCount ?? 0),
      reachable: () => this.queueReachable(),
    };
    this.runtime = { ...partial, jobs: dispatcher };
    this.#pool = createAnalysisPool(config.workerThreads);
    this.#pool.on('exit', (_threadId, reason) => {
      if (reason === 'aborted' || reason === 'crashed' || reason === 'oom') {
        this.#restarts++;
        this.runtime.metrics.workerCrashes.inc();
      }
    });
    this.#processor = new AssetProcessor(this.runtime, this.#pool);
  }

  static async create(partial: RuntimeWithoutJobs): Promise<JobRunner> {
    return new JobRunner(partial);
  }

  /** The asset processor (its labeller and ffmpeg tools feed /health). */
  get processor(): AssetProcessor {
    return this.#processor;
  }

  get workerStats(): WorkerStats {
    const configured = this.runtime.config.workerThreads;
    return {
      configured,
      alive: this.#started && !this.#draining ? configured : 0,
      busy: this.#running.size,
      restarts: this.#restarts,
    };
  }

  /** Starts the executors and the recovery loop (recovery runs once at once). */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const { config } = this.runtime;
    if (this.#inproc !== null) {
      for (let index = 0; index < config.workerThreads; index++)
        this.#executors.push(this.#executorLoop(this.#inproc));
    } else if (this.#bull !== null) {
      this.#bull.process<{ jobId: string }>(QUEUE_KIND, async (job) => this.#runJob(job.payload.jobId), {
        concurrency: config.workerThreads,
        // The attempt enforces JOB_TIMEOUT_SECONDS itself; the queue's limit only backs it up.
        timeoutMs: config.jobTimeoutMs + 60_000,
        maxAttempts: 1,
      });
    }
    this.runtime.metrics.activeWorkers.set(config.workerThreads);
    await this.recover();
    this.#recoveryTimer = setInterval(() => {
      this.recover().catch((error: unknown) => this.#logger.warn({ err: error }, 'job recovery failed'));
    }, RECOVERY_INTERVAL_MS);
    this.#recoveryTimer.unref();
  }

  async enqueue(jobId: string, priority: number, delayMs: number, retryCount = 0): Promise<void> {
    if (this.#inproc !== null) {
      this.#inproc.push(jobId, priority, delayMs);
      return;
    }
    if (this.#bull === null) return;
    // One queue entry per attempt: the retry is added while the attempt that schedules it is still active.
    await withTimeout(
      this.#bull.add(
        QUEUE_KIND,
        { jobId },
        { jobId: bullKey(jobId, retryCount), priority, ...(delayMs > 0 ? { delayMs } : {}), attempts: 1 },
      ),
      REDIS_TIMEOUT_MS,
    );
  }

  async queueReachable(): Promise<boolean> {
    if (this.#bull === null) return true;
    try {
      await withTimeout(this.#bull.counts(), REDIS_TIMEOUT_MS);
      this.#redisUp = true;
    } catch {
      this.#redisUp = false;
    }
    return this.#redisUp;
  }

  /**
   * Re-enqueues jobs whose executor vanished (processing, lease expired) and queued jobs missing from the queue
   * (spec §3.5 "Recovery"); retry_count unchanged, lineage `job_recovered`.
   */
  async recover(): Promise<number> {
    const db = this.runtime.catalog;
    const expired = await db
      .updateTable('job')
      .set({ status: 'queued', lease_until: null, updated_at: sql`clock_timestamp()` as never })
      .where('status', '=', 'processing')
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', sql<Date>`now()`)]))
      .returning(['id', 'request_id'])
      .execute();
    const expiredIds = new Set(expired.map((row) => row.id));
    for (const row of expired)
      await recordLineage(db, {
        requestId: row.request_id,
        stage: 'job_recovered',
        detail: { job_id: row.id, reason: 'lease expired' },
      });
    const queued = await db
      .selectFrom('job')
      .select(['id', 'request_id', 'priority', 'next_retry_at', 'retry_count'])
      .where('status', '=', 'queued')
      .execute();
    let recovered = 0;
    for (const job of queued) {
      const missing =
        this.#inproc !== null
          ? !this.#inproc.has(job.id) && !this.#running.has(job.id)
          : !(await this.#bullHas(job.id, job.retry_count));
      if (!missing && !expiredIds.has(job.id)) continue;
      const delayMs = job.next_retry_at === null ? 0 : Math.max(0, job.next_retry_at.getTime() - Date.now());
      await this.enqueue(job.id, job.priority, delayMs, job.retry_count);
      if (!expiredIds.has(job.id))
        await recordLineage(db, {
          requestId: job.request_id,
          stage: 'job_recovered',
          detail: { job_id: job.id, reason: 'not in queue' },
        });
      recovered++;
    }
    if (recovered > 0) this.#logger.info({ recovered }, 'jobs re-enqueued by recovery');
    return recovered;
  }

  async #bullHas(jobId: string, retryCount: number): Promise<boolean> {
    if (this.#bull === null) return false;
    return this.#bull.hasPending(QUEUE_KIND, bullKey(jobId, retryCount));
  }

  /** Refreshes queue_depth, dead_letter_queue_depth and worker gauges (before each /metrics scrape). */
  async refreshGauges(): Promise<void> {
    const { metrics, catalog } = this.runtime;
    const rows = await catalog
      .selectFrom('job')
      .select(['job_type'])
      .select((eb) => [
        eb.fn.countAll<number>().filterWhere('status', '=', 'queued').as('queued'),
        eb.fn.countAll<number>().filterWhere('dead_letter', '=', true).as('dead'),
      ])
      .groupBy('job_type')
      .execute();
    for (const jobType of JOB_TYPES) {
      const row = rows.find((candidate) => candidate.job_type === jobType);
      metrics.queueDepth.set({ job_type: jobType }, Number(row?.queued ?? 0));
      metrics.deadLetterDepth.set({ job_type: jobType }, Number(row?.dead ?? 0));
    }
    const stats = this.workerStats;
    metrics.activeWorkers.set(stats.alive);
    metrics.busyWorkers.set(stats.busy);
  }

  async queueStats(): Promise<QueueStats> {
    const row = await this.runtime.catalog
      .selectFrom('job')
      .select((eb) => [
        eb.fn.countAll<number>().filterWhere('status', '=', 'queued').as('depth'),
        eb.fn.countAll<number>().filterWhere('status', '=', 'processing').as('processing'),
        eb.fn
          .countAll<number>()
          .filterWhere((w) => w.and([w('status', '=', 'queued'), w('next_retry_at', '>', sql<Date>`now()`)]))
          .as('delayed'),
        eb.fn.countAll<number>().filterWhere('dead_letter', '=', true).as('dead_letter'),
      ])
      .executeTakeFirstOrThrow();
    return {
      backend: this.runtime.config.queueBackend,
      depth: Number(row.depth),
      processing: Number(row.processing),
      delayed: Number(row.delayed),
      dead_letter: Number(row.dead_letter),
    };
  }

  /** Stops taking jobs and waits up to `timeoutMs` for running attempts; the rest are aborted and put back. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    clearInterval(this.#recoveryTimer);
    this.#inproc?.close();
    const deadline = Date.now() + timeoutMs;
    while (this.#running.size > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    for (const controller of this.#running.values()) controller.abort(new ShutdownAbort('shutting down'));
    const settleBy = Date.now() + 5000;
    while (this.#running.size > 0 && Date.now() < settleBy)
      await new Promise((resolve) => setTimeout(resolve, 20));
    await Promise.all(this.#executors);
  }

  async close(): Promise<void> {
    await this.drain(0);
    await this.#bull?.close({ drainMs: 0 });
    await this.#pool.close();
    await this.#processor.close();
  }

  async #executorLoop(queue: InprocQueue): Promise<void> {
    for (;;) {
      const jobId = await queue.take();
      if (jobId === null || this.#draining) {
        if (jobId !== null) queue.push(jobId, 0, 0);
        return;
      }
      await this.#runJob(jobId).catch((error: unknown) =>
        this.#logger.error({ err: error, job_id: jobId }, 'job attempt crashed'),
      );
    }
  }

  /** Claims the job (queued and due) and runs one attempt. */
  async #runJob(jobId: string): Promise<void> {
    const db = this.runtime.catalog;
    const { config } = this.runtime;
    const claimed = await db
      .updateTable('job')
      .set({
        status: 'processing',
        started_at: sql`coalesce(started_at, clock_timestamp())` as never,
        lease_until: sql`clock_timestamp() + ${`${config.jobLeaseMs} milliseconds`}::interval` as never,
        updated_at: sql`clock_timestamp()` as never,
      })
      .where('id', '=', jobId)
      .where('status', '=', 'queued')
      .where((eb) =>
        eb.or([eb('next_retry_at', 'is', null), eb('next_retry_at', '<=', sql<Date>`clock_timestamp()`)]),
      )
      .returningAll()
      .executeTakeFirst();
    if (claimed === undefined) {
      // Not due yet (a retry enqueued early, e.g. by recovery) → back on the queue for the remaining delay.
      const row = await db
        .selectFrom('job')
        .select(['status', 'priority', 'next_retry_at', 'retry_count'])
        .where('id', '=', jobId)
        .executeTakeFirst();
      if (row?.status === 'queued' && row.next_retry_at !== null)
        await this.enqueue(
          jobId,
          row.priority,
          Math.max(0, row.next_retry_at.getTime() - Date.now()),
          row.retry_count,
        );
      return;
    }
    await this.#attempt(claimed);
  }

  async #attempt(job: JobRowSelected): Promise<void> {
    const { config, metrics, catalog: db } = this.runtime;
    const attempt = job.retry_count + 1;
    const log = this.#logger.child({ job_id: job.id, request_id: job.request_id });
    const controller = new AbortController();
    this.#running.set(job.id, controller);
    const timeout = setTimeout(
      () =>
        controller.abort(new TransientProcessingError(`job timed out after ${config.jobTimeoutMs / 1000} s`)),
      config.jobTimeoutMs,
    );
    const leaseTimer = setInterval(
      () => {
        db.updateTable('job')
          .set({
            lease_until: sql`clock_timestamp() + ${`${config.jobLeaseMs} milliseconds`}::interval` as never,
          })
          .where('id', '=', job.id)
          .where('status', '=', 'processing')
          .execute()
          .catch(() => {});
      },
      Math.max(1000, Math.floor(config.jobLeaseMs / 3)),
    );
    leaseTimer.unref();
    metrics.busyWorkers.set(this.#running.size);
    const started = performance.now();
    log.info({ job_type: job.job_type, attempt }, 'Job started');
    let transient: Error | null = null;
    let shutdown = false;
    try {
      if (config.faultInjectFailOwner !== undefined && job.owner === config.faultInjectFailOwner)
        throw new TransientProcessingError('injected fault');
      await this.#processor.processJob(job, controller.signal);
    } catch (error) {
      if (controller.signal.reason instanceof ShutdownAbort) shutdown = true;
      else if (controller.signal.aborted && controller.signal.reason instanceof Error)
        transient = controller.signal.reason;
      else transient = error instanceof Error ? error : new Error(String(error));
    } finally {
      clearTimeout(timeout);
      clearInterval(leaseTimer);
      this.#running.delete(job.id);
      metrics.busyWorkers.set(this.#running.size);
    }
    const durationMs = Math.round(performance.now() - started);
    metrics.jobDuration.observe({ job_type: job.job_type }, durationMs / 1000);
    if (shutdown) {
      // Not the job's fault: back to queued without counting an attempt; the next start picks it up.
      await db
        .updateTable('job')
        .set({ status: 'queued', lease_until: null, updated_at: sql`clock_timestamp()` as never })
        .where('id', '=', job.id)
        .execute();
      await this.#resetProcessingAssets(job.id);
      log.info(
        { job_type: job.job_type, attempt, duration_ms: durationMs },
        'Job interrupted by shutdown, left queued',
      );
      return;
    }
    await this.#finishAttempt(job, attempt, transient, durationMs, log);
  }

  async #resetProcessingAssets(jobId: string): Promise<void> {
    await this.runtime.catalog
      .updateTable('asset')
      .set({ status: 'queued', updated_at: sql`clock_timestamp()` as never })
      .where('job_id', '=', jobId)
      .where('status', '=', 'processing')
      .execute();
  }

  async #finishAttempt(
    job: JobRowSelected,
    attempt: number,
    transient: Error | null,
    durationMs: number,
    log: Logger,
  ): Promise<void> {
    const { config, metrics, catalog: db } = this.runtime;
    const statuses = await db
      .selectFrom('asset')
      .select(['id', 'status'])
      .where('job_id', '=', job.id)
      .execute();
    const failedAssets = statuses.filter((asset) => asset.status === 'failed').length;
    if (transient !== null) {
      const retryCount = job.retry_count + 1;
      await this.#resetProcessingAssets(job.id);
      if (retryCount < job.max_retries) {
        const delayMs = config.jobRetryBaseMs * 2 ** (retryCount - 1);
        await db
          .updateTable('job')
          .set({
            status: 'queued',
            retry_count: retryCount,
            next_retry_at: new Date(Date.now() + delayMs),
            lease_until: null,
            error_message: transient.message,
            updated_at: sql`clock_timestamp()` as never,
          })
          .where('id', '=', job.id)
          .execute();
        await recordLineage(db, {
          requestId: job.request_id,
          stage: 'job_retry_scheduled',
          success: false,
          errorMessage: transient.message,
          detail: { job_id: job.id, retry_count: retryCount, delay_ms: delayMs },
        });
        metrics.jobsProcessed.inc({ job_type: job.job_type, status: 'retry' });
        log.warn(
          {
            job_type: job.job_type,
            attempt,
            duration_ms: durationMs,
            error: transient.message,
            retry_in_ms: delayMs,
          },
          'Job failed',
        );
        await this.enqueue(job.id, job.priority, delayMs, retryCount);
        return;
      }
      await this.#deadLetter(job, retryCount, transient.message);
      metrics.jobsProcessed.inc({ job_type: job.job_type, status: 'failure' });
      log.error(
        {
          job_type: job.job_type,
          attempt,
          duration_ms: durationMs,
          error: transient.message,
          dead_letter: true,
        },
        'Job failed',
      );
      await notifyJobTerminal(this.runtime, job.id, 'job.failed');
      return;
    }
    if (failedAssets > 0) {
      const firstError = await db
        .selectFrom('asset')
        .select('error_message')
        .where('job_id', '=', job.id)
        .where('status', '=', 'failed')
        .orderBy('position')
        .executeTakeFirst();
      const message = firstError?.error_message ?? 'asset processing failed';
      await this.#deadLetter(job, job.retry_count, message);
      metrics.jobsProcessed.inc({ job_type: job.job_type, status: 'failure' });
      log.error(
        { job_type: job.job_type, attempt, duration_ms: durationMs, error: message, dead_letter: true },
        'Job failed',
      );
      await notifyJobTerminal(this.runtime, job.id, 'job.failed');
      return;
    }
    await db
      .updateTable('job')
      .set({
        status: 'done',
        completed_at: sql`clock_timestamp()` as never,
        lease_until: null,
        next_retry_at: null,
        error_message: null,
        updated_at: sql`clock_timestamp()` as never,
      })
      .where('id', '=', job.id)
      .execute();
    metrics.jobsProcessed.inc({ job_type: job.job_type, status: 'success' });
    log.info({ job_type: job.job_type, attempt, duration_ms: durationMs }, 'Job completed');
    await notifyJobTerminal(this.runtime, job.id, 'job.completed');
  }

  /** status failed, dead_letter true; its non-terminal assets fail with the job's error. */
  async #deadLetter(job: JobRowSelected, retryCount: number, message: string): Promise<void> {
    await this.runtime.catalog.transaction().execute(async (tx) => {
      await tx
        .updateTable('job')
        .set({
          status: 'failed',
          dead_letter: true,
          dead_lettered_at: sql`clock_timestamp()` as never,
          discarded_at: null,
          retry_count: retryCount,
          completed_at: sql`clock_timestamp()` as never,
          lease_until: null,
          next_retry_at: null,
          error_message: message,
          updated_at: sql`clock_timestamp()` as never,
        })
        .where('id', '=', job.id)
        .execute();
      const open: AssetStatus[] = ['queued', 'processing'];
      await tx
        .updateTable('asset')
        .set({ status: 'failed', error_message: message, updated_at: sql`clock_timestamp()` as never })
        .where('job_id', '=', job.id)
        .where('status', 'in', open)
        .execute();
    });
  }
}

/** A job row as selected. */
export type JobRowSelected = Selectable<JobTable>;
