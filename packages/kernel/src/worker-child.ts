/**
 * The child side of `workers`: a process started by `WorkerPool` calls `serveJobs(handler)` once, at the
 * top level of its entry module. Kept free of other kernel imports (but the tiny, built-in-only `memory`) so a
 * child starts as fast as Node allows.
 */
import { collectGarbage } from './memory.js';

/** Context given to a job handler. */
export interface JobContext {
  pid: number;
}

/** A job handler: resolves with the job's result (structured-cloneable) or throws. */
export type JobHandler = (payload: unknown, context: JobContext) => Promise<unknown>;

/** Parent → child. `exitAfter`: a one-job process (spawn, cold) exits once its result is sent. */
export interface JobMessage {
  type: 'job';
  id: number;
  payload: unknown;
  exitAfter: boolean;
}

/** Child → parent. */
export type ChildMessage =
  | { type: 'ready'; pid: number }
  | { type: 'result'; id: number; ok: true; result: unknown; rss: number }
  | { type: 'result'; id: number; ok: false; error: Record<string, unknown>; rss: number };

let serving = false;

export interface ServeOptions {
  /**
   * Runs before the child reports ready: a fresh process's first job pays for JIT compilation, so a
   * pre-started child can do one representative job of its own first, off the request path. A failing
   * warm-up is ignored (the real job will report the problem).
   */
  warmUp?: () => Promise<void>;
  /**
   * A long-lived child whose RSS after a job is above this many bytes runs a full garbage collection once the
   * result is sent, so that the garbage of one big job does not add to the peak of the next (default: never).
   */
  collectAboveRssBytes?: number;
}

/** Serves jobs sent by the parent `WorkerPool`; signals readiness once the caller's module graph has loaded. */
export function serveJobs(handler: JobHandler, options: ServeOptions = {}): void {
  if (serving) throw new Error('serveJobs may be called only once per process');
  const send = process.send?.bind(process);
  if (!send) throw new Error('serveJobs needs an IPC channel: start this script through WorkerPool');
  serving = true;
  let busy = false;

  // The pool decides how long a child lives: when the channel closes (pool recycled it, or the parent is
  // gone) the child leaves at once. Mid-job, it also takes its own process group down so that no helper
  // process it started (e.g. an office suite) outlives it.
  process.on('disconnect', () => {
    if (busy) killOwnGroup();
    process.exit(0);
  });

  process.on('message', (message: unknown) => {
    if (!isJobMessage(message)) return;
    if (busy) {
      const error = { name: 'Error', message: 'worker is already running a job' };
      send({ type: 'result', id: message.id, ok: false, error, rss: process.memoryUsage().rss });
      return;
    }
    busy = true;
    void runJob(handler, message).then((reply) => {
      busy = false;
      deliver(send, reply, () => {
        if (message.exitAfter) process.exit(0);
        if (
          reply.type === 'result' &&
          reply.rss > (options.collectAboveRssBytes ?? Number.POSITIVE_INFINITY)
        ) {
          collectGarbage();
        }
      });
    });
  });

  // Static imports of the entry module are evaluated before its body calls serveJobs; waiting one turn
  // also lets the rest of the top-level code run before the parent hands over a job.
  setImmediate(() => {
    const warmUp = options.warmUp?.().catch(() => {}) ?? Promise.resolve();
    void warmUp.then(() => send({ type: 'ready', pid: process.pid } satisfies ChildMessage));
  });
}

async function runJob(handler: JobHandler, message: JobMessage): Promise<ChildMessage> {
  try {
    const result = await handler(message.payload, { pid: process.pid });
    return { type: 'result', id: message.id, ok: true, result, rss: process.memoryUsage().rss };
  } catch (error) {
    return {
      type: 'result',
      id: message.id,
      ok: false,
      error: serialiseError(error),
      rss: process.memoryUsage().rss,
    };
  }
}

type Send = NonNullable<typeof process.send>;

function deliver(send: Send, reply: ChildMessage, after: () => void): void {
  try {
    send(reply, undefined, undefined, () => after());
  } catch (error) {
    // A result that cannot cross the channel (functions, sockets, …) becomes a job failure.
    const failure: ChildMessage = {
      type: 'result',
      id: reply.type === 'result' ? reply.id : 0,
      ok: false,
      error: serialiseError(error),
      rss: process.memoryUsage().rss,
    };
    send(failure, undefined, undefined, () => after());
  }
}

/** name, message and every own enumerable property (status, errorCode, code, detail, …), made cloneable. */
export function serialiseError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const data: Record<string, unknown> = { name: error.name, message: error.message };
  for (const [key, value] of Object.entries(error)) data[key] = cloneable(value);
  return data;
}

function cloneable(value: unknown): unknown {
  try {
    return structuredClone(value);
  } catch {
    try {
      return JSON.parse(JSON.stringify(value)) as unknown;
    } catch {
      return String(value);
    }
  }
}

function isJobMessage(message: unknown): message is JobMessage {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { type?: unknown }).type === 'job' &&
    typeof (message as { id?: unknown }).id === 'number'
  );
}

function killOwnGroup(): void {
  try {
    // The pool starts every child as a group leader; the group id is then this pid.
    process.kill(-process.pid, 'SIGKILL');
  } catch {
    // Not a group leader (started outside a pool): nothing more to take down.
  }
}
