/**
 * A pool of child processes that run jobs in isolation: per-job timeout measured from `run()`, kill of the
 * whole process group, replacement of dead processes, and a shutdown that leaves no process behind.
 * The child side is `worker-child` (`serveJobs`).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { ChildMessage, JobMessage } from './worker-child.js';

export type WorkerMode = 'spawn' | 'forkserver' | 'cold';
export type KillReason = 'timeout' | 'aborted' | 'crashed' | 'recycled' | 'shutdown';

export interface WorkerPoolOptions {
  /** Absolute path of the child entry (compiled JS / .mjs) that calls `serveJobs`. */
  script: string;
  mode: WorkerMode;
  /** Max jobs at once (forkserver: this many long-lived processes). */
  slots: number;
  /** spawn mode: idle pre-started processes to keep (default = slots). */
  warm?: number;
  /** forkserver: recycle a process after this many jobs (default 1000). */
  maxJobsPerWorker?: number;
  /** --max-old-space-size for children; forkserver also recycles a process whose RSS passes it. */
  maxMemoryMb?: number;
  /** The only environment children get (plus PATH, unless given here). */
  env?: Record<string, string>;
  execArgv?: string[];
  /** How long to wait for a killed process to exit before reporting it unconfirmed (default 2000). */
  killConfirmTimeoutMs?: number;
  /** A process not ready within this time is killed and counted as a failed start (default 10000). */
  startTimeoutMs?: number;
  /** Children's stdout and stderr: passed through to the parent's (default) or dropped. */
  output?: 'inherit' | 'ignore';
}

export interface RunResult<T> {
  pid: number;
  result: T;
  /** Milliseconds between run() and the hand-over to a ready process (part of the job's time). */
  waitedMs: number;
}

export interface RunOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface WorkerPoolEvents {
  kill: [reason: KillReason, pid: number];
  spawn: [pid: number];
  /** A started process signalled readiness. */
  ready: [pid: number];
  exit: [pid: number];
}

/** The job ran out of time; `terminated`: the process group's exit was confirmed in time. */
export class JobTimeoutError extends Error {
  override name = 'JobTimeoutError';
  /** The process that ran the job; null when the time ran out before a process was free. */
  readonly pid: number | null;
  readonly terminated: boolean;
  readonly timeoutMs: number;
  constructor(pid: number | null, terminated: boolean, timeoutMs: number) {
    super(`job timed out after ${timeoutMs} ms`);
    this.pid = pid;
    this.terminated = terminated;
    this.timeoutMs = timeoutMs;
  }
}

/** The job's signal aborted (e.g. client disconnect) or the pool shut down under it. */
export class JobAbortedError extends Error {
  override name = 'JobAbortedError';
  /** The process that was killed; null when the job had not reached one. */
  readonly pid: number | null;
  constructor(pid: number | null, message = 'job aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.pid = pid;
  }
}

/** The process died without a result; `reason: 'oom'` for a heap or kernel out-of-memory kill. */
export class WorkerCrashedError extends Error {
  override name = 'WorkerCrashedError';
  readonly pid: number;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly reason: 'crashed' | 'oom';
  constructor(
    pid: number,
    exitCode: number | null,
    signal: string | null,
    reason: 'crashed' | 'oom',
    message?: string,
  ) {
    super(
      message ??
        `worker ${pid} ${reason === 'oom' ? 'ran out of memory' : 'crashed'} (${signal ?? `exit code ${exitCode}`})`,
    );
    this.pid = pid;
    this.exitCode = exitCode;
    this.signal = signal;
    this.reason = reason;
  }
}

/** The child's handler threw; `data` is the error as the child serialised it (name, message, own props). */
export class JobFailedError extends Error {
  override name = 'JobFailedError';
  readonly pid: number;
  readonly data: Record<string, unknown>;
  constructor(pid: number, data: Record<string, unknown>) {
    super(typeof data.message === 'string' ? data.message : 'job failed');
    this.pid = pid;
    this.data = data;
  }
}

/** run() on a pool that is closing or closed. */
export class PoolClosedError extends Error {
  override name = 'PoolClosedError';
  constructor() {
    super('worker pool is closed');
  }
}

