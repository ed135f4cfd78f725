import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  JobAbortedError,
  JobFailedError,
  JobTimeoutError,
  type KillReason,
  PoolClosedError,
  WorkerCrashedError,
  WorkerPool,
  type WorkerPoolOptions,
} from '../src/workers.js';

const here = dirname(fileURLToPath(import.meta.url));
const kernelDir = join(here, '..');
const script = join(here, 'fixtures', 'pool-worker.mjs');
const brokenScript = join(here, 'fixtures', 'broken-worker.mjs');

// The fixtures import the compiled modules (children run compiled JS, as in production); rebuild when a
// source is newer so the tests never exercise a stale copy.
beforeAll(() => {
  const stale = ['worker-child', 'workers'].some((name) => {
    const source = statSync(join(kernelDir, 'src', `${name}.ts`)).mtimeMs;
    try {
      return statSync(join(kernelDir, 'dist', `${name}.js`)).mtimeMs < source;
    } catch {
      return true;
    }
  });
  if (stale) {
    execFileSync(join(kernelDir, '..', '..', 'node_modules', '.bin', 'tsc'), ['-b', kernelDir], {
      stdio: 'inherit',
    });
  }
});

const scratch = mkdtempSync(join(tmpdir(), 'kernel-workers-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const pools: WorkerPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close({ graceMs: 0 })));
});

function makePool(options: Partial<WorkerPoolOptions> & Pick<WorkerPoolOptions, 'mode'>): WorkerPool {
  const pool = new WorkerPool({ script, slots: 1, killConfirmTimeoutMs: 2000, ...options });
  pools.push(pool);
  return pool;
}

