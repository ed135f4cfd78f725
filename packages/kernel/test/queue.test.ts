import { randomUUID } from 'node:crypto';
import { Worker } from 'bullmq';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../src/db.js';
import {
  bullConnectionOptions,
  createBullJobQueue,
  createSqlJobQueue,
  FatalJobError,
  type JobInfo,
  type JobQueue,
  jobTableSql,
  RetryableJobError,
} from '../src/queue.js';
import { connectRedis, waitForRedis } from '../src/redis.js';
import { testDatabaseUrl, testRedisUrl } from '../src/testing.js';

const databaseUrl = await testDatabaseUrl();
const redisUrl = await testRedisUrl();

/** A fresh, empty queue namespace (its own table or key prefix) of one backend. */
interface QueueSpace {
  open(options?: { pollMs?: number; leaseMs?: number }): JobQueue;
  /** takes the next job of `kind` as a worker would, then vanishes without finishing or renewing it */
  crash(kind: string): Promise<void>;
}

interface Backend {
  name: string;
  setup(): Promise<void>;
  fresh(): Promise<QueueSpace>;
  teardown(): Promise<void>;
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function sqlBackend(name: string, dialect: 'pglite' | 'postgres'): Backend {
  let database: Database<unknown> | undefined;
  let schema: string | undefined;
  let tables = 0;
  return {
    name,
    async setup() {
      if (dialect === 'pglite') {
        database = await openDatabase({});
        return;
      }
      schema = `queue_test_${randomUUID().replaceAll('-', '')}`;
      const admin = new pg.Client({ connectionString: databaseUrl as string });
      await admin.connect();
      await admin.query(`create schema ${schema}`);
      await admin.end();
      const separator = (databaseUrl as string).includes('?') ? '&' : '?';
      const url = `${databaseUrl}${separator}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
      database = await openDatabase({ url, poolSize: 8 });
    },
    async fresh() {
      const db = database as Database<unknown>;
      const table = `jobs_${++tables}`;
      await sql.raw(jobTableSql(table)).execute(db.kysely);
      return {
        open: (options = {}) =>
          createSqlJobQueue(db.kysely, {
            table,
            dialect,
            pollMs: options.pollMs ?? 20,
            leaseMs: options.leaseMs,
          }),
        async crash(kind) {
          // What a worker's claim leaves behind when its process dies right after: running, a short lease.
          const { rows } = await sql`
            update ${sql.table(table)}
            set state = 'running', attempts = attempts + 1, lease_until = now() + interval '150 milliseconds'
            where id = (select id from ${sql.table(table)} where kind = ${kind} and state = 'queued'
                        order by priority desc, run_at, id limit 1)
            returning id`.execute(db.kysely);
          expect(rows).toHaveLength(1);
        },
      };
    },
    async teardown() {
      await database?.close();
      if (schema === undefined) return;
      const admin = new pg.Client({ connectionString: databaseUrl as string });
      await admin.connect();
      await admin.query(`drop schema ${schema} cascade`);
      await admin.end();
    },
  };
}

function bullBackend(): Backend {
  const prefixes: string[] = [];
  const crashed: Worker[] = [];
  return {
    name: 'BullMQ',
    async setup() {},
    async fresh() {
      const prefix = `test-queue-${randomUUID()}`;
      prefixes.push(prefix);
      return {
        open: (options = {}) =>
          createBullJobQueue(redisUrl as string, { prefix, leaseMs: options.leaseMs ?? 300 }),
        async crash(kind) {
          const worker = new Worker(kind, null, {
            connection: bullConnectionOptions(redisUrl as string),
            prefix,
            lockDuration: 150,
          });
          crashed.push(worker);
          const job = await worker.getNextJob(randomUUID());
          expect(job).toBeDefined();
        },
      };
    },
    async teardown() {
      await Promise.all(crashed.map((worker) => worker.close(true)));
      const redis = connectRedis(redisUrl as string, { commandTimeoutMs: 2000 });
      await waitForRedis(redis, 2000);
      for (const prefix of prefixes) {
        const keys = await redis.keys(`${prefix}:*`);
        if (keys.length > 0) await redis.del(...keys);
      }
      redis.disconnect();
    },
  };
}

const backends: Array<{ backend: Backend; available: boolean }> = [
  { backend: sqlBackend('SQL on PGlite', 'pglite'), available: true },
  { backend: sqlBackend('SQL on PostgreSQL', 'postgres'), available: databaseUrl !== null },
  { backend: bullBackend(), available: redisUrl !== null },
];

for (const { backend, available } of backends) {
  describe.skipIf(!available)(`job queue contract: ${backend.name}`, () => {
    const opened: JobQueue[] = [];
    let space: QueueSpace;
    const open = (options?: { pollMs?: number; leaseMs?: number }) => {
      const queue = space.open(options);
      opened.push(queue);
      return queue;
    };

    beforeAll(() => backend.setup());
    afterAll(async () => {
      await Promise.allSettled(opened.map((queue) => queue.close({ drainMs: 0 })));
      await backend.teardown();
    });

    it('runs a job once, with its payload, and counts it completed', async () => {
      space = await backend.fresh();
      const queue = open();
      const seen: Array<JobInfo<{ n: number }>> = [];
      const id = await queue.add('once', { n: 1 });
      expect(await queue.counts()).toMatchObject({ waiting: 1, active: 0, failed: 0 });
      queue.process<{ n: number }>(
        'once',
        async (job) => {
          seen.push({ id: job.id, kind: job.kind, payload: job.payload, attempt: job.attempt });
        },
        { concurrency: 2, timeoutMs: 5000 },
      );
      await until(async () => (await queue.counts()).completed === 1);
      await sleep(100);
      expect(seen).toEqual([{ id, kind: 'once', payload: { n: 1 }, attempt: 1 }]);
      expect(await queue.counts()).toEqual({ waiting: 0, active: 0, delayed: 0, failed: 0, completed: 1 });
    });

    it('retries a failing job after the backoff and then succeeds', async () => {
      space = await backend.fresh();
      const queue = open();
      const attempts: number[] = [];
      const starts: number[] = [];
      const failures: Array<[number, string, boolean]> = [];
      const backoffCalls: number[] = [];
      queue.process<{ n: number }>(
        'flaky',
        async (job) => {
          attempts.push(job.attempt);
          starts.push(Date.now());
          if (job.attempt === 1) throw new RetryableJobError('provider 503');
          if (job.attempt === 2) throw new Error('socket hang up');
        },
        {
          concurrency: 1,
          timeoutMs: 5000,
          maxAttempts: 3,
          backoffMs: (attempt) => {
            backoffCalls.push(attempt);
            return attempt === 1 ? 300 : 20;
          },
          onFailed: (job, error, final) =>
            failures.push([job.attempt, error instanceof Error ? error.message : '', final]),
        },
      );
      await queue.add('flaky', { n: 2 });
      await until(() => attempts.length === 3);
      await until(async () => (await queue.counts()).completed === 1);
      expect(attempts).toEqual([1, 2, 3]);
      expect(backoffCalls).toEqual([1, 2]);
      expect(failures).toEqual([
        [1, 'provider 503', false],
        [2, 'socket hang up', false],
      ]);
      expect((starts[1] ?? 0) - (starts[0] ?? 0)).toBeGreaterThanOrEqual(280);
      expect(await queue.deadLetters()).toEqual([]);
    });

    it('dead-letters a job after maxAttempts (or at once when fatal) and requeues it', async () => {
      space = await backend.fresh();
      const queue = open();
      let failing = true;
      const finals: string[] = [];
      const runs: Array<[number, number]> = [];
      queue.process<{ n: number }>(
        'doomed',
        async (job) => {
          runs.push([job.payload.n, job.attempt]);
          if (job.payload.n === 2) throw new FatalJobError('Encrypted PDF');
          if (failing) throw new Error(`boom ${job.attempt}`);
        },
        {
          concurrency: 1,
          timeoutMs: 5000,
          maxAttempts: 2,
          backoffMs: () => 10,
          onFailed: (job, _error, final) => {
            if (final) finals.push(job.id);
          },
        },
      );
      const first = await queue.add('doomed', { n: 1 });
      const fatal = await queue.add('doomed', { n: 2 });
      await until(() => finals.length === 2);
      await until(async () => (await queue.counts()).failed === 2);
      expect(runs.filter(([n]) => n === 1)).toEqual([
        [1, 1],
        [1, 2],
      ]);
      expect(runs.filter(([n]) => n === 2)).toEqual([[2, 1]]);
      const letters = await queue.deadLetters('doomed');
      expect(letters.map((letter) => letter.id).sort()).toEqual([first, fatal].sort());
      const letter = letters.find((entry) => entry.id === first);
      expect(letter).toMatchObject({ kind: 'doomed', payload: { n: 1 }, attempts: 2, error: 'boom 2' });
      expect(letter?.createdAt).toBeInstanceOf(Date);
      expect(letter?.failedAt).toBeInstanceOf(Date);
      expect(letters.find((entry) => entry.id === fatal)).toMatchObject({
        attempts: 1,
        error: 'Encrypted PDF',
      });
      expect(await queue.deadLetters('other-kind')).toEqual([]);

      failing = false;
      expect(await queue.requeue(first)).toBe(true);
      await until(async () => (await queue.counts()).completed === 1);
      expect(runs.at(-1)).toEqual([1, 1]); // fresh attempts after the requeue
      expect((await queue.deadLetters()).map((entry) => entry.id)).toEqual([fatal]);
      expect(await queue.requeue(first)).toBe(false); // no longer a dead letter
      expect(await queue.requeue('999999')).toBe(false);
      expect(await queue.counts()).toMatchObject({ failed: 1, completed: 1, waiting: 0, active: 0 });
    });

    it('aborts the signal at the timeout and counts it as a failed attempt', async () => {
      space = await backend.fresh();
      const queue = open();
      const reasons: unknown[] = [];
      const errors: string[] = [];
      let finished = false;
      queue.process<{ n: number }>(
        'slow',
        async (job) => {
          if (job.attempt === 1) {
            await new Promise<void>((resolve) => job.signal.addEventListener('abort', () => resolve()));
            reasons.push(job.signal.reason);
            return; // a handler that notices the abort and returns still has its attempt failed
          }
          finished = true;
        },
        {
          concurrency: 1,
          timeoutMs: 150,
          maxAttempts: 2,
          backoffMs: () => 10,
          onFailed: (_job, error) => errors.push(error instanceof Error ? error.message : ''),
        },
      );
      await queue.add('slow', { n: 1 });
      await until(() => finished);
      expect(errors).toEqual(['Job timed out after 150 ms']);
      expect(reasons).toHaveLength(1);
      expect((reasons[0] as Error).name).toBe('JobTimeoutError');
      await until(async () => (await queue.counts()).completed === 1);
    });

    it('runs higher priorities first, then in due order, and holds delayed jobs back', async () => {
      space = await backend.fresh();
      const queue = open();
      const order: string[] = [];
      const added = Date.now();
      await queue.add('ranked', { name: 'delayed-urgent' }, { priority: 100, delayMs: 400 });
      await queue.add('ranked', { name: 'plain-1' });
      await queue.add('ranked', { name: 'high' }, { priority: 10 });
      await queue.add('ranked', { name: 'plain-2' });
      await queue.add('ranked', { name: 'medium' }, { priority: 5 });
      await queue.add('ranked', { name: 'low' }, { priority: -1 });
      expect(await queue.counts()).toMatchObject({ waiting: 5, delayed: 1 });
      let delayedAt = 0;
      queue.process<{ name: string }>(
        'ranked',
        async (job) => {
          order.push(job.payload.name);
          if (job.payload.name === 'delayed-urgent') delayedAt = Date.now();
        },
        { concurrency: 1, timeoutMs: 5000 },
      );
      await until(() => order.length === 6);
      expect(order).toEqual(['high', 'medium', 'plain-1', 'plain-2', 'low', 'delayed-urgent']);
      expect(delayedAt - added).toBeGreaterThanOrEqual(380);
    });

    it('takes over a job whose worker vanished once its lease expires', async () => {
      space = await backend.fresh();
      const queue = open({ leaseMs: 300 });
      const jobId = await queue.add('orphan', { n: 1 }, { jobId: 'doc-1' });
      await space.crash('orphan');
      expect(await queue.hasPending('orphan', 'doc-1')).toBe(true);
      const attempts: number[] = [];
      queue.process<{ n: number }>(
        'orphan',
        async (job) => {
          expect(job.id).toBe(jobId);
          attempts.push(job.attempt);
        },
        { concurrency: 1, timeoutMs: 5000 },
      );
      await until(() => attempts.length === 1, 5000);
      expect(attempts).toEqual([2]); // the lost run counted as the first attempt
      await until(async () => !(await queue.hasPending('orphan', 'doc-1')));
    });

    it('keeps one pending job per jobId and reports it pending until done', async () => {
      space = await backend.fresh();
      const queue = open();
      const first = await queue.add('keyed', { n: 1 }, { jobId: 'doc-7' });
      expect(await queue.add('keyed', { n: 2 }, { jobId: 'doc-7' })).toBe(first);
      expect(await queue.hasPending('keyed', 'doc-7')).toBe(true);
      expect(await queue.hasPending('keyed', 'doc-8')).toBe(false);
      expect(await queue.hasPending('other', 'doc-7')).toBe(false);
      const payloads: number[] = [];
      queue.process<{ n: number }>(
        'keyed',
        async (job) => {
          payloads.push(job.payload.n);
        },
        { concurrency: 1, timeoutMs: 5000 },
      );
      await until(async () => (await queue.counts()).completed === 1);
      expect(payloads).toEqual([1]);
      expect(await queue.hasPending('keyed', 'doc-7')).toBe(false);
      await queue.add('keyed', { n: 3 }, { jobId: 'doc-7' }); // done: a new job is welcome
      await until(() => payloads.length === 2);
      expect(payloads).toEqual([1, 3]);
    });

    it('close drains running jobs; a job still running at drainMs goes back to the queue', async () => {
      space = await backend.fresh();
      const queue = open({ pollMs: 5000 });
      const finished: number[] = [];
      const started: number[] = [];
      queue.process<{ n: number; ms: number }>(
        'drain',
        async (job) => {
          started.push(job.payload.n);
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, job.payload.ms);
            job.signal.addEventListener('abort', () => {
              clearTimeout(timer);
              resolve();
            });
          });
          if (!job.signal.aborted) finished.push(job.payload.n);
        },
        { concurrency: 2, timeoutMs: 10_000 },
      );
      // A long poll interval: these run at once only because an add wakes the consumer.
      await queue.add('drain', { n: 1, ms: 200 });
      await queue.add('drain', { n: 2, ms: 200 });
      await until(() => started.length === 2, 1000);
      await queue.close({ drainMs: 3000 });
      expect(finished.sort()).toEqual([1, 2]);

      const second = open();
      second.process<{ n: number; ms: number }>(
        'drain',
        async (job) => {
          started.push(job.payload.n);
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, job.payload.ms);
            job.signal.addEventListener('abort', () => {
              clearTimeout(timer);
              resolve();
            });
          });
        },
        { concurrency: 1, timeoutMs: 10_000 },
      );
      await second.add('drain', { n: 3, ms: 60_000 });
      await until(() => started.includes(3));
      const closing = Date.now();
      await second.close({ drainMs: 100 });
      expect(Date.now() - closing).toBeLessThan(3000);

      const third = open();
      const resumed: JobInfo<{ n: number }>[] = [];
      third.process<{ n: number }>(
        'drain',
        async (job) => {
          resumed.push({ id: job.id, kind: job.kind, payload: job.payload, attempt: job.attempt });
        },
        { concurrency: 1, timeoutMs: 5000 },
      );
      await until(() => resumed.length === 1);
      expect(resumed[0]?.payload.n).toBe(3);
      expect(resumed[0]?.attempt).toBe(1); // the interrupted run is not counted against the job
      await third.close();
    });
  });
}

describe.skipIf(databaseUrl === null)('SQL queue on PostgreSQL with several processes', () => {
  it('runs each job exactly once across two pools claiming concurrently', async () => {
    const backend = sqlBackend('two pools', 'postgres');
    await backend.setup();
    try {
      const space = await backend.fresh();
      const a = space.open();
      const b = space.open();
      const runs = new Map<number, number>();
      const handler = async (job: { payload: { n: number } }) => {
        runs.set(job.payload.n, (runs.get(job.payload.n) ?? 0) + 1);
        await sleep(5);
      };
      for (let n = 0; n < 30; n++) await a.add('shared', { n });
      a.process('shared', handler, { concurrency: 3, timeoutMs: 5000 });
      b.process('shared', handler, { concurrency: 3, timeoutMs: 5000 });
      await until(async () => (await a.counts()).completed === 30);
      expect([...runs.values()].every((count) => count === 1)).toBe(true);
      expect(runs.size).toBe(30);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await backend.teardown();
    }
  });
});