type WorkerState = 'starting' | 'idle' | 'busy' | 'retiring';

interface Worker {
  proc: ChildProcess;
  pid: number;
  state: WorkerState;
  jobsDone: number;
  job: Job | null;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  gone: boolean;
  heapOom: boolean;
  killedByPool: boolean;
  ready: Promise<void>;
  markReady: () => void;
  failReady: (error: Error) => void;
  exited: Promise<void>;
  markExited: () => void;
  timer: NodeJS.Timeout | null;
}

interface Job {
  id: number;
  payload: unknown;
  startedAt: number;
  timeoutMs: number;
  waitedMs: number;
  worker: Worker | null;
  settled: boolean;
  timer: NodeJS.Timeout | null;
  detachSignal: () => void;
  resolve: (value: RunResult<unknown>) => void;
  reject: (error: Error) => void;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const OOM_MARKER = /heap out of memory|Reached heap limit/;

/** A pool of child processes (spawn: one job per warm process; forkserver: long-lived; cold: on demand). */
export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
  private readonly options: WorkerPoolOptions;
  private readonly warm: number;
  private readonly maxJobsPerWorker: number;
  private readonly killConfirmTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly workers = new Set<Worker>();
  private readonly idle: Worker[] = [];
  private readonly waiting: Job[] = [];
  private nextJobId = 1;
  private closing = false;
  private closed: Promise<void> | null = null;
  private startFailures = 0;
  private respawnTimer: NodeJS.Timeout | null = null;

  constructor(options: WorkerPoolOptions) {
    super();
    if (!Number.isInteger(options.slots) || options.slots < 1)
      throw new RangeError('slots must be an integer ≥ 1');
    this.options = options;
    this.warm = options.mode === 'spawn' ? Math.max(0, options.warm ?? options.slots) : 0;
    this.maxJobsPerWorker = Math.max(1, options.maxJobsPerWorker ?? 1000);
    this.killConfirmTimeoutMs = options.killConfirmTimeoutMs ?? 2000;
    this.startTimeoutMs = options.startTimeoutMs ?? 10_000;
  }

  /** Starts the warm (spawn) or long-lived (forkserver) processes; resolves once they are ready. */
  async start(): Promise<void> {
    if (this.closing) throw new PoolClosedError();
    this.replenish();
    await Promise.all([...this.workers].filter((w) => w.state === 'starting').map((w) => w.ready));
  }

  /** Ready, unused processes. */
  get idleCount(): number {
    return this.idle.length;
  }

  /** Jobs currently held by a process. */
  get busyCount(): number {
    let busy = 0;
    for (const worker of this.workers) if (worker.state === 'busy') busy++;
    return busy;
  }

