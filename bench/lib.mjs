// Helpers shared by the benchmarks under bench/<service>/.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Nearest-rank percentile of unsorted values (null when there are none). */
export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0
    ? null
    : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Rounds to `digits` decimals; null for missing or non-finite values. */
export function round(value, digits = 1) {
  return value === null || value === undefined || !Number.isFinite(value)
    ? null
    : Math.round(value * 10 ** digits) / 10 ** digits;
}

/** p50/p95/p99/max of latencies in ms, rounded to 0.1. */
export const latencySummary = (values) => ({
  p50: round(percentile(values, 50)),
  p95: round(percentile(values, 95)),
  p99: round(percentile(values, 99)),
  max: round(values.length ? values.reduce((a, b) => Math.max(a, b)) : null),
});

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Kilobytes of a /proc/<pid>/status field (VmRSS, VmHWM), or null when the process is gone. */
export function procStatusKb(pid, field) {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
      readFileSync(`/proc/${pid}/status`, 'utf8'),
    );
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** Command name, parent pid and utime + stime (clock ticks, 100 Hz on Linux) of a process, or null when gone. */
function procStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return {
      comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
      ppid: Number(fields[1]),
      ticks: Number(fields[11]) + Number(fields[12]),
    };
  } catch {
    return null;
  }
}

/** utime + stime of a process in clock ticks (100 Hz on Linux), or null. */
export function procCpuTicks(pid) {
  return procStat(pid)?.ticks ?? null;
}

/**
 * CPU clock ticks so far, summed over the processes of /proc: `{ tree, named }` — `tree` over `pid` and all its
 * descendants (a cluster primary and its workers), `named` over every process whose command name is `name`
 * (e.g. the PostgreSQL server's backends). Exited processes no longer count: compare samples taken while the
 * processes of interest run.
 */
export function cpuTicksOf(pid, name) {
  const processes = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(entry); // null: exited while being read
    if (stat !== null) processes.push({ pid: Number(entry), ...stat });
  }
  const inTree = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const process of processes)
      if (!inTree.has(process.pid) && inTree.has(process.ppid)) {
        inTree.add(process.pid);
        grew = true;
      }
  }
  let tree = 0;
  let named = 0;
  for (const process of processes) {
    if (inTree.has(process.pid)) tree += process.ticks;
    if (process.comm === name) named += process.ticks;
  }
  return { tree, named };
}

/** Samples VmRSS of `pid` every `everyMs`; `stop()` returns { peakKb, samples }. */
export function rssSampler(pid, everyMs) {
  let peakKb = procStatusKb(pid, 'VmRSS') ?? 0;
  let samples = 1;
  const timer = setInterval(() => {
    const now = procStatusKb(pid, 'VmRSS');
    if (now !== null) {
      samples++;
      if (now > peakKb) peakKb = now;
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const now = procStatusKb(pid, 'VmRSS');
      if (now !== null && now > peakKb) peakKb = now;
      return { peakKb, samples };
    },
  };
}

/**
 * Runs the targets named on the command line (all by default), one JSON line each; a failing target is reported
 * as `{id, error}` and sets exit code 1. `BENCH_OUT=path` also writes all results as one JSON document.
 */
export async function runTargets(targets, { quick }) {
  const wanted = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
  const ids = wanted.length > 0 ? wanted : Object.keys(targets);
  const results = [];
  for (const id of ids) {
    const run = targets[id];
    if (!run) {
      console.error(`unknown target ${id} (known: ${Object.keys(targets).join(' ')})`);
      process.exitCode = 2;
      continue;
    }
    const started = performance.now();
    let result;
    try {
      result = { id, quick, ...(await run()), bench_seconds: round((performance.now() - started) / 1000) };
    } catch (error) {
      result = { id, quick, error: error instanceof Error ? error.message : String(error) };
      process.exitCode = 1;
    }
    results.push(result);
    console.log(JSON.stringify(result));
  }
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, `${JSON.stringify(results, null, 2)}\n`);
  return results;
}

// Child processes and temporary folders must not outlive a benchmark, even one stopped with Ctrl-C.
const liveChildren = new Set();
const liveDirs = new Set();
let cleanupInstalled = false;

function cleanUpOnExit() {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) {
      try {
        child.kill('SIGKILL');
      } catch {}
    }
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));
}

/** Kills `child` if the benchmark exits while it still runs (until `forgetChild`); returns it. */
export function killOnExit(child) {
  cleanUpOnExit();
  liveChildren.add(child);
  return child;
}

export function forgetChild(child) {
  liveChildren.delete(child);
}

/** A temporary folder `<tmp>/<prefix>-XXXXXX`, removed when the benchmark exits (or earlier with `removeTempDir`). */
export function makeTempDir(prefix) {
  cleanUpOnExit();
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  liveDirs.add(dir);
  return dir;
}

export function removeTempDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

/**
 * Starts `node <bin> serve --host 127.0.0.1 --port <free port> ...args` with `env` over this process's environment, its
 * stdout and stderr in `<logDir>/server-<time>.log`, and resolves once `isReady({ base, readLog })` is true
 * (asked every `pollMs`; a throw counts as not yet). Fails when the server exits first or is not ready within
 * `timeoutMs`. `stop()` sends SIGTERM, then SIGKILL after `stopTimeoutMs`, and resolves to the exit code.
 */
export async function startService({
  bin,
  logDir,
  env = {},
  args = [],
  isReady,
  pollMs = 25,
  timeoutMs = 60_000,
  stopTimeoutMs = 20_000,
}) {
  const port = await freePort();
  const logPath = join(logDir, `server-${Date.now()}.log`);
  const readLog = () => readFileSync(logPath, 'utf8');
  const logFd = openSync(logPath, 'a');
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [bin, 'serve', '--host', '127.0.0.1', '--port', String(port), ...args],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', logFd, logFd],
    },
  );
  closeSync(logFd);
  killOnExit(child);
  const running = () => child.exitCode === null && child.signalCode === null;
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!running()) {
      throw new Error(`server exited ${child.exitCode ?? child.signalCode}: ${readLog().slice(-2000)}`);
    }
    const ready = await Promise.resolve()
      .then(() => isReady({ base, readLog }))
      .catch(() => false);
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`server not ready: ${readLog().slice(-2000)}`);
    await sleep(pollMs);
  }
  return {
    child,
    pid: child.pid,
    base,
    logPath,
    startMs: performance.now() - started,
    async stop() {
      if (running()) {
        child.kill('SIGTERM');
        // an unref'd timer: a server that exits at once does not keep the benchmark waiting
        await Promise.race([
          once(child, 'exit'),
          new Promise((resolve) => setTimeout(resolve, stopTimeoutMs).unref()),
        ]);
        if (running()) {
          child.kill('SIGKILL');
          await once(child, 'exit');
        }
      }
      forgetChild(child);
      return child.exitCode;
    },
  };
}

/**
 * Runs `use(url)` with the URL of a new, empty PostgreSQL database on the server of `BENCH_DATABASE_URL` (default:
 * the local test server), dropped afterwards. Resolves to `{ skipped }` instead when that server cannot be reached.
 */
export async function withScratchDatabase(prefix, use) {
  const adminUrl = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
  const { default: pg } = await import('pg');
  const name = `${prefix}_${process.pid}_${Date.now()}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (error) {
    await admin.end().catch(() => {});
    return { skipped: `no PostgreSQL at ${adminUrl}: ${error.message}` };
  }
  try {
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    return await use(url.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}
