// A pool of worker threads for CPU-heavy work that must neither block the event loop nor outlive its
// deadline: a task whose signal aborts (timeout, shutdown) has its worker terminated and replaced on demand;
// each worker has a heap cap, so one oversized input cannot exhaust the process's memory.
//
// The worker side calls `serveThreadTasks(handler)`; replies are { ok: true, result } or { ok: false, error },
// preceded by any number of { partial } messages when the task hands over its result in pieces.
import { EventEmitter } from 'node:events';
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import {
  isMarkedAsUntransferable,
  parentPort,
  type TransferListItem,
  Worker,
  workerData,
} from 'node:worker_threads';

/** Default V8 old-generation cap of one worker thread. */
export const THREAD_MAX_OLD_GENERATION_MB = 512;

/** An error as it crosses the thread boundary. */
export interface SerializedThreadError {
  name: string;
  message: string;
  code?: string;
}

type ThreadReply<R> = { ok: true; result: R } | { ok: false; error: SerializedThreadError };

/** A piece of a task's result, sent before its reply (`emit` of `serveThreadTasks`). */
interface ThreadPartial<P> {
  partial: P;
}

/** The worker ran out of its heap cap. */
export class ThreadOutOfMemoryError extends Error {
  override name = 'ThreadOutOfMemoryError';
}

/** The worker died without an answer for another reason than memory. */
export class ThreadCrashedError extends Error {
  override name = 'ThreadCrashedError';
  /** the worker's exit code when it stopped without an uncaught error; null when it threw one (the cause) */
  exitCode: number | null = null;
}

export class ThreadPoolClosedError extends Error {
  override name = 'ThreadPoolClosedError';
  constructor() {
    super('The worker thread pool is closed');
  }
}

export type ThreadExitReason = 'recycled' | 'idle' | 'aborted' | 'oom' | 'crashed' | 'closed';

export interface ThreadPoolEvents {
  spawn: [threadId: number];
  /** a worker stopped: terminated by the pool (recycled, aborted, closed) or died (oom, crashed) */
  exit: [threadId: number, reason: ThreadExitReason];
}

/** Where a worker's code is: its URL and, when it is TypeScript run by the tests, the loader flags. */
export interface ThreadEntry {
  url: URL;
  execArgv?: string[];
}

/**
 * The compiled entry `name.js` next to `moduleUrl`; when that module runs from its TypeScript source (the
 * tests), `name.ts` loaded through tsx.
 */
export function threadEntry(moduleUrl: string, name: string): ThreadEntry {
  if (!moduleUrl.endsWith('.ts')) return { url: new URL(`./${name}.js`, moduleUrl) };
  return { url: new URL(`./${name}.ts`, moduleUrl), execArgv: ['--import', import.meta.resolve('tsx')] };
}

export interface ThreadPoolOptions {
  entry: ThreadEntry;
  /** tasks run at once (one worker thread each); more wait their turn */
  size: number;
  /** V8 old-generation cap of each worker (default THREAD_MAX_OLD_GENERATION_MB) */
  maxOldGenerationSizeMb?: number;
  /** tasks a worker runs before it is replaced (default 50; 1 = a fresh worker per task) */
  maxTasksPerWorker?: number;
  /** rebuilds the worker's error (errors do not keep their class across threads) */
  reviveError?: (error: SerializedThreadError) => Error;
  /**
   * How much lower than the process's the workers' scheduling priority is (a nice increment, 0–19; default 0):
   * background work then takes the cores only when request handling leaves them idle. Linux only (elsewhere
   * the workers run at the process's priority).
   */
  niceness?: number;
  /**
   * A worker left idle this long is stopped (its V8 heap and thread returned to the system) and a new one is
   * started for the next task; default: idle workers are kept.
   */
  idleTimeoutMs?: number;
}

/** What a pool passes to each of its workers (`workerData`). */
interface PoolWorkerData {
  niceness: number;
}

interface PooledWorker {
  worker: Worker;
  threadId: number;
  tasks: number;
  /** set once the worker is stopping or has died */
  exitReason: ThreadExitReason | null;
  /** stops the worker once it has been idle for idleTimeoutMs */
  idleTimer: NodeJS.Timeout | null;
}

/** A task waiting for a slot: granted one, or failed when the pool closes. */
interface Waiter {
  grant: () => void;
  fail: (error: Error) => void;
}

/** The default `reviveError`: a plain Error with the worker error's name, message and code. */
export function reviveThreadError(data: SerializedThreadError): Error {
  const error = new Error(data.message);
  error.name = data.name;
  if (data.code !== undefined) Object.assign(error, { code: data.code });
  return error;
}

/**
 * Up to `size` reusable worker threads; idle workers do not keep the process alive. A task may hand over pieces
 * of its result (`Piece`) while it runs, so that the caller can use them before the task ends.
 */
export class ThreadPool<Request, Result, Piece = never> extends EventEmitter<ThreadPoolEvents> {
  readonly #options: ThreadPoolOptions;
  readonly #maxTasks: number;
  readonly #idle: PooledWorker[] = [];
  readonly #busy = new Set<PooledWorker>();
  /** tasks waiting for a slot, oldest first */
  readonly #waiting: Waiter[] = [];
  /** slots held: tasks past their turn, running or about to; never more than `size` */
  #slotsTaken = 0;
  #closed = false;