/** True while the process exists and is not a zombie waiting for its parent. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean, timeoutMs = 2000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return condition();
}

function recordKills(pool: WorkerPool): { reason: KillReason; pid: number }[] {
  const kills: { reason: KillReason; pid: number }[] = [];
  pool.on('kill', (reason, pid) => kills.push({ reason, pid }));
  return kills;
}

function recordSpawns(pool: WorkerPool): number[] {
  const pids: number[] = [];
  pool.on('spawn', (pid) => pids.push(pid));
  return pids;
}

interface Echo {
  value: unknown;
  pid: number;
  jobsServed: number;
}

describe('spawn mode', () => {
  it('runs each job in a fresh process that is gone shortly after, keeping warm ones ready', async () => {
    const pool = makePool({ mode: 'spawn', slots: 2, warm: 2 });
    await pool.start();
    expect(pool.idleCount).toBe(2);

    const pids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const run = await pool.run<Echo>({ op: 'echo', value: i }, { timeoutMs: 5000 });
      expect(run.result).toEqual({ value: i, pid: run.pid, jobsServed: 1 });
      expect(run.waitedMs).toBeGreaterThanOrEqual(0);
      pids.push(run.pid);
    }
    expect(new Set(pids).size).toBe(3);
    expect(await waitUntil(() => pids.every((pid) => !isAlive(pid)))).toBe(true);
    expect(await waitUntil(() => pool.idleCount === 2)).toBe(true);
  });

  it('on timeout kills the whole process group, reports it confirmed, and the next job succeeds', async () => {
    const pool = makePool({ mode: 'spawn', slots: 1, warm: 1 });
    const kills = recordKills(pool);
    await pool.start();
    const pidFile = join(scratch, 'grandchild.pid');

    const started = performance.now();
    const error = await pool.run({ op: 'grandchild', pidFile }, { timeoutMs: 400 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobTimeoutError);
    const timeout = error as JobTimeoutError;
    expect(timeout.terminated).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(395);
    expect(timeout.pid).not.toBeNull();
    expect(isAlive(timeout.pid as number)).toBe(false);
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    expect(await waitUntil(() => !isAlive(grandchild))).toBe(true);
    expect(kills).toEqual([{ reason: 'timeout', pid: timeout.pid }]);

    const next = await pool.run<Echo>({ op: 'echo', value: 'after' }, { timeoutMs: 5000 });
    expect(next.result.value).toBe('after');
    expect(next.pid).not.toBe(timeout.pid);
  });

  it('reports a crash, starts a replacement, and keeps serving', async () => {
    const pool = makePool({ mode: 'spawn', slots: 1 });
    const kills = recordKills(pool);
    await pool.start();
    const error = await pool.run({ op: 'crash', code: 7 }, { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerCrashedError);
    expect(error).toMatchObject({ exitCode: 7, signal: null, reason: 'crashed' });
    expect(kills).toEqual([{ reason: 'crashed', pid: (error as WorkerCrashedError).pid }]);
    const next = await pool.run<Echo>({ op: 'echo', value: 1 }, { timeoutMs: 5000 });
    expect(next.result.value).toBe(1);
  });

  it('tells a heap out-of-memory death apart from other crashes', async () => {
    const pool = makePool({ mode: 'spawn', slots: 1, maxMemoryMb: 32, output: 'ignore' });
    await pool.start();
    const error = await pool.run({ op: 'oom' }, { timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerCrashedError);
    expect((error as WorkerCrashedError).reason).toBe('oom');
    const next = await pool.run<Echo>({ op: 'echo', value: 2 }, { timeoutMs: 5000 });
    expect(next.result.value).toBe(2);
  });

  it('passes a failed job back with the data the child serialised', async () => {
    const pool = makePool({ mode: 'spawn', slots: 1 });
    await pool.start();
    const error = await pool.run({ op: 'fail' }, { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobFailedError);
    expect((error as JobFailedError).message).toBe('bad input');
    expect((error as JobFailedError).data).toEqual({
      name: 'Error',
      message: 'bad input',
      status: 400,
      errorCode: 'INVALID',
      detail: { field: 'x' },
    });
  });

  it('gives children only the configured environment and PATH', async () => {
    process.env.KERNEL_TEST_PARENT_SECRET = 'do-not-leak';
    try {
      const pool = makePool({ mode: 'spawn', slots: 1, env: { WORKER_SETTING: 'on' } });
      await pool.start();
      const secret = await pool.run<{ value: string | null; keys: string[] }>(
        { op: 'env', name: 'KERNEL_TEST_PARENT_SECRET' },
        { timeoutMs: 5000 },
      );
      expect(secret.result.value).toBeNull();
      expect(secret.result.keys).toEqual(['PATH', 'WORKER_SETTING']);
      const setting = await pool.run<{ value: string | null }>(
        { op: 'env', name: 'WORKER_SETTING' },
        { timeoutMs: 5000 },
      );
      expect(setting.result.value).toBe('on');
    } finally {
      delete process.env.KERNEL_TEST_PARENT_SECRET;
    }
  });

  it('aborts a queued job (it leaves the queue) and a running one (its process is killed)', async () => {
    const pool = makePool({ mode: 'spawn', slots: 1 });
    const kills = recordKills(pool);
    await pool.start();

    const running = new AbortController();
    const first = pool
      .run({ op: 'hang' }, { timeoutMs: 10_000, signal: running.signal })
      .catch((e: unknown) => e);
    const queued = new AbortController();
    const second = pool
      .run({ op: 'echo' }, { timeoutMs: 10_000, signal: queued.signal })
      .catch((e: unknown) => e);
    await waitUntil(() => pool.busyCount === 1);

    queued.abort(new Error('client went away'));
    const queuedError = await second;
    expect(queuedError).toBeInstanceOf(JobAbortedError);
    expect((queuedError as JobAbortedError).pid).toBeNull();
    expect((queuedError as JobAbortedError).cause).toEqual(new Error('client went away'));

    running.abort();
    const runningError = await first;
    expect(runningError).toBeInstanceOf(JobAbortedError);
    const pid = (runningError as JobAbortedError).pid as number;
    expect(pid).toBeGreaterThan(0);
    expect(await waitUntil(() => !isAlive(pid))).toBe(true);
    expect(kills).toEqual([{ reason: 'aborted', pid }]);

    const next = await pool.run<Echo>({ op: 'echo', value: 3 }, { timeoutMs: 5000 });
    expect(next.result.value).toBe(3);
  });

  it('counts the wait for a slot in the timeout (no process reached: pid null)', async () => {
    const pool = makePool({ mode: 'spawn', slots: 1 });
    await pool.start();
    const blocker = pool.run({ op: 'sleep', ms: 600 }, { timeoutMs: 5000 });
    const error = await pool.run({ op: 'echo' }, { timeoutMs: 150 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobTimeoutError);
    expect(error).toMatchObject({ pid: null, terminated: true });
    await blocker;
  });

  it('rejects start() when the child script cannot load', async () => {
    const pool = makePool({ mode: 'spawn', slots: 1, script: brokenScript, output: 'ignore' });
    await expect(pool.start()).rejects.toBeInstanceOf(WorkerCrashedError);
  });
});

describe('cold mode', () => {
  it('starts a process per job and counts its start-up as wait', async () => {
    const pool = makePool({ mode: 'cold', slots: 2 });
    await pool.start();
    expect(pool.idleCount).toBe(0);
    const [a, b] = await Promise.all([
      pool.run<Echo>({ op: 'echo', value: 'a' }, { timeoutMs: 5000 }),
      pool.run<Echo>({ op: 'echo', value: 'b' }, { timeoutMs: 5000 }),
    ]);
    expect(a.pid).not.toBe(b.pid);
    expect(a.waitedMs).toBeGreaterThan(5);
    expect(await waitUntil(() => !isAlive(a.pid) && !isAlive(b.pid))).toBe(true);
    expect(pool.idleCount).toBe(0);
  });
});

describe('forkserver mode', () => {
  it('reuses a process and recycles it after maxJobsPerWorker', async () => {
    const pool = makePool({ mode: 'forkserver', slots: 1, maxJobsPerWorker: 3 });
    const kills = recordKills(pool);
    await pool.start();
    const runs: Echo[] = [];
    for (let i = 0; i < 4; i++)
      runs.push((await pool.run<Echo>({ op: 'echo', value: i }, { timeoutMs: 5000 })).result);
    expect(runs.map((r) => r.jobsServed)).toEqual([1, 2, 3, 1]);
    const [first, , third, fourth] = runs as [Echo, Echo, Echo, Echo];
    expect(third.pid).toBe(first.pid);
    expect(fourth.pid).not.toBe(first.pid);
    expect(kills).toEqual([{ reason: 'recycled', pid: first.pid }]);
    expect(await waitUntil(() => !isAlive(first.pid))).toBe(true);
  });

  it('recycles after a failed job and when memory passes the cap', async () => {
    const pool = makePool({ mode: 'forkserver', slots: 1, maxMemoryMb: 150 });
    const kills = recordKills(pool);
    await pool.start();
    const before = await pool.run<Echo>({ op: 'echo' }, { timeoutMs: 5000 });
    const failed = (await pool
      .run({ op: 'fail' }, { timeoutMs: 5000 })
      .catch((e: unknown) => e)) as JobFailedError;
    expect(failed).toBeInstanceOf(JobFailedError);
    expect(failed.pid).toBe(before.pid);
    const afterFailure = await pool.run<Echo>({ op: 'echo' }, { timeoutMs: 5000 });
    expect(afterFailure.pid).not.toBe(before.pid);

    const small = await pool.run({ op: 'grow', mb: 1 }, { timeoutMs: 5000 });
    expect(small.pid).toBe(afterFailure.pid);
    const big = await pool.run({ op: 'grow', mb: 200 }, { timeoutMs: 5000 });
    expect(big.pid).toBe(afterFailure.pid);
    const afterBig = await pool.run<Echo>({ op: 'echo' }, { timeoutMs: 5000 });
    expect(afterBig.pid).not.toBe(big.pid);
    expect(kills).toEqual([
      { reason: 'recycled', pid: before.pid },
      { reason: 'recycled', pid: big.pid },
    ]);
  });

  it('replaces a timed-out process, keeping one process per slot', async () => {
    const pool = makePool({ mode: 'forkserver', slots: 2 });
    await pool.start();
    const error = (await pool
      .run({ op: 'hang' }, { timeoutMs: 200 })
      .catch((e: unknown) => e)) as JobTimeoutError;
    expect(error).toBeInstanceOf(JobTimeoutError);
    expect(error.terminated).toBe(true);
    expect(await waitUntil(() => pool.idleCount === 2)).toBe(true);
    const next = await pool.run<Echo>({ op: 'echo', value: 'ok' }, { timeoutMs: 5000 });
    expect(next.pid).not.toBe(error.pid);
  });
});

describe('close()', () => {
  it('lets running jobs finish within the grace period and leaves no process behind', async () => {
    const pool = makePool({ mode: 'forkserver', slots: 2 });
    const spawned = recordSpawns(pool);
    await pool.start();
    const finishing = pool.run<{ slept: number }>({ op: 'sleep', ms: 100 }, { timeoutMs: 5000 });
    await waitUntil(() => pool.busyCount === 1);
    await pool.close({ graceMs: 2000 });
    await expect(finishing).resolves.toMatchObject({ result: { slept: 100 } });
    expect(spawned).toHaveLength(2);
    for (const pid of spawned) expect(isAlive(pid)).toBe(false);
    await expect(pool.run({ op: 'echo' }, { timeoutMs: 1000 })).rejects.toBeInstanceOf(PoolClosedError);
  });

  it('kills jobs still running after the grace period, with their helper processes', async () => {
    const pool = makePool({ mode: 'spawn', slots: 2, warm: 2 });
    const spawned = recordSpawns(pool);
    const kills = recordKills(pool);
    await pool.start();
    const pidFile = join(scratch, 'close-grandchild.pid');
    const hanging = pool.run({ op: 'grandchild', pidFile }, { timeoutMs: 10_000 }).catch((e: unknown) => e);
    const queued = [
      pool.run({ op: 'hang' }, { timeoutMs: 10_000 }).catch((e: unknown) => e),
      pool.run({ op: 'echo' }, { timeoutMs: 10_000 }).catch((e: unknown) => e),
    ];
    await waitUntil(() => {
      try {
        return readFileSync(pidFile, 'utf8').length > 0;
      } catch {
        return false;
      }
    });
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    await pool.close({ graceMs: 50 });

    expect(await hanging).toBeInstanceOf(JobAbortedError);
    const [second, third] = await Promise.all(queued);
    expect(second).toBeInstanceOf(JobAbortedError);
    expect(third).toBeInstanceOf(PoolClosedError);
    expect(kills.filter((k) => k.reason === 'shutdown')).toHaveLength(2);
    for (const pid of spawned) expect(isAlive(pid)).toBe(false);
    expect(await waitUntil(() => !isAlive(grandchild))).toBe(true);
  });
});

describe('a parent that dies', () => {
  it('takes its children and their helper processes with it', async () => {
    const pidFile = join(scratch, 'orphan-grandchild.pid');
    const parent = spawn(process.execPath, [join(here, 'fixtures', 'pool-parent.mjs'), pidFile], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(parent.stdout, 'data')) as [Buffer];
    const { pids } = JSON.parse(line.toString()) as { pids: number[] };
    expect(pids).toHaveLength(2);
    await waitUntil(() => {
      try {
        return readFileSync(pidFile, 'utf8').length > 0;
      } catch {
        return false;
      }
    });
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    expect(isAlive(grandchild)).toBe(true);

    parent.kill('SIGKILL');
    await once(parent, 'exit');
    expect(await waitUntil(() => pids.every((pid) => !isAlive(pid)))).toBe(true);
    expect(await waitUntil(() => !isAlive(grandchild))).toBe(true);
  });
});

describe('measurements (reported, not asserted)', () => {
  it('hand-over of a warm process (spawn) and a trivial job (spawn, forkserver)', async () => {
    const spawnPool = makePool({ mode: 'spawn', slots: 1, warm: 1 });
    const spawnedAt = new Map<number, number>();
    const startUp: number[] = [];
    spawnPool.on('spawn', (pid) => spawnedAt.set(pid, performance.now()));
    spawnPool.on('ready', (pid) => startUp.push(performance.now() - (spawnedAt.get(pid) ?? Number.NaN)));
    await spawnPool.start();
    const handoff: number[] = [];
    const spawnLatency: number[] = [];
    for (let i = 0; i < 15; i++) {
      // Paced so a replacement is ready each time, as in a lightly loaded server.
      await waitUntil(() => spawnPool.idleCount === 1, 5000);
      const start = performance.now();
      const run = await spawnPool.run({ op: 'echo' }, { timeoutMs: 5000 });
      spawnLatency.push(performance.now() - start);
      handoff.push(run.waitedMs);
    }

    const forkPool = makePool({ mode: 'forkserver', slots: 1 });
    await forkPool.start();
    const forkLatency: number[] = [];
    for (let i = 0; i < 300; i++) {
      const start = performance.now();
      await forkPool.run({ op: 'echo' }, { timeoutMs: 5000 });
      forkLatency.push(performance.now() - start);
    }
    const p = (values: number[], q: number) => {
      const sorted = [...values].sort((a, b) => a - b);
      return Number(
        (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN).toFixed(3),
      );
    };
    console.log(
      JSON.stringify({
        spawn_handoff_waited_ms: { p50: p(handoff, 0.5), max: p(handoff, 1) },
        spawn_trivial_job_ms: { p50: p(spawnLatency, 0.5), p95: p(spawnLatency, 0.95) },
        spawn_process_start_to_ready_ms: { p50: p(startUp, 0.5), max: p(startUp, 1) },
        forkserver_trivial_job_ms: {
          p50: p(forkLatency, 0.5),
          p95: p(forkLatency, 0.95),
          n: forkLatency.length,
        },
      }),
    );
    expect(handoff).toHaveLength(15);
  });
});

describe('collectAboveRssBytes', () => {
  const collectScript = join(here, 'fixtures', 'collect-worker.mjs');
  const majorCollections = async (threshold: number): Promise<number[]> => {
    const pool = makePool({
      mode: 'forkserver',
      script: collectScript,
      env: { COLLECT_ABOVE_RSS_BYTES: String(threshold) },
    });
    await pool.start();
    const counts: number[] = [];
    for (let job = 0; job < 3; job++) {
      counts.push((await pool.run<{ major: number }>({}, { timeoutMs: 5000 })).result.major);
    }
    return counts;
  };

  it('a long-lived child whose RSS is above the threshold collects its garbage after each job', async () => {
    const [first = 0, second = 0, third = 0] = await majorCollections(1);
    expect(second).toBeGreaterThan(first);
    expect(third).toBeGreaterThan(second);
  });

  it('below the threshold it leaves collection to V8', async () => {
    const counts = await majorCollections(64 * 1024 * 1024 * 1024);
    expect(new Set(counts).size).toBe(1);
  });
});