  /** Runs one job in a child process; the timeout counts from this call, waiting for a process included. */
  run<T>(payload: unknown, options: RunOptions): Promise<RunResult<T>> {
    if (this.closing) return Promise.reject(new PoolClosedError());
    const { signal, timeoutMs } = options;
    if (signal?.aborted)
      return Promise.reject(new JobAbortedError(null, 'job aborted', { cause: signal.reason }));
    return new Promise<RunResult<T>>((resolve, reject) => {
      const job: Job = {
        id: this.nextJobId++,
        payload,
        startedAt: performance.now(),
        timeoutMs,
        waitedMs: 0,
        worker: null,
        settled: false,
        timer: null,
        detachSignal: () => {},
        resolve: resolve as (value: RunResult<unknown>) => void,
        reject,
      };
      // setTimeout would fire at once for Infinity; a non-finite timeout means none.
      if (Number.isFinite(timeoutMs)) {
        job.timer = setTimeout(
          () => void this.onTimeout(job),
          Math.min(Math.max(0, timeoutMs), MAX_TIMER_MS),
        );
      }
      if (signal) {
        const onAbort = () => this.onAbort(job, signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        job.detachSignal = () => signal.removeEventListener('abort', onAbort);
      }
      this.waiting.push(job);
      this.dispatch();
    });
  }

  /** Stops starting processes, lets running jobs finish up to graceMs, then kills what is left. */
  close(options: { graceMs?: number } = {}): Promise<void> {
    if (this.closed) return this.closed;
    this.closing = true;
    if (this.respawnTimer) clearTimeout(this.respawnTimer);
    this.respawnTimer = null;
    this.closed = this.shutdown(options.graceMs ?? 30_000);
    return this.closed;
  }

  private async shutdown(graceMs: number): Promise<void> {
    for (const job of this.waiting.splice(0)) {
      this.settle(job);
      job.reject(new PoolClosedError());
    }
    for (const worker of [...this.workers]) {
      if (worker.state === 'idle') this.retire(worker, null);
      else if (worker.state === 'starting') this.killWorker(worker);
    }
    const running = [...this.workers].filter((w) => w.state === 'busy');
    if (running.length > 0) await raceTimeout(Promise.all(running.map((w) => w.exited)), graceMs);
    for (const worker of [...this.workers]) {
      if (worker.exit) continue;
      const job = worker.job;
      if (job && !job.settled) {
        this.settle(job);
        job.reject(new JobAbortedError(worker.pid, 'worker pool shut down before the job finished'));
      }
      if (worker.state === 'busy') this.emit('kill', 'shutdown', worker.pid);
      worker.job = null;
      this.killWorker(worker);
    }
    await raceTimeout(Promise.all([...this.workers].map((w) => w.exited)), this.killConfirmTimeoutMs);
  }

  private dispatch(): void {
    while (this.waiting.length > 0 && this.busyCount < this.options.slots) {
      const worker = this.idle.shift();
      if (!worker) break;
      const job = this.waiting.shift() as Job;
      this.assign(worker, job);
    }
    this.replenish();
  }

  private assign(worker: Worker, job: Job): void {
    worker.state = 'busy';
    worker.job = job;
    job.worker = worker;
    job.waitedMs = performance.now() - job.startedAt;
    const message: JobMessage = {
      type: 'job',
      id: job.id,
      payload: job.payload,
      exitAfter: this.options.mode !== 'forkserver',
    };
    try {
      // A failed write (the child just died) is handled by the exit path; the callback only keeps the
      // ChildProcess from emitting 'error'.
      worker.proc.send(message, undefined, undefined, () => {});
    } catch (error) {
      // The payload could not be serialised: the process is untouched and goes back to the idle list.
      worker.state = 'idle';
      worker.job = null;
      this.idle.unshift(worker);
      this.settle(job);
      job.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Keeps the right number of processes starting or ready for the mode. */
  private replenish(): void {
    if (this.closing || this.respawnTimer) return;
    let starting = 0;
    let busy = 0;
    for (const worker of this.workers) {
      if (worker.state === 'starting') starting++;
      else if (worker.state === 'busy') busy++;
    }
    const available = this.idle.length + starting;
    const wanted =
      this.options.mode === 'forkserver'
        ? this.options.slots - busy
        : Math.max(this.warm, Math.min(this.waiting.length, this.options.slots - busy));
    for (let i = available; i < wanted; i++) this.spawnWorker();
  }

  private spawnWorker(): void {
    const { options } = this;
    const execArgv = [
      ...(options.maxMemoryMb ? [`--max-old-space-size=${options.maxMemoryMb}`] : []),
      ...(options.execArgv ?? []),
    ];
    // Never the parent's environment: secrets stay in the parent.
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      ...options.env,
    };
    const forward = options.output !== 'ignore';
    const proc = fork(options.script, [], {
      detached: true, // own process group: killing -pid also ends whatever the child started
      env,
      execArgv,
      serialization: 'advanced',
      stdio: ['ignore', forward ? 'inherit' : 'ignore', 'pipe', 'ipc'],
    });
    proc.on('error', () => {}); // spawn and channel errors surface through 'exit' or a missing pid
    if (proc.pid === undefined) {
      this.onStartFailure();
      return;
    }
    let markReady = () => {};
    let failReady: (error: Error) => void = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    ready.catch(() => {});
    let markExited = () => {};
    const exited = new Promise<void>((resolve) => {
      markExited = resolve;
    });
    const worker: Worker = {
      proc,
      pid: proc.pid,
      state: 'starting',
      jobsDone: 0,
      job: null,
      exit: null,
      gone: false,
      heapOom: false,
      killedByPool: false,
      ready,
      markReady,
      failReady,
      exited,
      markExited,
      timer: null,
    };
    this.workers.add(worker);
    worker.timer = setTimeout(() => {
      if (worker.state === 'starting') killGroup(worker.pid);
    }, this.startTimeoutMs);

    let tail = '';
    proc.stderr?.on('data', (chunk: Buffer) => {
      if (!worker.heapOom) {
        tail = (tail + chunk.toString('latin1')).slice(-512);
        if (OOM_MARKER.test(tail)) worker.heapOom = true;
      }
      if (forward) process.stderr.write(chunk);
    });
    proc.on('message', (message: unknown) => this.onMessage(worker, message));
    proc.on('exit', (code, signal) => this.onExit(worker, code, signal));
    proc.on('disconnect', () => {
      if (worker.exit) this.onGone(worker);
    });
    this.emit('spawn', worker.pid);
  }

  private onMessage(worker: Worker, message: unknown): void {
    if (!isChildMessage(message)) return;
    if (message.type === 'ready') {
      if (worker.state !== 'starting') return;
      this.clearTimer(worker);
      this.startFailures = 0;
      worker.markReady();
      this.emit('ready', worker.pid);
      if (this.closing) {
        this.retire(worker, null);
        return;
      }
      worker.state = 'idle';
      this.idle.push(worker);
      this.dispatch();
      return;
    }
    const job = worker.job;
    if (!job || job.id !== message.id || worker.state !== 'busy') return;
    worker.job = null;
    worker.jobsDone++;
    this.settle(job);
    if (message.ok) job.resolve({ pid: worker.pid, result: message.result, waitedMs: job.waitedMs });
    else job.reject(new JobFailedError(worker.pid, message.error));

    if (this.options.mode !== 'forkserver') {
      // The child exits by itself once its result is sent; make sure it does.
      worker.state = 'retiring';
      worker.timer = setTimeout(() => this.killWorker(worker), this.killConfirmTimeoutMs);
    } else if (this.closing) {
      this.retire(worker, null);
    } else if (
      !message.ok ||
      worker.jobsDone >= this.maxJobsPerWorker ||
      (this.options.maxMemoryMb !== undefined && message.rss > this.options.maxMemoryMb * 1024 * 1024)
    ) {
      this.retire(worker, 'recycled');
    } else {
      worker.state = 'idle';
      this.idle.push(worker);
    }
    this.dispatch();
  }

  private onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    worker.exit = { code, signal };
    this.clearTimer(worker);
    // Whatever the child started (and left behind) goes with it.
    killGroup(worker.pid);
    worker.markExited();
    this.emit('exit', worker.pid);
    // A result sent just before exiting may still be in the channel: decide once the channel has closed.
    if (!worker.proc.connected) this.onGone(worker);
    else setTimeout(() => this.onGone(worker), 500).unref();
  }

  /** The process has exited and its channel is drained: settle what it leaves behind. */
  private onGone(worker: Worker): void {
    if (worker.gone) return;
    worker.gone = true;
    this.workers.delete(worker);
    this.removeIdle(worker);
    const { code, signal } = worker.exit ?? { code: null, signal: null };
    const reason: 'crashed' | 'oom' =
      worker.heapOom || (signal === 'SIGKILL' && !worker.killedByPool) ? 'oom' : 'crashed';
    const state = worker.state;
    worker.state = 'retiring';

    if (state === 'starting') {
      const error = new WorkerCrashedError(
        worker.pid,
        code,
        signal,
        reason,
        `worker ${worker.pid} exited before it was ready (${signal ?? `exit code ${code}`})`,
      );
      worker.failReady(error);
      if (!this.closing) {
        this.emit('kill', 'crashed', worker.pid);
        // A job waiting for a process (not for a slot) would only wait for its timeout: fail it now.
        if (this.waiting.length > 0 && this.busyCount < this.options.slots) {
          const job = this.waiting.shift() as Job;
          this.settle(job);
          job.reject(error);
        }
        this.onStartFailure();
      }
    } else if (state === 'busy') {
      const job = worker.job;
      worker.job = null;
      if (job && !job.settled) {
        this.settle(job);
        job.reject(new WorkerCrashedError(worker.pid, code, signal, reason));
      }
      this.emit('kill', 'crashed', worker.pid);
    } else if (state === 'idle' && !this.closing) {
      this.emit('kill', 'crashed', worker.pid);
    }
    this.dispatch();
  }

  private onStartFailure(): void {
    if (this.closing) return;
    this.startFailures++;
    if (this.respawnTimer) return;
    // Back off so that a broken child script does not turn into a busy restart loop.
    const delay = Math.min(100 * 2 ** (this.startFailures - 1), 5000);
    this.respawnTimer = setTimeout(() => {
      this.respawnTimer = null;
      this.dispatch();
    }, delay);
  }

  private async onTimeout(job: Job): Promise<void> {
    if (job.settled) return;
    this.settle(job);
    const worker = job.worker;
    if (!worker) {
      this.removeWaiting(job);
      job.reject(new JobTimeoutError(null, true, job.timeoutMs));
      this.dispatch();
      return;
    }
    this.stopWorker(worker, 'timeout');
    const terminated = await raceTimeout(worker.exited, this.killConfirmTimeoutMs);
    job.reject(new JobTimeoutError(worker.pid, terminated, job.timeoutMs));
  }

  private onAbort(job: Job, reason: unknown): void {
    if (job.settled) return;
    this.settle(job);
    const worker = job.worker;
    if (!worker) {
      this.removeWaiting(job);
      job.reject(new JobAbortedError(null, 'job aborted while waiting for a process', { cause: reason }));
      this.dispatch();
      return;
    }
    this.stopWorker(worker, 'aborted');
    job.reject(new JobAbortedError(worker.pid, 'job aborted; its process was killed', { cause: reason }));
  }

  /** Kills the process running a job that is given up on; its slot is free at once. */
  private stopWorker(worker: Worker, reason: KillReason): void {
    worker.job = null;
    worker.state = 'retiring';
    this.killWorker(worker);
    this.emit('kill', reason, worker.pid);
    this.dispatch();
  }

  /** Lets a process leave by closing its channel; kills its group if it has not left in time. */
  private retire(worker: Worker, reason: KillReason | null): void {
    this.removeIdle(worker);
    worker.state = 'retiring';
    if (reason) this.emit('kill', reason, worker.pid);
    if (worker.proc.connected) worker.proc.disconnect();
    this.clearTimer(worker);
    worker.timer = setTimeout(() => this.killWorker(worker), this.killConfirmTimeoutMs);
  }

  private killWorker(worker: Worker): void {
    if (worker.exit) return;
    worker.killedByPool = true;
    killGroup(worker.pid);
  }

  private settle(job: Job): void {
    job.settled = true;
    if (job.timer) clearTimeout(job.timer);
    job.timer = null;
    job.detachSignal();
  }

  private removeWaiting(job: Job): void {
    const index = this.waiting.indexOf(job);
    if (index >= 0) this.waiting.splice(index, 1);
  }

  private removeIdle(worker: Worker): void {
    const index = this.idle.indexOf(worker);
    if (index >= 0) this.idle.splice(index, 1);
  }

  private clearTimer(worker: Worker): void {
    if (worker.timer) clearTimeout(worker.timer);
    worker.timer = null;
  }
}

/** SIGKILL to the process group led by `pid`; quiet when the group is already gone. */
function killGroup(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: nothing of the group is left.
  }
}

/** Resolves true if `promise` settles within `ms`, false otherwise; never holds the event loop after. */
async function raceTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), expired]);
  } finally {
    clearTimeout(timer);
  }
}

function isChildMessage(message: unknown): message is ChildMessage {
  if (typeof message !== 'object' || message === null) return false;
  const { type } = message as { type?: unknown };
  return type === 'ready' || (type === 'result' && typeof (message as { id?: unknown }).id === 'number');
}