  constructor(options: ThreadPoolOptions) {
    super();
    if (!Number.isInteger(options.size) || options.size < 1)
      throw new RangeError('size must be an integer ≥ 1');
    this.#options = options;
    this.#maxTasks = Math.max(1, options.maxTasksPerWorker ?? 50);
  }

  get size(): number {
    return this.#options.size;
  }

  /** Worker threads running a task right now. */
  get busyCount(): number {
    return this.#busy.size;
  }

  /**
   * Runs `request` in a worker; rejects with `signal.reason` when it aborts (the worker is terminated).
   * `onPartial` receives the pieces the task emits, in order, before the result; if it throws, the task is
   * stopped (its worker terminated) and `run` rejects with that error.
   */
  async run(
    request: Request,
    signal: AbortSignal,
    transfer: readonly TransferListItem[] = [],
    onPartial?: (partial: Piece) => void,
  ): Promise<Result> {
    await this.#turn(signal);
    let pooled: PooledWorker | undefined;
    let reusable = false;
    try {
      // The pool may have closed, or the signal aborted, between the grant and now.
      if (this.#closed) throw new ThreadPoolClosedError();
      signal.throwIfAborted();
      pooled = this.#idle.pop() ?? this.#spawn();
      this.#keepAlive(pooled);
      this.#busy.add(pooled);
      pooled.worker.ref();
      const result = await this.#runOn(pooled, request, signal, transfer, onPartial);
      pooled.tasks++;
      reusable = pooled.tasks < this.#maxTasks;
      return result;
    } finally {
      if (pooled !== undefined) {
        this.#busy.delete(pooled);
        if (reusable && !this.#closed) {
          pooled.worker.unref();
          this.#idle.push(pooled);
          this.#stopWhenIdle(pooled);
        } else {
          this.#stop(pooled, this.#closed ? 'closed' : 'recycled');
        }
      }
      this.#release();
    }
  }

  /** Terminates every worker; running and waiting tasks reject. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#idle, ...this.#busy];
    this.#idle.length = 0;
    for (const pooled of all) this.#stop(pooled, 'closed');
    for (const waiter of this.#waiting.splice(0)) waiter.fail(new ThreadPoolClosedError());
  }

  /**
   * Takes a slot, waiting for one when all `size` are held. The check and the taking happen in one step, and a
   * released slot passes straight to the oldest waiting task: concurrent calls cannot overshoot `size`.
   */
  async #turn(signal: AbortSignal): Promise<void> {
    if (this.#closed) throw new ThreadPoolClosedError();
    signal.throwIfAborted();
    if (this.#slotsTaken < this.#options.size) {
      this.#slotsTaken++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const index = this.#waiting.indexOf(waiter);
        if (index >= 0) this.#waiting.splice(index, 1);
        reject(signal.reason);
      };
      const waiter: Waiter = {
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        fail: (error) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  /** Gives a finished task's slot to the oldest waiting task, or frees it. */
  #release(): void {
    const next = this.#waiting.shift();
    if (next === undefined) this.#slotsTaken--;
    else next.grant();
  }

  #spawn(): PooledWorker {
    const { entry } = this.#options;
    const data: PoolWorkerData = { niceness: this.#options.niceness ?? 0 };
    const worker = new Worker(entry.url, {
      ...(entry.execArgv === undefined ? {} : { execArgv: entry.execArgv }),
      workerData: data,
      resourceLimits: {
        maxOldGenerationSizeMb: this.#options.maxOldGenerationSizeMb ?? THREAD_MAX_OLD_GENERATION_MB,
      },
    });
    const pooled: PooledWorker = {
      worker,
      threadId: worker.threadId,
      tasks: 0,
      exitReason: null,
      idleTimer: null,
    };
    // A worker that dies while idle is dropped from the pool (its 'error' must not become an uncaught one).
    worker.on('error', (error: unknown) => {
      pooled.exitReason ??= isOutOfMemory(error) ? 'oom' : 'crashed';
    });
    worker.once('exit', () => {
      const index = this.#idle.indexOf(pooled);
      if (index >= 0) this.#idle.splice(index, 1);
      this.emit('exit', pooled.threadId, pooled.exitReason ?? 'crashed');
    });
    this.emit('spawn', pooled.threadId);
    return pooled;
  }

  #runOn(
    pooled: PooledWorker,
    request: Request,
    signal: AbortSignal,
    transfer: readonly TransferListItem[],
    onPartial: ((partial: Piece) => void) | undefined,
  ): Promise<Result> {
    const { worker } = pooled;
    const revive = this.#options.reviveError ?? reviveThreadError;
    return new Promise<Result>((resolve, reject) => {
      let failure: Error | null = null;
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        signal.removeEventListener('abort', onAbort);
      };
      const onMessage = (reply: ThreadReply<Result> | ThreadPartial<Piece>) => {
        if ('partial' in reply) {
          try {
            onPartial?.(reply.partial);
          } catch (error) {
            cleanup();
            this.#stop(pooled, 'aborted');
            reject(error);
          }
          return;
        }
        cleanup();
        if (reply.ok) resolve(reply.result);
        else reject(revive(reply.error));
      };
      const onError = (error: unknown) => {
        // 'exit' follows; remember why the worker died.
        failure = isOutOfMemory(error)
          ? new ThreadOutOfMemoryError('worker thread ran out of memory', { cause: error })
          : new ThreadCrashedError(
              `worker thread failed: ${error instanceof Error ? error.message : String(error)}`,
              { cause: error },
            );
      };
      const onExit = (exitCode: number) => {
        cleanup();
        if (failure === null && !this.#closed) {
          const crashed = new ThreadCrashedError(
            `worker thread stopped unexpectedly (exit code ${exitCode})`,
          );
          crashed.exitCode = exitCode;
          failure = crashed;
        }
        reject(failure ?? new ThreadPoolClosedError());
      };
      const onAbort = () => {
        cleanup();
        this.#stop(pooled, 'aborted');
        reject(signal.reason);
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.once('exit', onExit);
      signal.addEventListener('abort', onAbort, { once: true });
      worker.postMessage(request, transfer);
    });
  }

  #stopWhenIdle(pooled: PooledWorker): void {
    const timeout = this.#options.idleTimeoutMs;
    if (timeout === undefined) return;
    pooled.idleTimer = setTimeout(() => this.#stop(pooled, 'idle'), timeout);
    // An idle worker's timer, like the worker, does not keep the process alive.
    pooled.idleTimer.unref();
  }

  /** Cancels the worker's idle timeout (it has work again, or is being stopped). */
  #keepAlive(pooled: PooledWorker): void {
    if (pooled.idleTimer !== null) clearTimeout(pooled.idleTimer);
    pooled.idleTimer = null;
  }

