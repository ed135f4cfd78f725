// Helpers shared by the benchmarks under bench/<service>/.
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';

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

/** utime + stime of a process in clock ticks (100 Hz on Linux), or null. */
export function procCpuTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
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
