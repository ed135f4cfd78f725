import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { getPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  reviveThreadError,
  type SerializedThreadError,
  ThreadCrashedError,
  type ThreadExitReason,
  ThreadOutOfMemoryError,
  ThreadPool,
  ThreadPoolClosedError,
  type ThreadPoolOptions,
  threadEntry,
  transferableBuffers,
} from '../src/thread-pool.js';
import type { ThreadTask, ThreadTaskPiece, ThreadTaskResult } from './fixtures/thread-tasks.js';

const ENTRY = threadEntry(import.meta.url, 'fixtures/thread-tasks');

const pools: ThreadPool<ThreadTask, ThreadTaskResult, ThreadTaskPiece>[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

/** A pool on the test worker entry, with every spawn and exit it reports. */
function poolOf(options: Partial<ThreadPoolOptions> = {}) {
  const pool = new ThreadPool<ThreadTask, ThreadTaskResult, ThreadTaskPiece>({
    entry: ENTRY,
    size: 1,
    ...options,
  });
  const spawns: number[] = [];
  const exits: [threadId: number, reason: ThreadExitReason][] = [];
  pool.on('spawn', (threadId) => spawns.push(threadId));
  pool.on('exit', (threadId, reason) => exits.push([threadId, reason]));
  pools.push(pool);
  return { pool, spawns, exits };
}

const signal = () => AbortSignal.timeout(20_000);

/** Resolves once `condition` holds (worker exits are reported asynchronously). */
async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The worker's own error class, as the tests' reviveError rebuilds it. */
class QuotaExceededError extends Error {
  override name = 'QuotaExceededError';
}

describe('threadEntry', () => {
  it('points at the compiled entry, or at the TypeScript one loaded through tsx', () => {
    expect(threadEntry('file:///srv/app/dist/domain/pool.js', 'entry')).toEqual({
      url: new URL('file:///srv/app/dist/domain/entry.js'),
    });
    const source = threadEntry('file:///srv/app/src/domain/pool.ts', 'entry');
    expect(source.url.href).toBe('file:///srv/app/src/domain/entry.ts');
    expect(source.execArgv).toHaveLength(2);
    expect(source.execArgv?.[0]).toBe('--import');
    expect(source.execArgv?.[1]).toMatch(/^file:\/\/.*\/node_modules\/tsx\/.+\.mjs$/);
    expect(ENTRY.url.href).toBe(new URL('./fixtures/thread-tasks.ts', import.meta.url).href);
  });
});

describe('transferableBuffers', () => {
  it('lists each movable buffer once and leaves out what postMessage cannot move', () => {
    const plain = new ArrayBuffer(16);
    const first = new Float64Array(plain, 0, 1);
    const second = new Uint8Array(plain, 8, 8);
    const other = new Int32Array(4);
    const shared = new Int32Array(new SharedArrayBuffer(16));
    const pooled = Buffer.from('pooled');
    const detached = new ArrayBuffer(8);
    structuredClone(detached, { transfer: [detached] });
    expect(
      transferableBuffers(
        first,
        second,
        other,
        shared,
        pooled,
        detached,
        new ArrayBuffer(0),
        null,
        undefined,
      ),
    ).toEqual([plain, other.buffer]);
    expect(transferableBuffers(other.buffer)).toEqual([other.buffer]);
  });
});

describe('ThreadPool', () => {
  it('returns results and reuses its worker', async () => {
    const { pool, spawns } = poolOf();
    const first = await pool.run({ op: 'echo', value: { text: 'héron', list: [1, 2] } }, signal());
    const second = await pool.run({ op: 'echo', value: 42 }, signal());
    expect(first).toEqual({ threadId: spawns[0], tasks: 1, value: { text: 'héron', list: [1, 2] } });
    expect(second).toEqual({ threadId: spawns[0], tasks: 2, value: 42 });
    expect(spawns).toHaveLength(1);
    expect(pool.size).toBe(1);
    expect(pool.busyCount).toBe(0);
  });

  it('moves typed arrays both ways instead of copying them', async () => {
    const { pool } = poolOf();
    const values = new Float64Array([1.5, -2, 4]);
    // Two views of one buffer and a pooled Buffer would fail postMessage if listed as they are.
    const transfer = transferableBuffers(values, new Uint8Array(values.buffer), Buffer.from('x'));
    const result = await pool.run({ op: 'scale', values, factor: 2 }, signal(), transfer);
    expect(values.byteLength).toBe(0);
    expect(result.value).toBe(24);
    expect(result.scaled).toBeInstanceOf(Float64Array);
    expect(Array.from(result.scaled ?? [])).toEqual([3, -4, 8]);
    // The worker no longer has the array it answered with.
    expect((await pool.run({ op: 'last-scaled-bytes' }, signal())).value).toBe(0);
  });

  it('hands over the pieces a task emits, in order and moved, before its result', async () => {
    const { pool } = poolOf();
    const events: string[] = [];
    const result = await pool.run({ op: 'pieces', count: 5 }, signal(), [], (piece) => {
      expect(piece.bytes).toBeInstanceOf(Uint8Array);
      events.push(`piece ${piece.index}: ${Array.from(piece.bytes).join('')}`);
    });
    events.push(`result ${result.value}`);
    expect(events).toEqual([
      'piece 0: 0000',
      'piece 1: 1111',
      'piece 2: 2222',
      'piece 3: 3333',
      'piece 4: 4444',
      'result 5',
    ]);
    // A task run without a receiver for its pieces still gets its result, on the same worker.
    expect((await pool.run({ op: 'pieces', count: 2 }, signal())).tasks).toBe(2);
  });

  it('stops the task whose receiver of pieces throws, and rejects with that error', async () => {
    const { pool, exits } = poolOf();
    const refused = new Error('no room for more pieces');
    const received: number[] = [];
    // The task would spin for ever after its pieces: only terminating its worker ends it.
    const outcome = pool.run({ op: 'pieces', count: 3, afterwards: 'spin' }, signal(), [], (piece) => {
      received.push(piece.index);
      if (piece.index === 1) throw refused;
    });
    await expect(outcome).rejects.toBe(refused);
    expect(received).toEqual([0, 1]);
    await until(() => exits.length === 1);
    expect(exits[0]?.[1]).toBe('aborted');
    expect(pool.busyCount).toBe(0);
    expect((await pool.run({ op: 'echo', value: 'next' }, signal())).value).toBe('next');
  });

  it.runIf(process.platform === 'linux')('runs its workers at the niceness it is given', async () => {
    const { pool: background } = poolOf({ niceness: 7 });
    const { pool: plain } = poolOf();
    const own = getPriority();
    expect((await background.run({ op: 'priority' }, signal())).value).toBe(Math.min(19, own + 7));
    expect((await plain.run({ op: 'priority' }, signal())).value).toBe(own);
    // the process itself is untouched
    expect(getPriority()).toBe(own);
  });

  it('revives task errors with reviveError, or as plain errors with name, message and code', async () => {
    const seen: SerializedThreadError[] = [];
    const { pool: reviving } = poolOf({
      reviveError: (data) => {
        seen.push(data);
        return data.name === 'QuotaExceededError'
          ? new QuotaExceededError(data.message)
          : reviveThreadError(data);
      },
    });
    const revived = await reviving
      .run({ op: 'fail', message: 'quota of 3 reached' }, signal())
      .catch((e) => e);
    expect(revived).toBeInstanceOf(QuotaExceededError);
    expect(revived.message).toBe('quota of 3 reached');
    expect(seen).toEqual([{ name: 'QuotaExceededError', message: 'quota of 3 reached', code: 'E_QUOTA' }]);

    const { pool: plain } = poolOf();
    const generic = await plain.run({ op: 'fail', message: 'quota of 3 reached' }, signal()).catch((e) => e);
    expect(generic).not.toBeInstanceOf(QuotaExceededError);
    expect(generic).toBeInstanceOf(Error);
    expect(generic).toMatchObject({
      name: 'QuotaExceededError',
      message: 'quota of 3 reached',
      code: 'E_QUOTA',
    });
    const thrown = await plain.run({ op: 'throw', value: 'not an error' }, signal()).catch((e) => e);
    expect(thrown).toBeInstanceOf(Error);
    expect(thrown).toMatchObject({ name: 'Error', message: 'not an error' });
    expect(thrown).not.toHaveProperty('code');
    // The pool goes on after a failed task.
    expect((await plain.run({ op: 'echo', value: 'after' }, signal())).value).toBe('after');
  });

  it('terminates the worker of an aborted task and runs the next task on a fresh one', async () => {
    const { pool, spawns, exits } = poolOf();
    const first = await pool.run({ op: 'echo', value: 1 }, signal());
    const controller = new AbortController();
    const reason = new Error('deadline passed');
    setTimeout(() => controller.abort(reason), 100);
    const startedAt = Date.now();
    // The worker is busy in a loop that never yields: only terminating it ends the task.
    await expect(pool.run({ op: 'spin' }, controller.signal)).rejects.toBe(reason);
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    expect(pool.busyCount).toBe(0);
    await until(() => exits.length === 1);
    expect(exits).toEqual([[first.threadId, 'aborted']]);

    const next = await pool.run({ op: 'echo', value: 2 }, signal());
    expect(next.threadId).not.toBe(first.threadId);
    expect(next).toMatchObject({ tasks: 1, value: 2 });
    expect(spawns).toEqual([first.threadId, next.threadId]);
  });

  it('rejects a task past the heap cap with ThreadOutOfMemoryError and goes on', async () => {
    const { pool, exits } = poolOf({ maxOldGenerationSizeMb: 16 });
    const error = await pool.run({ op: 'oom' }, signal()).catch((e) => e);
    expect(error).toBeInstanceOf(ThreadOutOfMemoryError);
    expect(error.message).toBe('worker thread ran out of memory');
    expect(error.cause).toMatchObject({ code: 'ERR_WORKER_OUT_OF_MEMORY' });
    await until(() => exits.length === 1);
    expect(exits[0]?.[1]).toBe('oom');
    expect(await pool.run({ op: 'echo', value: 'small' }, signal())).toMatchObject({
      tasks: 1,
      value: 'small',
    });
  });

  it('rejects the task of a worker that dies with ThreadCrashedError and goes on', async () => {
    const { pool, exits } = poolOf();
    const exited = await pool.run({ op: 'exit', code: 7 }, signal()).catch((e) => e);
    expect(exited).toBeInstanceOf(ThreadCrashedError);
    expect(exited.message).toBe('worker thread stopped unexpectedly (exit code 7)');
    expect(exited.exitCode).toBe(7);

    const thrown = await pool
      .run({ op: 'throw-uncaught', value: new RangeError('late failure') }, signal())
      .catch((e) => e);
    expect(thrown).toBeInstanceOf(ThreadCrashedError);
    expect(thrown.message).toBe('worker thread failed: late failure');
    expect(thrown.exitCode).toBeNull();
    expect(thrown.cause).toMatchObject({ name: 'RangeError', message: 'late failure' });

    // Not even a thrown null takes the pool (or this process) down.
    const nothing = await pool.run({ op: 'throw-uncaught', value: null }, signal()).catch((e) => e);
    expect(nothing).toBeInstanceOf(ThreadCrashedError);
    expect(nothing.message).toBe('worker thread failed: null');

    await until(() => exits.length === 3);
    expect(exits.map(([, reason]) => reason)).toEqual(['crashed', 'crashed', 'crashed']);
    expect(await pool.run({ op: 'echo', value: 'alive' }, signal())).toMatchObject({
      tasks: 1,
      value: 'alive',
    });
  });

  it('never runs more tasks at once than its size', async () => {
    const { pool, spawns } = poolOf({ size: 2 });
    const counters = new Int32Array(new SharedArrayBuffer(8));
    const runs = Array.from({ length: 6 }, () => pool.run({ op: 'overlap', counters, ms: 50 }, signal()));
    const results = await Promise.all(runs);
    expect(counters[1]).toBe(2);
    expect(counters[0]).toBe(0);
    expect(spawns).toHaveLength(2);
    expect(new Set(results.map((result) => result.threadId))).toEqual(new Set(spawns));
    // Each worker counts its own tasks: together they ran all six.
    const tasksPerThread = new Map(results.map((result) => [result.threadId, 0]));
    for (const result of results)
      tasksPerThread.set(result.threadId, Math.max(tasksPerThread.get(result.threadId) ?? 0, result.tasks));
    expect([...tasksPerThread.values()].reduce((sum, count) => sum + count, 0)).toBe(6);
  });

  it('drops a waiting task whose signal aborts, without touching the running one', async () => {
    const { pool, spawns } = poolOf();
    const running = pool.run({ op: 'sleep', ms: 300 }, signal());
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    const waiting = pool.run({ op: 'echo', value: 'never' }, controller.signal);
    setTimeout(() => controller.abort(reason), 20);
    const startedAt = Date.now();
    await expect(waiting).rejects.toBe(reason);
    expect(Date.now() - startedAt).toBeLessThan(250);
    expect(pool.busyCount).toBe(1);

    const after = pool.run({ op: 'echo', value: 'after' }, signal());
    expect(await running).toMatchObject({ threadId: spawns[0], tasks: 1 });
    // The worker's next task is the one queued after the abort: the aborted one never ran.
    expect(await after).toMatchObject({ threadId: spawns[0], tasks: 2, value: 'after' });

    // A signal aborted beforehand rejects at once, without a worker.
    await expect(pool.run({ op: 'echo', value: 0 }, AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(spawns).toHaveLength(1);
  });

  it('replaces a worker after maxTasksPerWorker tasks', async () => {
    const { pool, spawns, exits } = poolOf({ maxTasksPerWorker: 2 });
    const results: ThreadTaskResult[] = [];
    for (let value = 0; value < 5; value++) results.push(await pool.run({ op: 'echo', value }, signal()));
    const [a, b, c] = spawns;
    expect(spawns).toHaveLength(3);
    expect(results.map((result) => [result.threadId, result.tasks])).toEqual([
      [a, 1],
      [a, 2],
      [b, 1],
      [b, 2],
      [c, 1],
    ]);
    await until(() => exits.length === 2);
    expect(exits).toEqual([
      [a, 'recycled'],
      [b, 'recycled'],
    ]);
  });

  it('stops a worker left idle for idleTimeoutMs, keeps one that gets work in time, and starts anew after', async () => {
    const { pool, spawns, exits } = poolOf({ idleTimeoutMs: 300 });
    const first = await pool.run({ op: 'echo', value: 1 }, signal());
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Within the timeout: the same worker, whose timer starts again when it is idle again.
    const second = await pool.run({ op: 'echo', value: 2 }, signal());
    expect([first.threadId, second.threadId]).toEqual([spawns[0], spawns[0]]);
    expect(exits).toEqual([]);
    await until(() => exits.length === 1);
    expect(exits).toEqual([[spawns[0], 'idle']]);
    const third = await pool.run({ op: 'echo', value: 3 }, signal());
    expect(spawns).toHaveLength(2);
    expect(third).toEqual({ threadId: spawns[1], tasks: 1, value: 3 });
  });

  it('close() rejects running and waiting tasks with ThreadPoolClosedError and stops every worker', async () => {
    const { pool, spawns, exits } = poolOf({ size: 2 });
    await Promise.all([
      pool.run({ op: 'echo', value: 1 }, signal()),
      pool.run({ op: 'echo', value: 2 }, signal()),
    ]);
    const running = [pool.run({ op: 'spin' }, signal()), pool.run({ op: 'sleep', ms: 10_000 }, signal())];
    const waiting = pool.run({ op: 'echo', value: 3 }, signal());
    const outcomes = Promise.allSettled([...running, waiting]);
    await until(() => pool.busyCount === 2);
    await pool.close();
    for (const outcome of await outcomes) {
      expect(outcome.status).toBe('rejected');
      expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(ThreadPoolClosedError);
    }
    await expect(pool.run({ op: 'echo', value: 4 }, signal())).rejects.toThrow(
      'The worker thread pool is closed',
    );
    await until(() => exits.length === 2);
    expect(exits.map(([, reason]) => reason)).toEqual(['closed', 'closed']);
    expect(new Set(exits.map(([threadId]) => threadId))).toEqual(new Set(spawns));
    expect(pool.busyCount).toBe(0);
  });

  it('stops idle workers on close()', async () => {
    const { pool, spawns, exits } = poolOf();
    await pool.run({ op: 'echo', value: 1 }, signal());
    await pool.close();
    await until(() => exits.length === 1);
    expect(exits).toEqual([[spawns[0], 'closed']]);
  });

  it('does not keep the process alive with idle workers', async () => {
    const parent = threadEntry(import.meta.url, 'fixtures/thread-idle-parent');
    const child = spawn(process.execPath, [...(parent.execArgv ?? []), fileURLToPath(parent.url)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (data: Buffer) => {
      stdout += data.toString();
    });
    child.stderr.on('data', (data: Buffer) => {
      stderr += data.toString();
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code, killedBy] = await once(child, 'exit');
    clearTimeout(killer);
    expect({ code, killedBy, stderr }).toEqual({ code: 0, killedBy: null, stderr: '' });
    expect(JSON.parse(stdout)).toEqual({ values: ['one', 'two'], idle: 0 });
  });
});