  #stop(pooled: PooledWorker, reason: ThreadExitReason): void {
    this.#keepAlive(pooled);
    const index = this.#idle.indexOf(pooled);
    if (index >= 0) this.#idle.splice(index, 1);
    if (pooled.exitReason !== null) return;
    pooled.exitReason = reason;
    pooled.worker.terminate().catch(() => {});
  }
}

// A worker can throw anything, null included: the 'error' event carries that value as it is.
function isOutOfMemory(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
}

/**
 * The buffers under `values` that postMessage can move instead of copying, each once: shared, untransferable
 * (Buffer's small-allocation pool) and empty or detached buffers are left out, so they are copied as usual
 * instead of failing the postMessage. The sender loses access to every buffer listed.
 */
export function transferableBuffers(
  ...values: readonly (ArrayBufferView | ArrayBufferLike | null | undefined)[]
): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const value of values) {
    if (value === null || value === undefined) continue;
    const buffer = ArrayBuffer.isView(value) ? value.buffer : value;
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0) continue;
    if (isMarkedAsUntransferable(buffer)) continue;
    buffers.add(buffer);
  }
  return [...buffers];
}

/** The thrown value as a worker sends it back. */
export function serializeThreadError(error: unknown): SerializedThreadError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const code = (error as { code?: unknown }).code;
  return { name: error.name, message: error.message, ...(typeof code === 'string' ? { code } : {}) };
}

/** Worker side: hands a piece of the running task's result to the caller, moving the buffers in `transfer`. */
export type EmitPartial<Piece> = (partial: Piece, transfer?: readonly TransferListItem[]) => void;

/**
 * Worker side: answers each message with `handler`'s result (transferring the buffers `transferOf` names) or
 * its error. The handler may `emit` pieces of its result before it returns (see `ThreadPool.run`'s `onPartial`).
 */
export function serveThreadTasks<Request, Result, Piece = never>(
  handler: (request: Request, emit: EmitPartial<Piece>) => Promise<Result>,
  transferOf: (result: Result) => TransferListItem[] = () => [],
): void {
  const port = parentPort;
  if (port === null) throw new Error('serveThreadTasks must run in a worker thread');
  lowerThreadPriority((workerData as Partial<PoolWorkerData> | null)?.niceness ?? 0);
  const emit: EmitPartial<Piece> = (partial, transfer = []) => {
    const message: ThreadPartial<Piece> = { partial };
    port.postMessage(message, transfer);
  };
  port.on('message', (request: Request) => {
    handler(request, emit).then(
      (result) => {
        const reply: ThreadReply<Result> = { ok: true, result };
        port.postMessage(reply, transferOf(result));
      },
      (error: unknown) => {
        const reply: ThreadReply<Result> = { ok: false, error: serializeThreadError(error) };
        port.postMessage(reply);
      },
    );
  });
}

/**
 * Lowers the calling thread's scheduling priority by `increment` (capped at nice 19). Linux schedules threads
 * as tasks of their own, so this affects this thread alone; returns false where that is not possible.
 */
export function lowerThreadPriority(increment: number): boolean {
  if (!(increment > 0)) return false;
  try {
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isSafeInteger(threadId)) return false;
    setPriority(threadId, Math.min(19, getPriority(threadId) + increment));
    return true;
  } catch {
    return false;
  }
}
